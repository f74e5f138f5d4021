"""Payment notifications that arrive together are applied together (``services.payments.notifications``):
each one still does its work once, gets its own answer, and a refused one leaves its neighbours alone."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from core.clock import utcnow
from models.audit import AuditEvent
from models.etc import EtcBinding
from models.payments import OrderStatus, PaymentOrder, PayNotification
from models.users import User
from services import audit
from services.payments import notifications
from services.payments.orders import TransactionMismatch
from tests.payment_helpers import car_with_arrears, create_order, pay, redeliver


async def _prepaid_orders(n: int, amount_fen: int = 9_900) -> list[PaymentOrder]:
    """Device-fee orders as ``POST /payments/orders`` leaves them once WeChat Pay has them."""
    user = await User.create(openid="obatch" + secrets.token_hex(8))
    now, run = utcnow(), secrets.token_hex(4).upper()
    return [await PaymentOrder.create(
        user_id=user.id, purpose="obu_fee", reference_id=10**9 + i, out_trade_no=f"BT{run}{i:04d}", amount_fen=amount_fen,
        description="ETC 设备费", status=OrderStatus.PREPAID, prepay_id=f"wxBT{run}{i}",
        time_expire=now + timedelta(hours=2), prepaid_at=now) for i in range(n)]


def _item(ctx, order: PaymentOrder, event_id: str | None = None, amount_fen: int | None = None) -> notifications._Item:
    tx = {"mchid": ctx.settings.wechatpay_mchid, "appid": ctx.settings.wechat_appid, "out_trade_no": order.out_trade_no,
          "transaction_id": "42" + secrets.token_hex(13), "trade_state": "SUCCESS", "success_time": utcnow().isoformat(),
          "amount": {"total": order.amount_fen if amount_fen is None else amount_fen, "currency": "CNY"}}
    return notifications._Item(event_id or secrets.token_hex(18), "TRANSACTION.SUCCESS", tx)


async def test_one_batch_applies_each_notification_once_and_refuses_only_the_mismatch(ctx):
    a, b, c, d = await _prepaid_orders(4)
    stored = _item(ctx, d)
    assert await notifications._apply_batch(ctx, [stored]) == ["applied: paid"]

    first_a = _item(ctx, a)
    batch = [
        first_a,
        notifications._Item(first_a.event_id, first_a.event_type, first_a.resource),  # the same, twice in one batch
        _item(ctx, b),
        _item(ctx, b),  # another notification for the same order
        _item(ctx, c, amount_fen=c.amount_fen + 1),  # not what the order says
        notifications._Item(stored.event_id, stored.event_type, stored.resource),  # applied by an earlier batch
    ]
    batch.append(notifications._Item(batch[4].event_id, batch[4].event_type, batch[4].resource))  # the odd one again
    results = await notifications._apply_batch(ctx, batch)
    assert results[:4] == ["applied: paid", "duplicate", "applied: paid", "applied: already paid"]
    assert isinstance(results[4], TransactionMismatch) and results[5] == "duplicate"
    assert isinstance(results[6], TransactionMismatch)  # a copy of a refused notification is refused too

    assert [o.status for o in await PaymentOrder.filter(id__in=[a.id, b.id, c.id, d.id]).order_by("id")] == [
        "paid", "paid", "prepaid", "paid"]
    paid_a = await PaymentOrder.get(id=a.id)
    assert paid_a.transaction_id == first_a.resource["transaction_id"] and paid_a.settled == {"obu_fee_fen": a.amount_fen}
    assert paid_a.open_key is None and paid_a.paid_at is not None
    # one inbox row per notification applied (the one refused leaves none), one audit event per order moved
    inbox = {n.event_id: n.outcome for n in await PayNotification.filter(
        out_trade_no__in=[a.out_trade_no, b.out_trade_no, c.out_trade_no, d.out_trade_no])}
    assert sorted(inbox.values()) == ["applied: already paid", "applied: paid", "applied: paid", "applied: paid"]
    assert batch[4].event_id not in inbox
    for order in (a, b, d):
        assert await AuditEvent.filter(entity_type="payment_order", entity_id=str(order.id),
                                       action="payment_order.paid").count() == 1
    assert not await AuditEvent.filter(entity_type="payment_order", entity_id=str(c.id)).exists()
    assert (await audit.verify()).ok  # the batch's events are linked into the chain in order


async def test_a_batch_that_fails_is_applied_one_by_one(ctx, monkeypatch):
    a, b = await _prepaid_orders(2)
    items = [_item(ctx, a), _item(ctx, b)]

    async def broken(ctx_, batch):
        raise RuntimeError("the batch's transaction failed")

    monkeypatch.setattr(notifications, "_apply_batch", broken)
    batches = notifications._Batches(ctx)
    assert await asyncio.gather(*(batches.submit(i) for i in items)) == ["applied: paid", "applied: paid"]
    assert [o.status for o in await PaymentOrder.filter(id__in=[a.id, b.id])] == ["paid", "paid"]


async def test_notifications_arriving_together_each_get_their_own_answer(client, sandbox, ctx):
    """Several arrears orders paid at once, each notification delivered three times in parallel, one of
    them for an amount our order does not have: every order is paid once, its arrears settled, its
    partner told once; the odd one is refused every time and changes nothing."""
    cars = [await car_with_arrears(client, sandbox, ctx, 500 + i) for i in range(5)]
    orders = [(await create_order(client, car.user, car.binding["id"])).json() for car, _ in cars]
    await PaymentOrder.filter(id=orders[-1]["id"]).update(amount_fen=1)  # as if our record and WeChat Pay's differ
    paid = [await pay(client, order, notify="drop") for order in orders]

    answers = await asyncio.gather(*(redeliver(client, p["notification_id"], count=3, parallel=True) for p in paid))
    statuses = [sorted(a["http_status"] for a in answer["attempts"]) for answer in answers]
    assert statuses == [[204, 204, 204]] * 4 + [[400, 400, 400]], statuses

    for (car, _), order, p in zip(cars[:4], orders[:4], paid[:4]):
        assert (await PaymentOrder.get(id=order["id"])).status == "paid"
        assert await PayNotification.filter(event_id=p["notification_id"]).count() == 1
        assert await AuditEvent.filter(entity_type="payment_order", entity_id=str(order["id"]),
                                       action="payment_order.paid").count() == 1
        assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0
    refused_car = cars[-1][0]
    assert (await PaymentOrder.get(id=orders[-1]["id"])).status == "prepaid"
    assert not await PayNotification.filter(event_id=paid[-1]["notification_id"]).exists()
    assert (await EtcBinding.get(id=refused_car.binding["id"])).arrears_fen == 504
    assert (await audit.verify()).ok
