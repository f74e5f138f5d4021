"""What the mini-program reads of accounts, their limits and ledgers (the answers are the handlers'
response models: ``AccountOut`` masks the account number, JR/T 0171).

The limits are computed from the locked-row counters the ledger keeps, for today and this year in
China Standard Time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import utcnow
from models.accounts import Account, LedgerEntry
from services.accounts import restrictions as restriction_rows
from services.accounts.ledger import AccountNotFound, outflow_used
from services.accounts.rules import rules_for
from services.db import causal_read
from services.pagination import MAX_PAGE, newest_first  # noqa: F401 - MAX_PAGE: the handlers' bound


@dataclass(frozen=True)
class Limits:
    """An account's outflow limits and what is used of them (``AccountOut.limits`` shows them)."""

    daily_outflow_fen: int
    daily_outflow_used_fen: int
    daily_outflow_remaining_fen: int
    yearly_outflow_fen: int
    yearly_outflow_used_fen: int
    yearly_outflow_remaining_fen: int
    balance_cap_fen: int | None
    balance_room_fen: int | None


def limits(account: Account, at: datetime | None = None) -> Limits:
    rules = rules_for(account.account_class)
    today, year = outflow_used(account, at or utcnow())
    cap = rules.balance_cap_fen
    return Limits(
        daily_outflow_fen=rules.daily_outflow_fen,
        daily_outflow_used_fen=today,
        daily_outflow_remaining_fen=max(0, rules.daily_outflow_fen - today),
        yearly_outflow_fen=rules.yearly_outflow_fen,
        yearly_outflow_used_fen=year,
        yearly_outflow_remaining_fen=max(0, rules.yearly_outflow_fen - year),
        balance_cap_fen=cap,
        balance_room_fen=None if cap is None else max(0, cap - account.balance_fen - account.pending_in_fen),
    )


async def owned(user_id: int, account_id: int, conn: BaseDBAsyncClient | None = None) -> Account:
    account = await Account.get_or_none(id=account_id, user_id=user_id, using_db=conn)
    if account is None:
        raise AccountNotFound()
    return account


# What the holder reads back sees every movement acknowledged before, through whichever server booked it
# (on a Galera cluster; services.db.causal_read).

async def _with_restrictions(accounts: list[Account], conn: BaseDBAsyncClient | None) -> list[Account]:
    """Each account with ``restrictions``: those in force, oldest first (what the holder is shown)."""
    found = await restriction_rows.in_force([a.id for a in accounts], conn)
    for a in accounts:
        a.restrictions = found[a.id]
    return accounts


async def account(user_id: int, account_id: int) -> Account:
    async def read(conn: BaseDBAsyncClient | None) -> Account:
        return (await _with_restrictions([await owned(user_id, account_id, conn)], conn))[0]

    return await causal_read(read)


async def accounts_of(user_id: int) -> list[Account]:
    async def read(conn: BaseDBAsyncClient | None) -> list[Account]:
        return await _with_restrictions(await Account.filter(user_id=user_id).order_by("id").using_db(conn), conn)

    return await causal_read(read)


async def transactions(user_id: int, account_id: int, *, cursor: str | None, limit: int) -> tuple[list[LedgerEntry], str | None]:
    """A page of the account's ledger, newest first, and the cursor of the next page (None at the end)."""
    async def read(conn: BaseDBAsyncClient | None) -> tuple[list[LedgerEntry], str | None]:
        await owned(user_id, account_id, conn)
        return await newest_first(LedgerEntry.filter(account_id=account_id).using_db(conn), cursor=cursor, limit=limit)

    return await causal_read(read)
