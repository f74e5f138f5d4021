"""Daily reconciliation with WeChat Pay's trade bill, as merchants do it.

Once a day (the worker's ``payments.bill`` job, from ``BILL_RECONCILE_HOUR`` China Standard Time, for
the day before; or ``python -m app pay reconcile --date D``) the bill of a day is fetched through the
adapter (downloaded gzip-compressed, its SHA1 checked), read line by line, and compared with our books:

- every payment line must be an order of ours, ``paid``, for the same amount;
- every refund line a refund of ours, ``success``, for the same amount;
- every order paid here that day (``paid_at``, WeChat Pay's own ``success_time``) and every refund done
  here that day must be in the bill.

Each difference is recorded as a ``BillMismatch`` (``KINDS``) for a person to look at. Where WeChat Pay
itself settles the question, reconciliation acts as a notification would: an order still open here that
the bill shows paid (its notification was lost) is asked about and applied, and so is a refund still
processing; the mismatch stays on record with what was done. Nothing else is changed: an unknown payment,
an amount that differs, a payment missing from the bill need a person. Checking a day again replaces its
unresolved mismatches, so the table says what is wrong now; one a staff member resolved in the console
(``services.staff.payments.resolve``) stays, with its note, and the same difference is not raised again.

The bill format (a header of column names; one line per record, every value prefixed by a backtick;
then a summary's names and values; amounts in yuan) is WeChat Pay's; its summary must agree with its
lines, or the bill is refused rather than half-trusted.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import CHINA_TZ, utcnow
from models.payments import (
    BillMismatch,
    OrderStatus,
    PaymentBill,
    PaymentOrder,
    PaymentRefund,
    RefundStatus,
)
from services.context import ServiceContext
from services.db import atomic
from services.payments import orders, refunds

log = logging.getLogger(__name__)

KINDS = {
    "unknown_payment": "WeChat Pay took a payment for an order we do not have",
    "payment_not_recorded": "paid at WeChat Pay, not paid here (a lost notification)",
    "amount_differs": "the order's amount here is not what WeChat Pay took",
    "payment_missing_from_bill": "paid here that day, not in WeChat Pay's bill",
    "unknown_refund": "WeChat Pay made a refund we do not have",
    "refund_not_recorded": "refunded at WeChat Pay, not done here",
    "refund_amount_differs": "the refund's amount here is not what WeChat Pay refunded",
    "refund_missing_from_bill": "refunded here that day, not in WeChat Pay's bill",
}
SUMMARY_FIRST = "总交易单数"


class BillMalformed(Exception):
    """A bill we cannot read, or whose summary disagrees with its lines."""


@dataclass(frozen=True)
class BillLine:
    refund: bool  # a refund line (交易状态 REFUND), else a payment line (SUCCESS)
    out_trade_no: str
    transaction_id: str
    amount_fen: int  # what was paid (订单金额), or refunded (退款金额)
    out_refund_no: str | None = None
    refund_id: str | None = None


@dataclass
class Bill:
    lines: list[BillLine] = field(default_factory=list)

    @property
    def payments(self) -> list[BillLine]:
        return [line for line in self.lines if not line.refund]

    @property
    def refunds(self) -> list[BillLine]:
        return [line for line in self.lines if line.refund]


def fen(yuan: str) -> int:
    """``"12.34"`` → 1234; anything that is not a yuan amount with at most two decimals is refused."""
    try:
        value = Decimal(yuan) * 100
    except InvalidOperation:
        raise BillMalformed(f"not an amount: {yuan!r}") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise BillMalformed(f"not an amount: {yuan!r}")
    return int(value)


def _values(line: str) -> list[str]:
    return [v.removeprefix("`") for v in line.split(",")]


def parse(text: bytes) -> Bill:
    """An ``ALL`` trade bill: its payment and refund lines, once the summary agrees with them."""
    try:
        rows = text.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise BillMalformed("not UTF-8") from exc
    rows = [r for r in rows if r.strip()]
    ends = [i for i, r in enumerate(rows) if r.startswith(SUMMARY_FIRST)]
    if len(rows) < 3 or not ends or ends[-1] != len(rows) - 2:
        raise BillMalformed("no header, or no summary at the end")
    columns = rows[0].split(",")
    needed = ("交易状态", "商户订单号", "微信订单号", "订单金额", "应结订单金额", "商户退款单号", "微信退款单号", "退款金额")
    if any(c not in columns for c in needed):
        raise BillMalformed("not an ALL bill: columns missing")
    bill, settled, refunded = Bill(), 0, 0
    for row in rows[1:ends[-1]]:
        values = _values(row)
        if len(values) != len(columns):
            raise BillMalformed(f"a line of {len(values)} values, not {len(columns)}")
        v = dict(zip(columns, values))
        settled += fen(v["应结订单金额"])
        refunded += fen(v["退款金额"])
        if v["交易状态"] == "REFUND":
            bill.lines.append(BillLine(True, v["商户订单号"], v["微信订单号"], fen(v["退款金额"]), v["商户退款单号"],
                                       v["微信退款单号"]))
        elif v["交易状态"] == "SUCCESS":
            bill.lines.append(BillLine(False, v["商户订单号"], v["微信订单号"], fen(v["订单金额"])))
        else:
            raise BillMalformed(f"unknown 交易状态 {v['交易状态']!r}")
    summary = dict(zip(rows[-2].split(","), _values(rows[-1])))
    try:
        agrees = (int(summary["总交易单数"]) == len(bill.lines) and fen(summary["应结订单总金额"]) == settled
                  and fen(summary["退款总金额"]) == refunded)
    except (KeyError, ValueError):
        raise BillMalformed("the summary is unreadable") from None
    if not agrees:
        raise BillMalformed("the summary does not agree with the lines")
    return bill


@dataclass(frozen=True)
class Found:
    kind: str
    out_trade_no: str | None
    out_refund_no: str | None = None
    ours_fen: int | None = None
    bill_fen: int | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class DayResult:
    day: date
    had_bill: bool
    payments: int
    refunds: int
    mismatches: list[Found]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=CHINA_TZ)
    return start, start + timedelta(days=1)


async def reconcile_day(ctx: ServiceContext, day: date) -> DayResult:
    """Compare the day's bill with our orders and refunds; record and return the mismatches. Raises the
    adapter's ``WeChatPayUnavailable`` / ``WeChatPayError`` (nothing recorded) or ``BillMalformed``."""
    text = await ctx.wechatpay.trade_bill(day.isoformat())
    bill = parse(text) if text is not None else Bill()
    found = await _payments(ctx, day, bill) + await _refunds(ctx, day, bill)
    checked = utcnow()

    async def record(conn: BaseDBAsyncClient) -> None:
        values = {"hash_value": None if text is None else _sha1(text), "payments": len(bill.payments),
                  "refunds": len(bill.refunds), "payments_fen": sum(p.amount_fen for p in bill.payments),
                  "refunds_fen": sum(r.amount_fen for r in bill.refunds), "mismatches": len(found),
                  "checked_at": checked}
        if not await PaymentBill.filter(bill_date=day).using_db(conn).update(**values):
            await PaymentBill.create(bill_date=day, **values, using_db=conn)
        # what a person resolved stays on record (who, when, why), and is not raised again
        await BillMismatch.filter(bill_date=day, resolved_at__isnull=True).using_db(conn).delete()
        resolved = {_key(m) for m in await BillMismatch.filter(bill_date=day).using_db(conn)}
        await BillMismatch.bulk_create([
            BillMismatch(bill_date=day, kind=f.kind, out_trade_no=f.out_trade_no, out_refund_no=f.out_refund_no,
                         ours_fen=f.ours_fen, bill_fen=f.bill_fen, resolution=f.resolution, found_at=checked)
            for f in found if _key(f) not in resolved], using_db=conn)

    await atomic(record)
    if found:
        log.warning("wechatpay bill mismatches", extra={"bill_date": day.isoformat(), "mismatches": len(found),
                                                        "kinds": sorted({f.kind for f in found})})
    return DayResult(day, text is not None, len(bill.payments), len(bill.refunds), found)


def _key(m: Found | BillMismatch) -> tuple:
    """What makes two mismatches of a day the same difference."""
    return m.kind, m.out_trade_no, m.out_refund_no, m.ours_fen, m.bill_fen


def _sha1(text: bytes) -> str:
    return hashlib.sha1(text, usedforsecurity=False).hexdigest()


async def _payments(ctx: ServiceContext, day: date, bill: Bill) -> list[Found]:
    found: list[Found] = []
    lines = {line.out_trade_no: line for line in bill.payments}
    ours = {o.out_trade_no: o for o in await PaymentOrder.filter(out_trade_no__in=list(lines))} if lines else {}
    for no, line in lines.items():
        order = ours.get(no)
        if order is None:
            found.append(Found("unknown_payment", no, bill_fen=line.amount_fen))
            continue
        if order.amount_fen != line.amount_fen:
            found.append(Found("amount_differs", no, ours_fen=order.amount_fen, bill_fen=line.amount_fen))
        if order.status != OrderStatus.PAID:
            resolution = None
            if order.status in orders.OPEN:  # the notification was lost: WeChat Pay settles it, as it would have
                after = await orders.refresh(ctx, order)
                resolution = f"asked WeChat Pay: now {after.status}"
            found.append(Found("payment_not_recorded", no, ours_fen=order.amount_fen, bill_fen=line.amount_fen,
                               resolution=resolution))
    start, end = day_bounds(day)
    for order in await PaymentOrder.filter(status=OrderStatus.PAID, paid_at__gte=start, paid_at__lt=end):
        if order.out_trade_no not in lines:
            found.append(Found("payment_missing_from_bill", order.out_trade_no, ours_fen=order.amount_fen))
    return found


async def _refunds(ctx: ServiceContext, day: date, bill: Bill) -> list[Found]:
    found: list[Found] = []
    lines = {line.out_refund_no: line for line in bill.refunds}
    ours = ({r.out_refund_no: r for r in await PaymentRefund.filter(out_refund_no__in=list(lines))}
            if lines else {})
    for no, line in lines.items():
        row = ours.get(no)
        if row is None:
            found.append(Found("unknown_refund", line.out_trade_no, no, bill_fen=line.amount_fen))
            continue
        if row.amount_fen != line.amount_fen:
            found.append(Found("refund_amount_differs", line.out_trade_no, no, row.amount_fen, line.amount_fen))
        if row.status != RefundStatus.SUCCESS:
            resolution = None
            if row.status == RefundStatus.PROCESSING:
                answer = await ctx.wechatpay.query_refund(no)
                resolution = "asked WeChat Pay: " + (await refunds.apply_refund(ctx, answer, source="bill")
                                                     if answer else "no such refund")
            found.append(Found("refund_not_recorded", line.out_trade_no, no, row.amount_fen, line.amount_fen,
                               resolution))
    start, end = day_bounds(day)
    for row in await PaymentRefund.filter(status=RefundStatus.SUCCESS, finished_at__gte=start,
                                          finished_at__lt=end).prefetch_related("order"):
        if row.out_refund_no not in lines:
            found.append(Found("refund_missing_from_bill", row.order.out_trade_no, row.out_refund_no, row.amount_fen))
    return found


def due_day(now: datetime, hour: int) -> date | None:
    """The day whose bill the daily job checks at ``now``: yesterday (China Standard Time), once WeChat
    Pay has made it (from ``hour`` o'clock)."""
    local = now.astimezone(CHINA_TZ)
    return local.date() - timedelta(days=1) if local.hour >= hour else None


async def daily(ctx: ServiceContext, *, hour: int) -> dict:
    """The worker's job: check yesterday's bill once (a day already checked is left alone)."""
    day = due_day(utcnow(), hour)
    if day is None or await PaymentBill.exists(bill_date=day):
        return {"checked": None}
    result = await reconcile_day(ctx, day)
    return {"checked": day.isoformat(), "payments": result.payments, "refunds": result.refunds,
            "mismatches": len(result.mismatches)}
