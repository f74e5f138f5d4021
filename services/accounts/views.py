"""What the mini-program sees of applications, accounts, their limits, ledgers and transfers.

Account and card numbers appear masked (JR/T 0171): ``623099*********1234``-style for the account,
``622202******1234`` for the bound card. The limits are computed from the locked-row counters the
ledger keeps, for today and this year in China Standard Time.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import utcnow
from core.pii import mask_card
from models.accounts import Account, CardTransfer, LedgerEntry
from services.accounts import restrictions as restriction_rows
from services.accounts.ledger import AccountNotFound, outflow_used
from services.accounts.opening import MACHINE, OPEN_STATUSES, Progress
from services.accounts.rules import rules_for
from services.db import causal_read
from services.pagination import MAX_PAGE, newest_first  # noqa: F401 - MAX_PAGE: the handlers' bound


def public_application(progress: Progress) -> dict:
    app = progress.application
    open_ = app.status in OPEN_STATUSES
    return {
        "id": app.id,
        "account_class": app.account_class,
        "status": str(app.status),
        "missing": progress.missing if open_ else [],
        "next_step": (progress.missing[0] if progress.missing else "submit") if open_ else None,
        "rules_version": app.rules_version,
        "contract_id": progress.contract_id,
        "account_id": app.account_id,
        "rejection_code": app.rejection_code,
        "created_at": app.created_at,
        "expires_at": app.expires_at,
        "milestones": {str(status): getattr(app, stamp) for status, stamp in MACHINE.milestones.items()},
    }


def limits(account: Account, at: datetime | None = None) -> dict:
    rules = rules_for(account.account_class)
    today, year = outflow_used(account, at or utcnow())
    cap = rules.balance_cap_fen
    return {
        "daily_outflow_fen": rules.daily_outflow_fen,
        "daily_outflow_used_fen": today,
        "daily_outflow_remaining_fen": max(0, rules.daily_outflow_fen - today),
        "yearly_outflow_fen": rules.yearly_outflow_fen,
        "yearly_outflow_used_fen": year,
        "yearly_outflow_remaining_fen": max(0, rules.yearly_outflow_fen - year),
        "balance_cap_fen": cap,
        "balance_room_fen": None if cap is None else max(0, cap - account.balance_fen - account.pending_in_fen),
    }


def public_account(account: Account) -> dict:
    return {
        "id": account.id,
        "number_masked": mask_card(account.number),
        "account_class": account.account_class,
        "status": str(account.status),
        "restrictions": [public_restriction(r) for r in getattr(account, "restrictions", ())],
        "balance_fen": account.balance_fen,
        "pending_in_fen": account.pending_in_fen,
        "bound_card_masked": account.bound_card_masked,
        "rules_version": account.rules_version,
        "opened_at": account.opened_at,
        "limits": limits(account),
    }


def public_restriction(r) -> dict:
    shown = {"code": str(r.code), "since": r.created_at, "by": restriction_rows.public_by(r.set_by)}
    if r.held_fen is not None:
        shown["held_fen"] = r.held_fen
    return shown


def public_entry(entry: LedgerEntry) -> dict:
    return {
        "id": entry.id,
        "direction": str(entry.direction),
        "kind": str(entry.kind),
        "amount_fen": entry.amount_fen,
        "balance_after_fen": entry.balance_after_fen,
        "counts_as_outflow": entry.counts_as_outflow,
        "counterparty": entry.counterparty,
        "reference": entry.reference,
        "booked_at": entry.booked_at,
    }


def public_transfer(transfer: CardTransfer, account: Account) -> dict:
    return {
        "id": transfer.id,
        "account_id": transfer.account_id,
        "direction": str(transfer.direction),
        "amount_fen": transfer.amount_fen,
        "status": str(transfer.status),
        "decline_reason": transfer.decline_reason,
        "created_at": transfer.created_at,
        "finished_at": transfer.finished_at,
        "balance_fen": account.balance_fen,
    }


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
