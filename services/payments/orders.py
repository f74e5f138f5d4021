"""WeChat Pay orders: the ETC device (OBU) fee and arrears, paid in the mini-program.

The amount comes from the server: the fee table for an OBU fee, what the binding owes for arrears. An
order is ``created`` here, ``prepaid`` once WeChat Pay has it (its ``prepay_id`` gives the parameters of
``wx.requestPayment``), and ends ``paid``, ``closed`` or ``failed``; every move goes through the state
machine with an audit event. A binding has at most one payable order per purpose (a unique
``open_key`` held while it can be paid): asking again while one is open answers that one, so a user
cannot be charged twice for one debt, however many requests race.

What WeChat Pay says about an order (a notification, or the answer to a query) is applied by
``apply_transaction`` inside one transaction that locks the order row: it checks the merchant, the app
and the amount against the order, moves the order once, and on payment settles what it paid for. For
arrears that is the binding's refused debits, oldest first, up to the amount paid: each becomes
``settled``, the binding owes that much less, and each partner whose debits were settled is told
(``arrears.settled``, through the outbox). Applying the same transaction again changes nothing.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from core.clock import CHINA_TZ, utcnow
from core.errors import AppError, Conflict, NotFound, UpstreamUnavailable
from integrations.wechatpay import WeChatPayError, WeChatPayUnavailable
from models.etc import EtcBinding
from models.partners import DebitStatus, PartnerDebit
from models.payments import OrderStatus, PaymentOrder
from models.users import User
from services.context import ServiceContext
from services.db import atomic, causal_read
from services.etc import bindings
from services.pagination import newest_first
from services.partners import debits, notify
from services.risk import engine as risk
from services.state_machine import Machine, Move, transition, transition_many

log = logging.getLogger(__name__)

O = OrderStatus
MACHINE = Machine(
    entity="payment_order",
    allowed={
        O.CREATED: frozenset({O.PREPAID, O.PAID, O.CLOSED, O.FAILED}),
        O.PREPAID: frozenset({O.PAID, O.CLOSED, O.FAILED}),
    },
    milestones={O.PREPAID: "prepaid_at", O.PAID: "paid_at", O.CLOSED: "closed_at", O.FAILED: "failed_at"},
)
PURPOSES = ("obu_fee", "arrears")
OBU_FEE_FEN = 9_900  # the fee table: one ETC device (OBU), ¥99.00
DESCRIPTIONS = {"obu_fee": "ETC车载设备费", "arrears": "ETC欠费补缴"}
OPEN = (O.CREATED, O.PREPAID)


class OrderNotFound(NotFound):
    code, message = "ORDER_NOT_FOUND", "支付订单不存在"


class NothingToPay(Conflict):
    code, message = "NOTHING_TO_PAY", "没有需要支付的款项"


class PayUnavailable(UpstreamUnavailable):
    code, message = "WECHATPAY_UNAVAILABLE", "微信支付暂不可用，请稍后重试"


class PayRefused(AppError):
    status, code, message = 502, "WECHATPAY_REFUSED", "微信支付拒绝了该订单"


class TransactionMismatch(Exception):
    """What WeChat Pay reports does not match our order (merchant, app or amount)."""


def new_out_trade_no() -> str:
    return f"PO{utcnow().astimezone(CHINA_TZ):%Y%m%d}{secrets.token_hex(8).upper()}"  # 26 characters


def wechat_time(value: object) -> datetime:
    """WeChat Pay's RFC 3339 time (``success_time``): when it happened there, which is the day its bill
    puts it in; now, when it is absent or unreadable."""
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return utcnow()
    return at.astimezone(UTC) if at.tzinfo is not None else utcnow()


def _rfc3339(at: datetime) -> str:
    return at.astimezone(CHINA_TZ).isoformat(timespec="seconds")


async def _amount(user_id: int, purpose: str, reference_id: int) -> tuple[EtcBinding, int]:
    binding = await bindings.get(user_id, reference_id)  # 404 BINDING_NOT_FOUND for someone else's
    if purpose == "arrears":
        amount = binding.arrears_fen
    else:
        amount = OBU_FEE_FEN if binding.obu_id is None and binding.status != "unbound" else 0
    if amount <= 0:
        raise NothingToPay()
    return binding, amount


@dataclass(frozen=True)
class Created:
    order: PaymentOrder
    pay_params: dict | None  # for wx.requestPayment, while the order can be paid
    created: bool


async def create(ctx: ServiceContext, user_id: int, *, purpose: str, reference_id: int,
                 idempotency_id: int | None = None, client: dict | None = None) -> Created:
    """Open (or find) the order; risk control screens a new one first (subject ``payment_order``)."""
    order = await PaymentOrder.get_or_none(idempotency_id=idempotency_id) if idempotency_id else None
    created = False
    if order is None:
        binding, amount = await _amount(user_id, purpose, reference_id)
        client = client or {}
        await risk.screen(risk.Movement("payment_order", utcnow(), amount, account_id=binding.account_id,
                                        user_id=user_id, reference=f"{purpose}:{binding.id}",
                                        values={"device": client.get("device"), "ip": client.get("ip")}))
        order, created = await _open_order(ctx, user_id, purpose, binding.id, amount, idempotency_id)
    if order.status == O.CREATED:
        order = await _prepay(ctx, order)
    return Created(order, await pay_params(ctx, order), created)


async def pay_params(ctx: ServiceContext, order: PaymentOrder) -> dict | None:
    """What ``wx.requestPayment`` needs, while the order can be paid."""
    return await ctx.wechatpay.request_payment(order.prepay_id) if order.status == O.PREPAID else None


async def view(ctx: ServiceContext, user_id: int, order_id: int) -> tuple[PaymentOrder, dict | None]:
    """The user's order as WeChat Pay has it now, and its payment parameters while it can be paid."""
    # read as of every write acknowledged before (a payment another server just applied; services.db)
    order = await refresh(ctx, await causal_read(lambda conn: owned(user_id, order_id, conn)))
    return order, await pay_params(ctx, order)


async def _open_orders(user_id: int, purpose: str, binding_id: int) -> list[PaymentOrder]:
    return await PaymentOrder.filter(user_id=user_id, purpose=purpose, reference_id=binding_id, status__in=list(OPEN))


async def _open_order(ctx: ServiceContext, user_id: int, purpose: str, binding_id: int, amount: int,
                      idempotency_id: int | None) -> tuple[PaymentOrder, bool]:
    """The binding's payable order for this purpose and amount, or a new one (an open order for another
    amount is closed first: WeChat Pay must not be able to take both)."""
    for existing in await _open_orders(user_id, purpose, binding_id):
        existing = await refresh(ctx, existing)
        if existing.status not in OPEN:
            continue
        if existing.amount_fen == amount and existing.time_expire > utcnow() + timedelta(minutes=1):
            return existing, False
        await close(ctx, existing, reason="superseded")
    now = utcnow()
    key = f"{purpose}:{binding_id}"
    try:
        return await PaymentOrder.create(
            user_id=user_id, purpose=purpose, reference_id=binding_id, out_trade_no=new_out_trade_no(),
            idempotency_id=idempotency_id, amount_fen=amount, description=DESCRIPTIONS[purpose], open_key=key,
            time_expire=now + timedelta(seconds=ctx.settings.payment_ttl_s)), True
    except IntegrityError:  # a concurrent request opened it first: that one is the debt's order
        found = await PaymentOrder.get_or_none(open_key=key)
        if found is None:
            raise
        return found, False


async def _prepay(ctx: ServiceContext, order: PaymentOrder) -> PaymentOrder:
    user = await User.get(id=order.user_id)
    try:
        prepay_id = await ctx.wechatpay.jsapi(out_trade_no=order.out_trade_no, description=order.description,
                                              amount_fen=order.amount_fen, openid=user.openid,
                                              time_expire=_rfc3339(order.time_expire))
    except WeChatPayUnavailable as exc:
        log.warning("wechatpay jsapi failed", extra={"out_trade_no": order.out_trade_no, "reason": str(exc)})
        raise PayUnavailable() from exc
    except WeChatPayError as exc:
        log.error("wechatpay refused an order", extra={"out_trade_no": order.out_trade_no, "code": exc.code})
        raise PayRefused(f"微信支付拒绝了该订单（{exc.code}）") from exc

    async def work(conn: BaseDBAsyncClient) -> PaymentOrder:
        moved = await transition(conn, MACHINE, PaymentOrder, order.id, O.PREPAID, actor="system",
                                 reason="jsapi", updates={"prepay_id": prepay_id})
        return moved.obj

    current = await PaymentOrder.get(id=order.id)
    return await atomic(work) if current.status == O.CREATED else current


async def owned(user_id: int, order_id: int, conn: BaseDBAsyncClient | None = None) -> PaymentOrder:
    order = await PaymentOrder.get_or_none(id=order_id, user_id=user_id, using_db=conn)
    if order is None:
        raise OrderNotFound()
    return order


async def refresh(ctx: ServiceContext, order: PaymentOrder) -> PaymentOrder:
    """An open order as WeChat Pay has it now (asked, and applied like a notification would be)."""
    if order.status != O.PREPAID:
        return order
    try:
        found = await ctx.wechatpay.query(order.out_trade_no)
    except (WeChatPayUnavailable, WeChatPayError) as exc:
        log.warning("wechatpay query failed", extra={"out_trade_no": order.out_trade_no, "reason": str(exc)})
        return order
    if found is not None:
        try:
            await apply_transaction(ctx, found, source="query")
        except TransactionMismatch as exc:  # left as it is, for a person to look at
            log.error("wechatpay transaction does not match the order",
                      extra={"out_trade_no": order.out_trade_no, "reason": str(exc)})
    return await PaymentOrder.get(id=order.id)


async def close(ctx: ServiceContext, order: PaymentOrder, *, reason: str) -> PaymentOrder:
    """Close an unpaid order at WeChat Pay, then here (a paid one is applied instead)."""
    if order.status == O.PREPAID:
        try:
            await ctx.wechatpay.close(order.out_trade_no)
        except WeChatPayError as exc:
            if exc.code != "ORDERPAID":
                raise PayRefused() from exc
            return await refresh(ctx, order)
        except WeChatPayUnavailable as exc:
            raise PayUnavailable() from exc

    async def work(conn: BaseDBAsyncClient) -> PaymentOrder:
        return (await transition(conn, MACHINE, PaymentOrder, order.id, O.CLOSED, actor="system", reason=reason,
                                 updates={"open_key": None})).obj

    current = await PaymentOrder.get(id=order.id)
    return await atomic(work) if current.status in OPEN else current


async def apply_transaction(ctx: ServiceContext, tx: dict, *, source: str,
                            conn: BaseDBAsyncClient | None = None) -> str:
    """Apply a transaction object (decrypted notification or query answer); returns what it did."""
    if conn is None:
        return await atomic(lambda c: apply_transaction(ctx, tx, source=source, conn=c))
    (outcome,) = await apply_transactions(ctx, conn, [tx], source=source)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


_APPLY_READS = ("id", "user_id", "purpose", "reference_id", "out_trade_no", "amount_fen", "status")  # what applying needs


async def lock_orders(conn: BaseDBAsyncClient, out_trade_nos: list[str]) -> dict[str, PaymentOrder]:
    """The orders, locked in ``out_trade_no`` order (so two batches cannot wait on each other)."""
    found = await (PaymentOrder.filter(out_trade_no__in=sorted(set(out_trade_nos))).order_by("out_trade_no")
                   .only(*_APPLY_READS).select_for_update().using_db(conn))
    return {order.out_trade_no: order for order in found}


async def apply_transactions(ctx: ServiceContext, conn: BaseDBAsyncClient, txs: list[dict], *, source: str,
                             locked: dict[str, PaymentOrder] | None = None) -> list[str | TransactionMismatch]:
    """Apply several transaction objects in the caller's transaction, each as ``apply_transaction`` would:
    what each did, or the ``TransactionMismatch`` that refuses it (and leaves its order alone). The orders
    are locked first, unless the caller has (``locked``); the paid ones move together."""
    if locked is None:
        locked = await lock_orders(conn, [str(tx.get("out_trade_no", "")) for tx in txs])
    outcomes: list[str | TransactionMismatch] = []
    moves: dict[int, Move] = {}  # order id -> its move: a second transaction for it here finds it moved
    for tx in txs:
        order = locked.get(str(tx.get("out_trade_no", "")))
        try:
            outcome, move = await _transaction_move(ctx, conn, order, tx, source, moves)
        except TransactionMismatch as exc:
            outcomes.append(exc)
            continue
        outcomes.append(outcome)
        if move is not None:
            moves[order.id] = move
    by_target: dict[str, list[Move]] = {}
    for move in moves.values():
        by_target.setdefault(move.to, []).append(move)
    for group in by_target.values():
        await transition_many(conn, MACHINE, PaymentOrder, group, actor="wechatpay", reason=source)
    return outcomes


async def _transaction_move(ctx: ServiceContext, conn: BaseDBAsyncClient, order: PaymentOrder | None, tx: dict,
                            source: str, moving: dict[int, Move]) -> tuple[str, Move | None]:
    if order is None:
        raise TransactionMismatch(f"no order {tx.get('out_trade_no')!r}")
    if tx.get("mchid") != ctx.settings.wechatpay_mchid or tx.get("appid") != ctx.settings.wechat_appid:
        raise TransactionMismatch("merchant or app differs")
    state = tx.get("trade_state")
    amount = tx.get("amount") or {}
    if state == "SUCCESS" and (amount.get("total") != order.amount_fen or amount.get("currency", "CNY") != "CNY"):
        raise TransactionMismatch(f"amount {amount.get('total')} != {order.amount_fen}")
    status = moving[order.id].to if order.id in moving else order.status
    if status not in OPEN:
        return f"already {status}", None
    if state == "SUCCESS":
        settled = await _settle(conn, order)
        move = Move(order, O.PAID, {"transaction_id": tx.get("transaction_id"), "settled": settled, "open_key": None,
                                    "paid_at": wechat_time(tx.get("success_time"))},
                    {"transaction_id": tx.get("transaction_id"), "amount_fen": order.amount_fen})
        return "paid", move
    if state in ("CLOSED", "REVOKED"):
        return "closed", Move(order, O.CLOSED, {"open_key": None})
    if state == "PAYERROR":
        return "failed", Move(order, O.FAILED, {"open_key": None})
    return f"still {state}", None


async def _settle(conn: BaseDBAsyncClient, order: PaymentOrder) -> dict:
    if order.purpose == "obu_fee":
        return {"obu_fee_fen": order.amount_fen}
    binding = await EtcBinding.filter(id=order.reference_id).select_for_update().using_db(conn).first()
    left = order.amount_fen
    by_partner: dict[int, list[PartnerDebit]] = {}
    settled: list[Move] = []
    # The binding row is locked: no other payment settles these debits meanwhile (the rows are not locked again).
    for debit in await PartnerDebit.filter(binding_id=binding.id, status=DebitStatus.ARREARS).order_by("id").using_db(conn):
        if debit.amount_fen > left:
            break
        left -= debit.amount_fen
        settled.append(Move(debit, DebitStatus.SETTLED,
                            audit_data={**debits.audited(debit), "order": order.out_trade_no}))
        by_partner.setdefault(debit.partner_id, []).append(debit)
    await transition_many(conn, debits.MACHINE, PartnerDebit, settled, actor="wechatpay", reason="arrears paid")
    paid_for = order.amount_fen - left
    await EtcBinding.filter(id=binding.id).using_db(conn).update(arrears_fen=max(0, binding.arrears_fen - paid_for))
    for partner_id, theirs in by_partner.items():
        await notify.arrears_settled(conn, partner_id, binding.id, sum(d.amount_fen for d in theirs),
                                     [d.out_trade_no for d in theirs])
    return {"arrears_fen": paid_for, "out_trade_nos": [d.out_trade_no for ds in by_partner.values() for d in ds],
            "unallocated_fen": left}


async def reconcile(ctx: ServiceContext, *, older_than_s: float = 300, batch: int = 200) -> dict:
    """The reconciliation job: ask WeChat Pay about orders still open after ``older_than_s`` (a lost
    notification is applied exactly as it would have been), and close those past their ``time_expire``."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    counts = {"checked": 0, "paid": 0, "closed": 0, "failed": 0, "open": 0}
    for order in await PaymentOrder.filter(status__in=list(OPEN), created_at__lte=cutoff).order_by("id").limit(batch):
        counts["checked"] += 1
        order = await refresh(ctx, order)
        if order.status in OPEN and order.time_expire <= utcnow():
            try:
                order = await close(ctx, order, reason="expired")
            except (PayUnavailable, PayRefused):
                pass
        counts["open" if order.status in OPEN else str(order.status)] += 1
    return counts


async def of_user(user_id: int, *, cursor: str | None, limit: int) -> tuple[list[PaymentOrder], str | None]:
    return await newest_first(PaymentOrder.filter(user_id=user_id), cursor=cursor, limit=limit)

