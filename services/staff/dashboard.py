"""The console's landing page: today's numbers (China Standard Time), read from the tables themselves,
and the last 14 days of four of them, one grouped query per measure.

Days are China Standard Time. ``booked_day`` already is one; an opening's day is computed in SQL from
``opened_at`` (UTC in the column) plus eight hours, with each database's own date function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from tortoise import Tortoise

from core.clock import CHINA_TZ, china_day, utcnow
from models.accounts import Account, CardTransfer
from models.enums import DebitStatus, OutboxStatus, TransferStatus
from models.infra import OutboxMessage
from models.partners import PartnerDebit
from models.payments import BillMismatch
from services.db import placeholder
from services.partners.notify import KIND as WEBHOOK_KIND

CHART_DAYS = 14
# a debit that fell into arrears that day: still owed, or paid later (settled)
IN_ARREARS = (DebitStatus.ARREARS, DebitStatus.SETTLED)


@dataclass(frozen=True)
class Today:
    day: date
    openings: int  # accounts opened today
    debits: int  # partner debits booked today (succeeded, in arrears or settled since)
    refusals: int  # partner debits refused today (risk control, a restricted or closed account)
    held: int  # top-ups and withdrawals held by risk control now, whenever they came
    arrears: int  # partner debits booked today that fell into arrears (owed still, or settled since)
    webhooks_failed: int  # partner notifications given up today (no more tries)
    webhooks_retrying: int  # partner notifications that failed and wait for another try, now
    mismatches: int  # daily-bill mismatches nobody has resolved yet, whatever their day


@dataclass(frozen=True)
class Series:
    """One measure over the last ``CHART_DAYS`` days, oldest first (every day present, zero included)."""

    name: str
    label: str
    days: list[date]
    counts: list[int]

    @property
    def peak(self) -> int:
        return max(self.counts, default=0)

    @property
    def total(self) -> int:
        return sum(self.counts)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    # in UTC, as the columns hold it (SQLite compares the stored text)
    start = datetime.combine(day, time(0), tzinfo=CHINA_TZ).astimezone(timezone.utc)
    return start, start + timedelta(days=1)


async def today() -> Today:
    day = china_day(utcnow())
    start, end = _day_bounds(day)
    booked = PartnerDebit.filter(booked_day=day)
    webhooks = OutboxMessage.filter(kind=WEBHOOK_KIND)
    return Today(
        day=day,
        openings=await Account.filter(opened_at__gte=start, opened_at__lt=end).count(),
        debits=await booked.exclude(status=DebitStatus.REFUSED).count(),
        refusals=await booked.filter(status=DebitStatus.REFUSED).count(),
        held=await CardTransfer.filter(status=TransferStatus.HELD).count(),
        arrears=await booked.filter(status__in=IN_ARREARS).count(),
        webhooks_failed=await webhooks.filter(status=OutboxStatus.GAVE_UP, finished_at__gte=start,
                                              finished_at__lt=end).count(),
        webhooks_retrying=await webhooks.filter(status=OutboxStatus.PENDING, attempts__gt=0).count(),
        mismatches=await BillMismatch.filter(resolved_at__isnull=True).count(),
    )


def _opened_day(dialect: str) -> str:
    """The China Standard Time day of ``opened_at`` (stored in UTC), as SQL of this database."""
    if dialect == "sqlite":
        return "date(opened_at, '+8 hours')"  # the column is ISO text with its +00:00 offset
    return "DATE(DATE_ADD(opened_at, INTERVAL 8 HOUR))"


async def _grouped(sql: str, params: list) -> dict[str, int]:
    conn = Tortoise.get_connection("default")
    rows = await conn.execute_query_dict(sql.replace("{mark}", placeholder(conn)), params)
    return {str(r["day"])[:10]: int(r["n"]) for r in rows}


async def last_days(days: int = CHART_DAYS) -> list[Series]:
    """Openings, debits booked, debits refused and debits fallen into arrears per day, the last ``days``
    days up to today: four grouped queries, whatever the number of days."""
    end = china_day(utcnow())
    first = end - timedelta(days=days - 1)
    span = [first + timedelta(days=i) for i in range(days)]
    dialect = Tortoise.get_connection("default").capabilities.dialect
    opened = _opened_day(dialect)
    lo, hi = first.isoformat(), end.isoformat()
    # nosec B608: only the fixed expressions above are put into the SQL; the values are parameters
    openings = await _grouped(
        f"SELECT {opened} AS day, COUNT(*) AS n FROM accounts WHERE {opened} >= {{mark}} AND {opened} <= {{mark}} "  # nosec B608
        f"GROUP BY {opened}", [lo, hi])

    async def debits(condition: str, statuses: list[str]) -> dict[str, int]:
        marks = ", ".join(["{mark}"] * len(statuses))
        return await _grouped(
            "SELECT booked_day AS day, COUNT(*) AS n FROM partner_debits WHERE booked_day >= {mark} "  # nosec B608
            f"AND booked_day <= {{mark}} AND status {condition} ({marks}) GROUP BY booked_day",
            [lo, hi, *statuses])

    refused = [str(DebitStatus.REFUSED)]
    measures = (
        ("openings", "新开账户", openings),
        ("debits", "合作方扣款", await debits("NOT IN", refused)),
        ("refusals", "拒绝扣款", await debits("IN", refused)),
        ("arrears", "欠款", await debits("IN", [str(s) for s in IN_ARREARS])),
    )
    return [Series(name, label, span, [counts.get(d.isoformat(), 0) for d in span])
            for name, label, counts in measures]
