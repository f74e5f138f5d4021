"""Refunds of paid device fees (arrears went to partners: they are not refunded here).

A refund is reserved before WeChat Pay is asked: one transaction locks the order, checks that what is
refunded (done or in progress) plus this one stays within what was paid, adds it to ``refunded_fen``
and records the refund ``processing`` under its own ``out_refund_no``. Then WeChat Pay is asked; an
answer that refuses it closes the refund and gives the amount back, a lost answer leaves it processing
(WeChat Pay is idempotent on ``out_refund_no``: asking again, or querying, settles it). The outcome
arrives as a ``REFUND.*`` notification or from a query, and is applied once, through the state machine
(``MACHINE``): an audit event in the hash chain, in the transaction that gives a closed refund's amount
back. Recording a refund ``processing`` is its creation, not a move.
"""

from __future__ import annotations

import logging
import secrets

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import CHINA_TZ, utcnow
from core.errors import AppError, Conflict
from integrations.wechatpay import WeChatPayError, WeChatPayUnavailable
from models.payments import OrderStatus, PaymentOrder, PaymentRefund, RefundStatus
from services.context import ServiceContext
from services.db import atomic
from services.payments.orders import PayUnavailable, owned, wechat_time
from services.risk import engine as risk
from services.state_machine import Machine, transition

log = logging.getLogger(__name__)

R = RefundStatus
FINAL_STATES = {"SUCCESS": R.SUCCESS, "ABNORMAL": R.ABNORMAL, "CLOSED": R.CLOSED}
MACHINE = Machine(
    entity="payment_refund",
    allowed={R.PROCESSING: frozenset({R.SUCCESS, R.ABNORMAL, R.CLOSED})},  # what WeChat Pay ends it as
    milestones={R.SUCCESS: "finished_at", R.ABNORMAL: "finished_at", R.CLOSED: "finished_at"},
)


class NotRefundable(Conflict):
    code, message = "NOT_REFUNDABLE", "该订单不能退款（只退已支付的设备费）"


class RefundExceedsPaid(AppError):
    status, code, message = 422, "REFUND_EXCEEDS_PAID", "退款金额超过可退金额"


class RefundRefused(AppError):
    status, code, message = 502, "WECHATPAY_REFUND_REFUSED", "微信支付拒绝了该退款"


def new_out_refund_no() -> str:
    return f"RF{utcnow().astimezone(CHINA_TZ):%Y%m%d}{secrets.token_hex(8).upper()}"


async def refund(ctx: ServiceContext, user_id: int | None, order_id: int, *, amount_fen: int | None = None,
                 reason: str | None = None, idempotency_id: int | None = None,
                 client: dict | None = None) -> PaymentRefund:
    """Refund ``amount_fen`` (default: all that is left) of a paid device fee. ``user_id`` None: an
    operator, for any user's order. Risk control decides a user's refund under the order's lock (subject
    ``refund``); a refused one reserves nothing and is recorded."""
    client = client or {}
    found = await PaymentRefund.get_or_none(idempotency_id=idempotency_id) if idempotency_id else None
    if found is None:
        order = await (owned(user_id, order_id) if user_id is not None else PaymentOrder.get(id=order_id))

        async def reserve(conn: BaseDBAsyncClient) -> PaymentRefund:
            row = await PaymentOrder.filter(id=order.id).select_for_update().using_db(conn).first()
            if row.purpose != "obu_fee" or row.status != OrderStatus.PAID:
                raise NotRefundable()
            amount = amount_fen if amount_fen is not None else row.amount_fen - row.refunded_fen
            if amount <= 0 or row.refunded_fen + amount > row.amount_fen:
                raise RefundExceedsPaid(f"最多还可退 {row.amount_fen - row.refunded_fen} 分", field="amount_fen")
            if user_id is not None:
                decision = await risk.decide(conn, risk.Movement(
                    "refund", utcnow(), amount, user_id=user_id, reference=row.out_trade_no,
                    values={"device": client.get("device"), "ip": client.get("ip")}), account_locked=False)
                if decision is not None and decision.refusal is not None:
                    return decision.refusal  # raised once the decision is recorded
            await PaymentOrder.filter(id=row.id).using_db(conn).update(refunded_fen=row.refunded_fen + amount)
            return await PaymentRefund.create(order_id=row.id, out_refund_no=new_out_refund_no(), amount_fen=amount,
                                              reason=reason, idempotency_id=idempotency_id, using_db=conn)

        found = await atomic(reserve)
        if isinstance(found, type):
            raise found()
    if found.status != R.PROCESSING:
        return found
    order = await PaymentOrder.get(id=found.order_id)
    try:
        answer = await ctx.wechatpay.refund(out_trade_no=order.out_trade_no, out_refund_no=found.out_refund_no,
                                            amount_fen=found.amount_fen, total_fen=order.amount_fen, reason=reason)
    except WeChatPayUnavailable as exc:
        log.warning("wechatpay refund answer lost", extra={"out_refund_no": found.out_refund_no, "reason": str(exc)})
        raise PayUnavailable() from exc
    except WeChatPayError as exc:
        await apply_refund(ctx, {"out_refund_no": found.out_refund_no, "status": "CLOSED"}, source=f"refused {exc.code}")
        raise RefundRefused(f"微信支付拒绝了该退款（{exc.code}）") from exc
    await apply_refund(ctx, answer, source="request")
    return await PaymentRefund.get(id=found.id)


async def apply_refund(ctx: ServiceContext, data: dict, *, source: str, conn: BaseDBAsyncClient | None = None) -> str:
    """Apply what WeChat Pay says of a refund (its answer, a query, a ``REFUND.*`` notification), once:
    a refund that ends closed gives its amount back to the order."""
    if conn is None:
        return await atomic(lambda c: apply_refund(ctx, data, source=source, conn=c))
    refund_row = await PaymentRefund.filter(out_refund_no=data.get("out_refund_no", "")).select_for_update().using_db(
        conn).first()
    if refund_row is None:
        return "unknown refund"
    state = data.get("status") or data.get("refund_status")
    if refund_row.status != R.PROCESSING or state not in FINAL_STATES:
        return f"refund {refund_row.status}"
    to = FINAL_STATES[state]
    updates = {"refund_id": data.get("refund_id") or refund_row.refund_id}
    if to == R.SUCCESS:
        updates["finished_at"] = wechat_time(data.get("success_time"))  # the day WeChat Pay's bill puts it in
    await transition(conn, MACHINE, PaymentRefund, refund_row.id, to, actor="wechatpay", reason=source,
                     updates=updates, locked=refund_row,
                     audit_data={"out_refund_no": refund_row.out_refund_no, "amount_fen": refund_row.amount_fen})
    if to == R.CLOSED:
        order = await PaymentOrder.filter(id=refund_row.order_id).select_for_update().using_db(conn).first()
        await PaymentOrder.filter(id=order.id).using_db(conn).update(
            refunded_fen=max(0, order.refunded_fen - refund_row.amount_fen))
    log.info("refund applied", extra={"out_refund_no": refund_row.out_refund_no, "status": str(to), "source": source})
    return f"refund {to}"


async def reconcile(ctx: ServiceContext, *, batch: int = 200) -> dict:
    """Ask WeChat Pay about refunds still processing."""
    counts = {"checked": 0, "settled": 0}
    for row in await PaymentRefund.filter(status=R.PROCESSING).order_by("id").limit(batch):
        counts["checked"] += 1
        try:
            found = await ctx.wechatpay.query_refund(row.out_refund_no)
        except (WeChatPayUnavailable, WeChatPayError):
            continue
        if found is not None and found.get("status") in FINAL_STATES:
            await apply_refund(ctx, found, source="query")
            counts["settled"] += 1
    return counts

