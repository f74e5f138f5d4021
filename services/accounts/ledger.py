"""The ledger: the only code that changes a balance, and always with an entry.

``post`` runs inside the caller's transaction (``services.db.atomic``, which runs the whole unit again
when the database aborts it for a lock conflict). It locks the account row, finds an entry already
posted for the same ``(kind, reference)`` and returns it (a retried movement moves nothing twice),
checks the account class's rules against the locked row (balance, outflow today and this year in China
Standard Time, the balance cap with what is on its way in), writes the new balance and counters and the
entry. Everything or nothing: a refusal raises, and the transaction leaves no trace.

Restrictions (``services.accounts.restrictions``) are read here, under the same lock: on a ``restricted``
account a debit is refused (``ACCOUNT_RESTRICTED``), except that a judicial freeze of an amount only lets
out what the balance has above the sum held; credits still book. Nothing books on a ``closing`` account
(its whole balance on its way to the bound card, ``services.accounts.closing``) or a ``closed`` one: both
answer ``ACCOUNT_CLOSED``.

Lock order, to keep clear of deadlocks: an account row, then its holder's row; opening an account
locks only the holder's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import china_day, utcnow
from core.errors import AppError, Conflict, NotFound
from core.money import yuan
from models.accounts import (
    Account, AccountHolder, AccountRestriction, AccountStatus, EntryDirection, EntryKind, LedgerEntry,
)
from services.accounts.rules import CLASS_III_ID_COLLECTION_FEN, rules_for


# Nothing books on these: closing (the whole balance on its way to the bound card) and closed.
SHUT = frozenset({AccountStatus.CLOSING, AccountStatus.CLOSED})


class InsufficientFunds(AppError):
    status, code, message = 422, "INSUFFICIENT_FUNDS", "账户余额不足"


class LimitExceeded(AppError):
    status, code, message = 422, "LIMIT_EXCEEDED", "超出账户交易限额"


class BalanceCapExceeded(AppError):
    status, code, message = 422, "BALANCE_CAP_EXCEEDED", "超出账户余额上限"


class AccountRestricted(Conflict):
    code, message = "ACCOUNT_RESTRICTED", "账户已被限制（挂失或冻结），暂不能转出资金"


class AccountClosed(Conflict):
    code, message = "ACCOUNT_CLOSED", "账户已销户"


class AccountNotFound(NotFound):
    code, message = "ACCOUNT_NOT_FOUND", "账户不存在"


@dataclass(frozen=True)
class Posted:
    entry: LedgerEntry
    account: Account  # as it stands after the movement
    created: bool  # False: this (kind, reference) had been posted already


def outflow_used(account: Account, at: datetime) -> tuple[int, int]:
    """(today, this year) counted against the outflow limits, in China Standard Time."""
    day = china_day(at)
    today = account.outflow_day_fen if account.outflow_day == day else 0
    year = account.outflow_year_fen if account.outflow_year == day.year else 0
    return today, year


async def locked_account(conn: BaseDBAsyncClient, account_id: int) -> Account:
    account = await Account.filter(id=account_id).select_for_update().using_db(conn).first()
    if account is None:
        raise AccountNotFound()
    return account


async def check_outflow(conn: BaseDBAsyncClient, account: Account, amount_fen: int) -> None:
    """Refuse ``amount_fen`` out of the locked ``account`` if a restriction in force stops it: any
    restriction but a judicial freeze of an amount stops every outflow; freezes of amounts hold their sum,
    and only the balance above it may leave. A debit beyond the balance itself is left to the balance
    check (``INSUFFICIENT_FUNDS``), as on any account."""
    if account.status in SHUT:
        raise AccountClosed()
    if account.status != AccountStatus.RESTRICTED:
        return
    held = 0
    for restriction in await AccountRestriction.filter(account_id=account.id, lifted_at=None).using_db(conn):
        if restriction.held_fen is None:
            raise AccountRestricted()
        held += restriction.held_fen
    if account.balance_fen >= amount_fen and account.balance_fen - held < amount_fen:
        raise AccountRestricted(f"账户有 ¥{yuan(held)} 被司法冻结，最多可转出 ¥{yuan(max(0, account.balance_fen - held))}")


async def post(
    conn: BaseDBAsyncClient,
    account_id: int,
    *,
    direction: EntryDirection,
    kind: EntryKind,
    amount_fen: int,
    reference: str,
    counterparty: str | None = None,
    counts_as_outflow: bool = False,
    reserved_fen: int = 0,
    settling: bool = False,
    reversal: bool = False,
) -> Posted:
    """Move ``amount_fen`` in or out of the account, with its entry.

    ``counts_as_outflow``: a debit counted against the class's daily and yearly outflow limits
    (consumption, payments, transfers to non-bound parties; not a withdrawal to the bound card).
    ``reserved_fen``: for a credit, the part of ``pending_in_fen`` reserved for it (``reserve_inflow``).
    ``settling``: the credit settles money already moved for this account (a pull the card network
    made, a withdrawal it refused, a debit refunded): booked whatever the account's restrictions. Nothing
    books on a closing or closed account (closing waits for every transfer to end; a declined closing
    payout moves the account back to ``active`` before its reversal books).
    ``reversal``: the credit returns money that left this account (a declined withdrawal, a refunded
    debit): not counted as Class III flow again. Every credit is held to the balance cap, less the room
    reserved for it: a declined withdrawal fits because its room stayed reserved (``hold_return``); a
    refund that would pass the cap is refused."""
    if amount_fen <= 0:
        raise ValueError("amount_fen must be positive")
    kind = EntryKind(kind)  # an unknown kind is refused here, not found unreadable later (ValueError)
    account = await locked_account(conn, account_id)
    existing = await LedgerEntry.filter(account_id=account_id, kind=kind, reference=reference).using_db(conn).first()
    if existing is not None:
        return Posted(existing, account, False)
    if settling and direction == EntryDirection.DEBIT:
        raise ValueError("settling books credits only")
    if account.status in SHUT:
        raise AccountClosed()
    if direction == EntryDirection.DEBIT:
        await check_outflow(conn, account, amount_fen)
    rules = rules_for(account.account_class)
    now = utcnow()
    day = china_day(now)
    updates: dict = {}
    balance = account.balance_fen
    if direction == EntryDirection.DEBIT:
        if balance < amount_fen:
            raise InsufficientFunds()
        if counts_as_outflow:
            today, year = outflow_used(account, now)
            if today + amount_fen > rules.daily_outflow_fen or year + amount_fen > rules.yearly_outflow_fen:
                raise LimitExceeded()
            updates.update(outflow_day=day, outflow_day_fen=today + amount_fen,
                           outflow_year=day.year, outflow_year_fen=year + amount_fen)
        balance -= amount_fen
    else:
        pending = account.pending_in_fen - reserved_fen
        if pending < 0:
            raise ValueError("released more than was reserved")
        if rules.balance_cap_fen is not None and balance + pending + amount_fen > rules.balance_cap_fen:
            raise BalanceCapExceeded()
        balance += amount_fen
        updates["pending_in_fen"] = pending
    updates["balance_fen"] = balance
    await Account.filter(id=account_id).using_db(conn).update(**updates)
    for name, value in updates.items():
        setattr(account, name, value)
    entry = await LedgerEntry.create(
        account_id=account_id, direction=direction, kind=kind, amount_fen=amount_fen, balance_after_fen=balance,
        counts_as_outflow=counts_as_outflow, reference=reference, counterparty=counterparty, booked_at=now,
        booked_day=day, using_db=conn,
    )
    if account.account_class == "III" and not reversal:
        await _count_class_iii_flow(conn, account.holder_index, amount_fen)
    return Posted(entry, account, True)


async def reserve_inflow(conn: BaseDBAsyncClient, account_id: int, amount_fen: int) -> Account:
    """Hold room under the balance cap for money on its way in (before any of it moves)."""
    account = await locked_account(conn, account_id)
    if account.status in SHUT:  # a restricted account still takes money in
        raise AccountClosed()
    cap = rules_for(account.account_class).balance_cap_fen
    if cap is not None and account.balance_fen + account.pending_in_fen + amount_fen > cap:
        raise BalanceCapExceeded()
    account.pending_in_fen += amount_fen
    await Account.filter(id=account_id).using_db(conn).update(pending_in_fen=account.pending_in_fen)
    return account


async def hold_return(conn: BaseDBAsyncClient, account_id: int, amount_fen: int) -> None:
    """Keep room under the balance cap for money that left but may come back (a withdrawal not yet
    final): it counts as on its way in until the card network's answer is final, so a top-up cannot
    take the room its reversal needs. Taken in the transaction that debited it, so it always fits."""
    account = await locked_account(conn, account_id)
    await Account.filter(id=account_id).using_db(conn).update(pending_in_fen=account.pending_in_fen + amount_fen)


async def release_inflow(conn: BaseDBAsyncClient, account_id: int, amount_fen: int) -> None:
    """Give back room reserved for money that did not come."""
    account = await locked_account(conn, account_id)
    await Account.filter(id=account_id).using_db(conn).update(
        pending_in_fen=max(0, account.pending_in_fen - amount_fen))


async def _count_class_iii_flow(conn: BaseDBAsyncClient, holder_index: str, amount_fen: int) -> None:
    holder = await AccountHolder.filter(holder_index=holder_index).select_for_update().using_db(conn).first()
    if holder is None:  # opened before holders were tracked; the opening creates it otherwise
        holder = await AccountHolder.create(holder_index=holder_index, using_db=conn)
    total = holder.class_iii_flow_fen + amount_fen
    flagged = holder.id_collection_required_at
    if flagged is None and total >= CLASS_III_ID_COLLECTION_FEN:
        flagged = utcnow()
    await AccountHolder.filter(holder_index=holder_index).using_db(conn).update(
        class_iii_flow_fen=total, id_collection_required_at=flagged)


@dataclass(frozen=True)
class Mismatch:
    account_id: int
    number: str
    balance_fen: int
    entries_sum_fen: int
    last_balance_after_fen: int | None


@dataclass(frozen=True)
class LedgerReport:
    accounts: int
    entries: int
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches


async def check() -> LedgerReport:
    """Every account whose balance is not the sum of its entries, or not what its last entry says."""
    from tortoise import Tortoise

    conn = Tortoise.get_connection("default")
    rows = await conn.execute_query_dict(
        "SELECT a.id AS id, a.number AS number, a.balance_fen AS balance, COUNT(e.id) AS entries, "
        "COALESCE(SUM(CASE WHEN e.direction = 'credit' THEN e.amount_fen ELSE -e.amount_fen END), 0) AS total, "
        "(SELECT l.balance_after_fen FROM ledger_entries l WHERE l.account_id = a.id ORDER BY l.id DESC LIMIT 1) "
        "AS last_after FROM accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id "
        "GROUP BY a.id, a.number, a.balance_fen ORDER BY a.id"
    )
    bad = []
    for r in rows:
        total, last = int(r["total"]), r["last_after"]
        if total != r["balance"] or (last is not None and int(last) != r["balance"]):
            bad.append(Mismatch(r["id"], r["number"], r["balance"], total, None if last is None else int(last)))
    return LedgerReport(len(rows), sum(int(r["entries"]) for r in rows), bad)
