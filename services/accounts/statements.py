"""Monthly account statements for the account's holder: every ledger entry booked in a calendar month of
China Standard Time, the opening balance (the balance after the last entry before the month, 0 when there
is none) and the closing balance (after the month's last entry; the opening one when the month has none).

The statement is read straight from the ledger, in one consistent read (``causal_read``), so the CSV and
the PDF made from the same ``Statement`` agree with each other and with the ledger: closing − opening is
the month's credits less its debits. The PDF is rendered and sealed by the bank (PAdES) in the e-signing
worker processes (``ContractWorkers.statement``); nothing heavy runs on the event loop.

Months: ``YYYY-MM``. A month that has not begun in China (422 ``STATEMENT_MONTH_IN_FUTURE``) or that ended
before the account was opened (422 ``STATEMENT_BEFORE_OPENING``) has no statement; the current month's is
the statement so far. Personal data: the statement shows the holder's name in full (户名, as a bank prints
it on its holder's statement) and the account number masked; neither goes into a log.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import CHINA_TZ, china_day, utcnow
from core.errors import ValidationFailed
from core.money import yuan
from core.pii import mask_card
from models.accounts import Account, EntryDirection, LedgerEntry
from services.accounts.views import owned
from services.context import ServiceContext
from services.db import causal_read
from services.esign.statement_pdf import StatementDocument
from services.esign.templates import DEFAULT_BANK_NAME
from services.identity.id_card import verified_identity

_MONTH_RE = re.compile(r"^([0-9]{4})-([0-9]{2})$")
MONTH_PATTERN = _MONTH_RE.pattern

CSV_COLUMNS = ("record", "booked_at", "kind", "direction", "amount_fen", "amount_yuan", "balance_after_fen",
               "balance_after_yuan", "counterparty", "reference")

# How the statement names each kind of entry (摘要). A kind added later prints as its code until named here.
KIND_LABELS = {
    "top_up": "绑定卡转入", "withdrawal": "转出至绑定卡", "withdrawal_reversal": "转出退回",
    "toll": "通行费", "parking": "停车费", "fuel": "加油", "carwash": "洗车",
    "toll_refund": "通行费退款", "parking_refund": "停车费退款", "fuel_refund": "加油退款",
    "carwash_refund": "洗车退款",
}


class StatementMonthInvalid(ValidationFailed):
    code, message = "STATEMENT_MONTH_INVALID", "对账单月份格式应为 YYYY-MM，例如 2026-01"


class StatementMonthInFuture(ValidationFailed):
    code, message = "STATEMENT_MONTH_IN_FUTURE", "该月份尚未开始，没有对账单"


class StatementBeforeOpening(ValidationFailed):
    code, message = "STATEMENT_BEFORE_OPENING", "账户开立之前的月份没有对账单"


@dataclass(frozen=True)
class Statement:
    account: Account
    holder_name: str
    month: date  # the first day
    last_day: date  # the month's last day, or today for the current month
    opening_fen: int
    closing_fen: int
    entries: list[LedgerEntry]
    issued_at: datetime

    @property
    def month_text(self) -> str:
        return f"{self.month:%Y-%m}"

    @property
    def reference(self) -> str:
        return f"ST{self.month:%Y%m}-{self.account.id}"

    @property
    def credits_fen(self) -> int:
        return sum(e.amount_fen for e in self.entries if e.direction == EntryDirection.CREDIT)

    @property
    def debits_fen(self) -> int:
        return sum(e.amount_fen for e in self.entries if e.direction == EntryDirection.DEBIT)


def parse_month(text: str) -> date:
    """``YYYY-MM`` -> the month's first day. Raises ``StatementMonthInvalid``."""
    match = _MONTH_RE.fullmatch(text or "")
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
        raise StatementMonthInvalid(field="month")
    return date(int(match[1]), int(match[2]), 1)


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def month_bounds(first: date) -> tuple[datetime, datetime]:
    """The month as instants: [its first 00:00, the next month's first 00:00) in China Standard Time."""
    return (datetime.combine(first, time(), CHINA_TZ), datetime.combine(_next_month(first), time(), CHINA_TZ))


def _china_time(at: datetime) -> str:
    return f"{at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M:%S}"


async def monthly(ctx: ServiceContext, user_id: int, account_id: int, month: str) -> Statement:
    """The statement of ``month`` for the holder of ``account_id`` (404 ``ACCOUNT_NOT_FOUND`` for anyone else)."""
    first = parse_month(month)
    now = utcnow()
    today = china_day(now)
    if first > today.replace(day=1):
        raise StatementMonthInFuture(field="month")
    start, end = (bound.astimezone(timezone.utc) for bound in month_bounds(first))

    async def read(conn: BaseDBAsyncClient | None) -> tuple[Account, LedgerEntry | None, list[LedgerEntry]]:
        account = await owned(user_id, account_id, conn)
        if first < china_day(account.opened_at).replace(day=1):
            raise StatementBeforeOpening(field="month")
        entries = LedgerEntry.filter(account_id=account_id).using_db(conn)
        before = await entries.filter(booked_at__lt=start).order_by("-id").first()
        during = await entries.filter(booked_at__gte=start, booked_at__lt=end).order_by("id")
        return account, before, list(during)

    account, before, entries = await causal_read(read)
    opening = before.balance_after_fen if before is not None else 0
    closing = entries[-1].balance_after_fen if entries else opening
    found = await verified_identity(ctx, user_id)
    last_day = min(_next_month(first) - timedelta(days=1), today)
    return Statement(account=account, holder_name=found[1] if found else "", month=first, last_day=last_day,
                     opening_fen=opening, closing_fen=closing, entries=entries, issued_at=now)


def to_csv(statement: Statement) -> str:
    """One ``opening`` row, one ``entry`` row per ledger entry (in booking order), one ``closing`` row.
    Amounts in fen (integers) and in yuan (text); times in China Standard Time with their offset."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    start, _ = month_bounds(statement.month)
    writer.writerow(["opening", start.isoformat(), "", "", "", "", statement.opening_fen,
                     yuan(statement.opening_fen, grouped=False), "", ""])
    for e in statement.entries:
        writer.writerow(["entry", e.booked_at.astimezone(CHINA_TZ).isoformat(), str(e.kind), str(e.direction),
                         e.amount_fen, yuan(e.amount_fen, grouped=False), e.balance_after_fen,
                         yuan(e.balance_after_fen, grouped=False), e.counterparty or "", e.reference])
    writer.writerow(["closing", statement.issued_at.astimezone(CHINA_TZ).isoformat(), "", "", "", "",
                     statement.closing_fen, yuan(statement.closing_fen, grouped=False), "", ""])
    return out.getvalue()


def document(statement: Statement) -> StatementDocument:
    """What the PDF prints, as text."""
    rows = []
    for e in statement.entries:
        credit = e.direction == EntryDirection.CREDIT
        rows.append((_china_time(e.booked_at), KIND_LABELS.get(str(e.kind), str(e.kind)), e.counterparty or "",
                     yuan(e.amount_fen) if credit else "", "" if credit else yuan(e.amount_fen),
                     yuan(e.balance_after_fen), e.reference))
    return StatementDocument(
        statement_ref=statement.reference,
        bank_name=DEFAULT_BANK_NAME,
        holder_name=statement.holder_name,
        account_masked=mask_card(statement.account.number),
        account_class=statement.account.account_class,
        month=statement.month_text,
        period=f"{statement.month.isoformat()} 至 {statement.last_day.isoformat()}",
        opening=yuan(statement.opening_fen),
        closing=yuan(statement.closing_fen),
        total_in=yuan(statement.credits_fen),
        total_out=yuan(statement.debits_fen),
        issued_at=_china_time(statement.issued_at),
        rows=rows,
    )


async def pdf(ctx: ServiceContext, statement: Statement) -> bytes:
    """The statement as a PDF sealed by the bank (PAdES; B-T when a TSA is configured)."""
    return await ctx.contract_workers.statement(document(statement), tsa_url=ctx.settings.esign_tsa_url)
