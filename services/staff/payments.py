"""The console's payments page (``/admin/payments``): WeChat Pay orders, refunds and the daily-bill
mismatches (``services.payments.bills``), and a person's resolution of a mismatch.

Amounts are shown in yuan (``core.money.yuan``). Orders name their customer by user id only (no openid,
no phone); a refund's free-text reason passes through ``core.pii.redact``. A mismatch is resolved once:
one conditional UPDATE (``resolved_at IS NULL``) decides between two members resolving it at once, and
the loser gets 409; the resolution and its audit event (``payments.mismatch_resolved``) are one
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from core.clock import CHINA_TZ, utcnow
from core.errors import Conflict, NotFound, ValidationFailed
from core.money import yuan
from core.pii import redact
from models.enums import OrderStatus, RefundStatus
from models.payments import BillMismatch, PaymentOrder, PaymentRefund
from services.db import atomic
from services.payments.bills import KINDS
from services.staff import fields, sessions

LIST_MAX = 100  # rows shown of each list (newest first); CSV up to EXPORT_MAX
EXPORT_MAX = 5000
NOTE_MIN, NOTE_MAX = 4, 500
MISMATCH_STATES = ("open", "resolved", "all")
KIND_NAMES = {
    "unknown_payment": "微信支付有、我方无此订单", "payment_not_recorded": "微信支付已收款、我方未记为已支付",
    "amount_differs": "订单金额不一致", "payment_missing_from_bill": "我方已支付、账单中没有",
    "unknown_refund": "微信支付有、我方无此退款", "refund_not_recorded": "微信支付已退款、我方未完成",
    "refund_amount_differs": "退款金额不一致", "refund_missing_from_bill": "我方已退款、账单中没有",
}
assert set(KIND_NAMES) == set(KINDS)


def _cst(at: datetime | None) -> str:
    return at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def _yuan(fen: int | None) -> str:
    return "" if fen is None else yuan(fen)


@dataclass(frozen=True)
class Filters:
    order_status: str = ""
    order_day: date | None = None  # the day (China Standard Time) the order was made
    refund_status: str = ""
    mismatch_state: str = "open"

    def as_dict(self) -> dict:
        return {"order_status": self.order_status, "order_day": self.order_day and self.order_day.isoformat(),
                "refund_status": self.refund_status, "mismatch_state": self.mismatch_state}


def parse_filters(args: dict) -> Filters:
    return Filters(order_status=fields.choice(args, "order_status", {str(s) for s in OrderStatus}),
                   order_day=fields.day(args, "order_day"),
                   refund_status=fields.choice(args, "refund_status", {str(s) for s in RefundStatus}),
                   mismatch_state=fields.choice(args, "mismatch_state", MISMATCH_STATES) or "open")


@dataclass(frozen=True)
class OrderRow:
    id: int
    out_trade_no: str
    user: str
    purpose: str
    amount: str
    refunded: str
    status: str
    created_at: str
    paid_at: str

    def csv(self) -> list:
        return [self.id, self.out_trade_no, self.user, self.purpose, self.amount, self.refunded, self.status,
                self.created_at, self.paid_at]


ORDER_HEADER = ("编号", "商户订单号", "用户", "用途", "金额（元）", "已退款（元）", "状态", "下单时间", "支付时间")


async def orders(f: Filters, *, limit: int = LIST_MAX) -> list[OrderRow]:
    query = PaymentOrder.all()
    if f.order_status:
        query = query.filter(status=f.order_status)
    if f.order_day:
        start = datetime.combine(f.order_day, time(0), tzinfo=CHINA_TZ).astimezone(timezone.utc)
        query = query.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1))
    return [OrderRow(o.id, o.out_trade_no, f"user:{o.user_id}", o.purpose, yuan(o.amount_fen), yuan(o.refunded_fen),
                     str(o.status), _cst(o.created_at), _cst(o.paid_at))
            for o in await query.order_by("-id").limit(limit)]


@dataclass(frozen=True)
class RefundRow:
    id: int
    out_refund_no: str
    out_trade_no: str
    amount: str
    reason: str
    status: str
    created_at: str
    finished_at: str

    def csv(self) -> list:
        return [self.id, self.out_refund_no, self.out_trade_no, self.amount, self.reason, self.status,
                self.created_at, self.finished_at]


REFUND_HEADER = ("编号", "商户退款单号", "商户订单号", "金额（元）", "原因", "状态", "申请时间", "完成时间")


async def refunds(f: Filters, *, limit: int = LIST_MAX) -> list[RefundRow]:
    query = PaymentRefund.all().select_related("order")
    if f.refund_status:
        query = query.filter(status=f.refund_status)
    return [RefundRow(r.id, r.out_refund_no, r.order.out_trade_no, yuan(r.amount_fen), redact(r.reason or ""),
                      str(r.status), _cst(r.created_at), _cst(r.finished_at))
            for r in await query.order_by("-id").limit(limit)]


@dataclass(frozen=True)
class MismatchRow:
    id: int
    bill_date: str
    kind: str
    kind_name: str
    out_trade_no: str
    out_refund_no: str
    ours: str
    bill: str
    resolution: str  # what reconciliation itself did
    found_at: str
    resolved: bool
    resolved_by: str
    resolved_at: str
    note: str

    def csv(self) -> list:
        return [self.id, self.bill_date, self.kind, self.out_trade_no, self.out_refund_no, self.ours, self.bill,
                self.resolution, self.found_at, self.resolved_by, self.resolved_at, self.note]


MISMATCH_HEADER = ("编号", "账单日期", "差异类型", "商户订单号", "商户退款单号", "我方金额（元）", "账单金额（元）",
                   "对账处理", "发现时间", "处理人", "处理时间", "处理说明")


def _mismatch_row(m: BillMismatch) -> MismatchRow:
    return MismatchRow(m.id, m.bill_date.isoformat(), m.kind, KIND_NAMES.get(m.kind, m.kind), m.out_trade_no or "",
                       m.out_refund_no or "", _yuan(m.ours_fen), _yuan(m.bill_fen), m.resolution or "",
                       _cst(m.found_at), m.resolved_at is not None,
                       f"staff:{m.resolved_by_id}" if m.resolved_by_id else "", _cst(m.resolved_at),
                       m.resolution_note or "")


async def mismatches(f: Filters, *, limit: int = LIST_MAX) -> list[MismatchRow]:
    query = BillMismatch.all()
    if f.mismatch_state == "open":
        query = query.filter(resolved_at__isnull=True)
    elif f.mismatch_state == "resolved":
        query = query.filter(resolved_at__isnull=False)
    return [_mismatch_row(m) for m in await query.order_by("-bill_date", "-id").limit(limit)]


class MismatchResolved(Conflict):
    code, message = "MISMATCH_ALREADY_RESOLVED", "该差异已处理，不能再次处理"


def check_note(note: str) -> str:
    note = note.strip()
    if not NOTE_MIN <= len(note) <= NOTE_MAX:
        raise ValidationFailed(f"处理说明须为 {NOTE_MIN} 到 {NOTE_MAX} 个字符", field="note")
    return note


async def resolve(current: sessions.Current, client: sessions.Client, mismatch_id: int, note: str) -> MismatchRow:
    """Record who resolved the mismatch, when and why (once: 409 after), with its audit event."""
    note = check_note(note)

    async def work(conn) -> BillMismatch:
        row = await BillMismatch.get_or_none(id=mismatch_id).using_db(conn)
        if row is None:
            raise NotFound("没有这条对账差异")
        now = utcnow()
        # the conditional UPDATE is the decision: of two members at once, one changes the row
        if not await BillMismatch.filter(id=mismatch_id, resolved_at__isnull=True).using_db(conn).update(
                resolved_at=now, resolved_by_id=current.staff.id, resolution_note=note):
            raise MismatchResolved()
        await sessions.record(conn, current, client, "payments.mismatch_resolved", entity_type="bill_mismatch",
                              entity_id=mismatch_id, reason=redact(note), bill_date=row.bill_date.isoformat(),
                              kind=row.kind, out_trade_no=row.out_trade_no, out_refund_no=row.out_refund_no)
        return await BillMismatch.get(id=mismatch_id).using_db(conn)

    return _mismatch_row(await atomic(work))


ORDER_STATUSES = [str(s) for s in OrderStatus]
REFUND_STATUSES = [str(s) for s in RefundStatus]
