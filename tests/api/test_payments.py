"""Paying arrears with WeChat Pay, through the emulator over real HTTP: the amount is the server's,
``paySign`` verifies with the merchant's public key, a notification settles the arrears once however
often and however concurrently it arrives, a tampered or stale or mismatched one changes nothing, a lost
one is found by reconciliation, and an order past its time is closed."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from core.clock import utcnow
from integrations.wechatpay import merchant_public_pem
from models.audit import AuditEvent
from models.etc import EtcBinding
from models.infra import OutboxMessage
from models.partners import PartnerDebit
from models.payments import PaymentOrder, PaymentRefund, PayNotification
from services.payments import orders, refunds
from tests.helpers import assert_error, audited_moves
from tests.partner_helpers import call, debit_body
from tests.payment_helpers import (
    car_with_arrears,
    create_order,
    notifications,
    paid_device_fee,
    pay,
    prepay_id,
    redeliver,
    refund,
    run_cli,
    wait_refund,
    wait_status,
)


async def test_an_arrears_order_carries_the_servers_amount_and_a_valid_pay_sign(client, sandbox, ctx, settings):
    car, _ = await car_with_arrears(client, sandbox, ctx, 1_200)
    resp = await create_order(client, car.user, car.binding["id"])
    assert resp.status_code == 201, resp.text
    order = resp.json()
    assert (order["purpose"], order["amount_fen"], order["status"]) == ("arrears", 1_200, "prepaid")
    assert len(order["out_trade_no"]) <= 32
    p = order["pay_params"]
    assert p["signType"] == "RSA" and p["package"].startswith("prepay_id=")
    public = serialization.load_pem_public_key(merchant_public_pem(settings.wechatpay_private_key_path).encode())
    message = f"{settings.wechat_appid}\n{p['timeStamp']}\n{p['nonceStr']}\n{p['package']}\n".encode()
    public.verify(base64.b64decode(p["paySign"]), message, padding.PKCS1v15(), hashes.SHA256())  # raises if wrong
    # asking again for the same debt answers the same order: one debt, one payable order
    again = await create_order(client, car.user, car.binding["id"])
    assert again.status_code == 200 and again.json()["id"] == order["id"]
    # the client cannot name an amount
    resp = await client.post("/api/v1/payments/orders", headers={**car.user.headers, "Idempotency-Key": "k-amount-01"},
                             json={"purpose": "arrears", "reference_id": car.binding["id"], "amount_fen": 1})
    assert_error(resp, 422, "VALIDATION_ERROR", "amount_fen")


async def test_a_payment_settles_the_arrears_once_and_tells_the_partner(client, sandbox, ctx):
    car, partner = await car_with_arrears(client, sandbox, ctx, 1_200)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    await pay(client, order)
    paid = await wait_status(order["id"], "paid")
    assert paid.status == "paid" and paid.transaction_id and paid.settled["arrears_fen"] == 1_200
    # paid when WeChat Pay says it was (its success_time), which is the day its bill puts the payment in
    at_wechat = await ctx.wechatpay.query(order["out_trade_no"])
    assert paid.paid_at == datetime.fromisoformat(at_wechat["success_time"])
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0
    assert [d.status for d in await PartnerDebit.filter(binding_id=car.binding["id"])] == ["settled"]
    told = [m for m in await OutboxMessage.filter(kind="partner_notification")
            if m.payload["event"]["type"] == "arrears.settled" and m.payload["event"]["data"]["binding_id"] == car.binding["id"]]
    assert len(told) == 1 and told[0].payload["event"]["data"]["amount_fen"] == 1_200
    shown = (await client.get(f"/api/v1/payments/orders/{order['id']}", headers=car.user.headers)).json()
    assert shown["status"] == "paid" and shown["pay_params"] is None
    # the arrears are paid: the binding can be unbound now
    assert (await client.delete(f"/api/v1/etc-bindings/{car.binding['id']}", headers=car.user.headers)).json()[
        "status"] == "unbound"


async def test_arrears_left_by_a_debit_and_settled_by_payment_are_audited_at_each_move(client, sandbox, ctx):
    """Issue 21: a debit the ledger refuses moves to arrears as the partner's request, and to settled as
    WeChat Pay's payment (naming the order), each an event in the verified hash chain."""
    # Given a debit the account could not pay
    car, partner = await car_with_arrears(client, sandbox, ctx, 1_200)
    owed = await PartnerDebit.get(binding_id=car.binding["id"])
    assert await audited_moves("partner_debit", owed.id) == [
        ("partner_debit.arrears", f"partner:{partner.app_id}", "succeeded", "arrears")]
    # When the user pays the arrears
    order = (await create_order(client, car.user, car.binding["id"])).json()
    await pay(client, order)
    assert (await wait_status(order["id"], "paid")).status == "paid"
    # Then the debit's settling is in the chain beside the order's payment
    assert await audited_moves("partner_debit", owed.id) == [
        ("partner_debit.arrears", f"partner:{partner.app_id}", "succeeded", "arrears"),
        ("partner_debit.settled", "wechatpay", "arrears", "settled")]
    settled = await AuditEvent.get(entity_type="partner_debit", entity_id=str(owed.id), action="partner_debit.settled")
    assert (settled.data["order"], settled.data["amount_fen"]) == (order["out_trade_no"], 1_200)
    assert [a for a, *_ in await audited_moves("payment_order", order["id"])][-1] == "payment_order.paid"


async def test_a_refunds_move_is_an_audit_event_in_the_chain(client, sandbox, ctx):
    """Issue 21: WeChat Pay's answer moves a refund once, audited as WeChat Pay's, in the verified chain."""
    car, order = await paid_device_fee(client, sandbox, ctx)
    made = await refund(client, car.user, order["id"], amount_fen=3_000)
    assert made.status_code == 201, made.text
    assert (await wait_refund(made.json()["id"])).status == "success"
    assert await audited_moves("payment_refund", made.json()["id"]) == [
        ("payment_refund.success", "wechatpay", "processing", "success")]
    event = await AuditEvent.get(entity_type="payment_refund", entity_id=str(made.json()["id"]))
    assert (event.data["out_refund_no"], event.data["amount_fen"]) == (made.json()["out_refund_no"], 3_000)


async def test_ten_parallel_deliveries_credit_once(client, sandbox, ctx):
    car, _ = await car_with_arrears(client, sandbox, ctx, 900)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    paid = await pay(client, order, notify="drop")
    answers = await redeliver(client, paid["notification_id"], count=10, parallel=True)
    assert answers and all(a["http_status"] in (200, 204) for a in answers["attempts"]), answers
    assert (await PaymentOrder.get(id=order["id"])).status == "paid"
    assert await PayNotification.filter(event_id=paid["notification_id"]).count() == 1
    assert await AuditEvent.filter(entity_type="payment_order", entity_id=str(order["id"]),
                                   action="payment_order.paid").count() == 1
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0


@pytest.mark.parametrize("tamper", ["byte", "serial", "signature", "timestamp"])
async def test_a_tampered_notification_is_refused_and_changes_nothing(client, sandbox, ctx, tamper):
    car, _ = await car_with_arrears(client, sandbox, ctx, 700)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    paid = await pay(client, order, notify="drop")
    answers = await redeliver(client, paid["notification_id"], tamper=tamper)
    assert [a["http_status"] for a in answers["attempts"]] == [401], answers
    assert answers["attempts"][0]["reply"] and "FAIL" in str(answers["attempts"][0]["reply"])
    assert (await PaymentOrder.get(id=order["id"])).status == "prepaid"
    assert not await PayNotification.filter(event_id=paid["notification_id"]).exists()
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 700
    # the genuine one, delivered afterwards, is applied
    answers = await redeliver(client, paid["notification_id"])
    assert [a["http_status"] for a in answers["attempts"]] == [204]
    assert (await PaymentOrder.get(id=order["id"])).status == "paid"


async def test_a_notification_for_another_amount_is_refused(client, sandbox, ctx):
    car, _ = await car_with_arrears(client, sandbox, ctx, 800)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    await PaymentOrder.filter(id=order["id"]).update(amount_fen=801)  # as if our record and WeChat Pay's differ
    paid = await pay(client, order, notify="drop")
    answers = await redeliver(client, paid["notification_id"])
    assert [a["http_status"] for a in answers["attempts"]] == [400]
    assert "订单信息不符" in str(answers["attempts"][0]["reply"])  # the payments service's refusal, as WeChat Pay reads it
    assert (await PaymentOrder.get(id=order["id"])).status == "prepaid"
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 800


async def test_a_notification_that_is_not_wechat_pays_is_answered_in_its_fail_shape(client):
    response = await client.post("/callbacks/wechatpay", content=b'{"id": "x"}',
                                 headers={"Content-Type": "application/json", "Wechatpay-Serial": "NOPE"})
    assert response.status_code == 401
    assert response.json() == {"code": "FAIL", "message": "签名验证失败"}


async def test_a_lost_notification_is_found_by_reconciliation(client, sandbox, ctx):
    car, _ = await car_with_arrears(client, sandbox, ctx, 600)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    await pay(client, order, notify="drop")
    assert (await PaymentOrder.get(id=order["id"])).status == "prepaid"
    counts = await orders.reconcile(ctx, older_than_s=0)
    assert counts["paid"] >= 1
    assert (await PaymentOrder.get(id=order["id"])).status == "paid"
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0


async def test_looking_at_an_order_asks_wechat_pay(client, sandbox, ctx):
    car, _ = await car_with_arrears(client, sandbox, ctx, 500)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    await pay(client, order, notify="drop")
    shown = (await client.get(f"/api/v1/payments/orders/{order['id']}", headers=car.user.headers)).json()
    assert shown["status"] == "paid"


async def test_an_order_past_its_time_is_closed(client, sandbox, ctx):
    car, _ = await car_with_arrears(client, sandbox, ctx, 400)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    await PaymentOrder.filter(id=order["id"]).update(time_expire=utcnow() - timedelta(seconds=1),
                                                      created_at=utcnow() - timedelta(hours=1))
    await orders.reconcile(ctx, older_than_s=0)
    assert (await PaymentOrder.get(id=order["id"])).status == "closed"
    at_wechat = (await notifications(client, order["out_trade_no"]))
    assert at_wechat == []  # nothing was paid
    # the debt is still owed; a new order can be made for it
    again = await create_order(client, car.user, car.binding["id"])
    assert again.status_code == 201 and again.json()["id"] != order["id"]


async def test_nothing_to_pay_and_other_users_bindings(client, sandbox, ctx, user):
    car, _ = await car_with_arrears(client, sandbox, ctx, 300)
    assert_error(await create_order(client, user, car.binding["id"]), 404, "BINDING_NOT_FOUND")
    await EtcBinding.filter(id=car.binding["id"]).update(arrears_fen=0)
    assert_error(await create_order(client, car.user, car.binding["id"]), 409, "NOTHING_TO_PAY")


async def test_concurrent_order_requests_for_one_debt_make_one_payable_order(client, sandbox, ctx):
    car, _ = await car_with_arrears(client, sandbox, ctx, 350)
    answers = await asyncio.gather(*(create_order(client, car.user, car.binding["id"]) for _ in range(5)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    payable = await PaymentOrder.filter(reference_id=car.binding["id"], status__in=["created", "prepaid"]).count()
    assert payable == 1, [a.json() for a in answers]


async def test_the_database_keeps_one_payable_order_per_debt_when_lookups_race(client, sandbox, ctx, monkeypatch):
    """Two requests whose lookups both ran before either inserted: the unique open_key decides."""
    car, _ = await car_with_arrears(client, sandbox, ctx, 450)
    first = (await create_order(client, car.user, car.binding["id"])).json()

    async def saw_nothing(*args):
        return []

    monkeypatch.setattr(orders, "_open_orders", saw_nothing)
    second = await create_order(client, car.user, car.binding["id"])
    assert second.status_code == 200 and second.json()["id"] == first["id"], second.text
    assert await PaymentOrder.filter(reference_id=car.binding["id"], status__in=["created", "prepaid"]).count() == 1


async def test_a_device_fee_is_refunded_in_parts_never_above_what_was_paid(client, sandbox, ctx):
    car, order = await paid_device_fee(client, sandbox, ctx)
    first = await refund(client, car.user, order["id"], key="k-refund-part-1", amount_fen=3_000)
    assert first.status_code == 201, first.text
    assert first.json()["amount_fen"] == 3_000 and first.json()["status"] in ("processing", "success")
    again = await refund(client, car.user, order["id"], key="k-refund-part-1", amount_fen=3_000)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert (await wait_refund(first.json()["id"])).status == "success"  # WeChat Pay's REFUND.SUCCESS applied
    assert_error(await refund(client, car.user, order["id"], amount_fen=6_901), 422, "REFUND_EXCEEDS_PAID", "amount_fen")
    rest = await refund(client, car.user, order["id"])  # all that is left
    assert rest.json()["amount_fen"] == orders.OBU_FEE_FEN - 3_000
    assert_error(await refund(client, car.user, order["id"], amount_fen=1), 422, "REFUND_EXCEEDS_PAID", "amount_fen")
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == orders.OBU_FEE_FEN


async def test_concurrent_refunds_never_add_up_to_more_than_was_paid(client, sandbox, ctx):
    car, order = await paid_device_fee(client, sandbox, ctx)
    answers = await asyncio.gather(*(refund(client, car.user, order["id"], amount_fen=4_000) for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [201, 201, 422, 422, 422], [a.text for a in answers]
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == 8_000


async def test_arrears_and_unpaid_orders_are_not_refunded(client, sandbox, ctx):
    car, _ = await car_with_arrears(client, sandbox, ctx, 500)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    assert_error(await refund(client, car.user, order["id"]), 409, "NOT_REFUNDABLE")  # not paid
    await pay(client, order)
    await wait_status(order["id"], "paid")
    assert_error(await refund(client, car.user, order["id"]), 409, "NOT_REFUNDABLE")  # arrears went to partners


async def test_an_operator_refunds_from_the_command_line(client, sandbox, ctx, settings, monkeypatch):
    import json

    from tests.staff_helpers import new_staff

    car, order = await paid_device_fee(client, sandbox, ctx)
    operator, second = await new_staff(ctx, "operator"), await new_staff(ctx, "operator")
    # at or below the four-eyes threshold one operator's refund is made at once, in their name
    done = await run_cli(settings, "pay", "refund", str(order["id"]), "--amount-fen", "900", "--as", operator.username,
                         "--reason", "客户申请退还设备费")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["amount_fen"] == 900 and made["order_id"] == order["id"]
    assert (await wait_refund(made["refund_id"])).status == "success"
    assert await AuditEvent.filter(action="staff.action", actor=f"staff:{operator.id}").exists()
    too_much = await run_cli(settings, "pay", "refund", str(order["id"]), "--amount-fen", "99999",
                             "--as", operator.username, "--reason", "客户申请退还设备费")
    assert too_much.returncode == 2 and "REFUND_EXCEEDS_PAID" in too_much.stderr
    # above it: a proposal, refunded only when a second operator approves
    monkeypatch.setenv("ADMIN_FOUR_EYES_ABOVE_FEN", "50")
    proposed = await run_cli(settings, "pay", "refund", str(order["id"]), "--amount-fen", "100",
                             "--as", operator.username, "--reason", "客户申请退还设备费")
    assert proposed.returncode == 0 and json.loads(proposed.stdout)["status"] == "pending", proposed.stderr
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == 900
    approved = await run_cli(settings, "proposal", "approve", str(json.loads(proposed.stdout)["proposal_id"]),
                             "--as", second.username)
    assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "applied", approved.stderr
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == 1_000


async def test_the_user_sees_their_orders_newest_first_and_no_one_elses(client, sandbox, ctx, user):
    car, order = await paid_device_fee(client, sandbox, ctx)
    await refund(client, car.user, order["id"], amount_fen=1_000)
    other_car, _ = await car_with_arrears(client, sandbox, ctx, 300)
    other = (await create_order(client, other_car.user, other_car.binding["id"])).json()
    resp = await client.get("/api/v1/payments/orders", headers=car.user.headers)
    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert [o["id"] for o in page["orders"]] == [order["id"]] and page["next_cursor"] is None
    assert page["orders"][0]["refunded_fen"] == 1_000 and page["orders"][0]["status"] == "paid"
    assert "pay_params" not in page["orders"][0]
    assert other["id"] not in [o["id"] for o in page["orders"]]
    assert (await client.get("/api/v1/payments/orders", headers=user.headers)).json() == {"orders": [],
                                                                                          "next_cursor": None}
    assert_error(await client.get("/api/v1/payments/orders", params={"cursor": "x"}, headers=car.user.headers),
                 422, "CURSOR_INVALID", "cursor")


async def test_orders_come_a_page_at_a_time(client, sandbox, ctx):
    car, _ = await car_with_arrears(client, sandbox, ctx, 400)
    made = []
    for _ in range(3):  # each order closed so that the next one is a new order
        order = (await create_order(client, car.user, car.binding["id"])).json()
        await orders.close(ctx, await PaymentOrder.get(id=order["id"]), reason="test")
        made.append(order["id"])
    first = (await client.get("/api/v1/payments/orders", params={"limit": 2}, headers=car.user.headers)).json()
    assert [o["id"] for o in first["orders"]] == made[::-1][:2] and first["next_cursor"]
    rest = (await client.get("/api/v1/payments/orders", params={"limit": 2, "cursor": first["next_cursor"]},
                             headers=car.user.headers)).json()
    assert [o["id"] for o in rest["orders"]] == made[:1] and rest["next_cursor"] is None


async def test_a_notification_for_another_app_is_refused(client, sandbox, ctx, monkeypatch):
    car, _ = await car_with_arrears(client, sandbox, ctx, 650)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    paid = await pay(client, order, notify="drop")
    # genuinely WeChat Pay's (signed, decrypted with our key), but for an appid that is not this server's
    monkeypatch.setattr(ctx, "settings", ctx.settings.replace(wechat_appid="wxanotherapp000001"))
    answers = await redeliver(client, paid["notification_id"])
    assert [a["http_status"] for a in answers["attempts"]] == [400]
    assert (await PaymentOrder.get(id=order["id"])).status == "prepaid"
    assert not await PayNotification.filter(event_id=paid["notification_id"]).exists()
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 650
    monkeypatch.undo()
    assert [a["http_status"] for a in (await redeliver(client, paid["notification_id"]))["attempts"]] == [204]
    assert (await PaymentOrder.get(id=order["id"])).status == "paid"


async def test_a_debt_that_grew_is_not_paid_through_its_older_order(client, sandbox, ctx):
    car, partner = await car_with_arrears(client, sandbox, ctx, 1_200)
    first = (await create_order(client, car.user, car.binding["id"])).json()
    # another toll the account cannot pay: the binding now owes more than the open order asks
    grew = await call(client, partner, "POST", "/open/v1/debits", debit_body(car, 300))
    assert_error(grew, 422, "INSUFFICIENT_FUNDS")
    second = await create_order(client, car.user, car.binding["id"])
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first["id"] and second.json()["amount_fen"] == 1_500
    assert (await PaymentOrder.get(id=first["id"])).status == "closed"  # closed here and at WeChat Pay
    stale = await client.post(f"/sandbox/control/pay/{prepay_id(first)}", json={"result": "SUCCESS", "notify": "send"})
    assert stale.status_code == 400, stale.text  # the old amount can no longer be paid


async def test_nothing_left_to_refund_is_refused_and_moves_nothing(client, sandbox, ctx):
    car, order = await paid_device_fee(client, sandbox, ctx)
    everything = await refund(client, car.user, order["id"])  # all that is left: everything
    assert everything.status_code == 201 and everything.json()["amount_fen"] == orders.OBU_FEE_FEN
    assert_error(await refund(client, car.user, order["id"]), 422, "REFUND_EXCEEDS_PAID", "amount_fen")
    assert await PaymentRefund.filter(order_id=order["id"]).count() == 1
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == orders.OBU_FEE_FEN


async def test_a_refunds_final_state_is_applied_once(client, sandbox, ctx):
    car, order = await paid_device_fee(client, sandbox, ctx)
    made = (await refund(client, car.user, order["id"], amount_fen=3_000)).json()
    assert (await wait_refund(made["id"])).status == "success"
    # a later word on it that says otherwise (a query's answer, a notification under another id) changes nothing
    for state in ("CLOSED", "ABNORMAL", "SUCCESS"):
        said = {"out_refund_no": made["out_refund_no"], "status": state}
        assert await refunds.apply_refund(ctx, said, source="query") == "refund success"
    assert (await PaymentRefund.get(id=made["id"])).status == "success"
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == 3_000  # not given back to be refunded again
    assert_error(await refund(client, car.user, order["id"], amount_fen=6_901), 422, "REFUND_EXCEEDS_PAID")
