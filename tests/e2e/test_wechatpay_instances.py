"""One WeChat Pay notification, delivered ten times at once to two app instances on one MySQL database
(this test's in-process server, and a server process with two workers), credits once.

The notification is real: the emulator sends it, signed and encrypted, to a receiver of the test's,
which keeps its exact bytes and headers; the test then delivers those ten times in parallel, half to
each instance, as WeChat Pay's retries and a load balancer would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sanic import Sanic
from sanic.response import empty

from models.audit import AuditEvent
from models.etc import EtcBinding
from models.payments import PaymentOrder, PayNotification
from tests.conftest import MYSQL_URL, LiveServer, free_port
from tests.e2e.servers import ServerProcess, server_env
from tests.payment_helpers import car_with_arrears, create_order, pay

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not MYSQL_URL, reason="several instances need MySQL")]


async def test_ten_parallel_deliveries_to_two_instances_credit_once(client, sandbox, ctx, settings, tmp_path: Path):
    caught: list[tuple[dict, bytes]] = []
    receiver = Sanic("wechatpay_capture")

    @receiver.post("/notify")
    async def notify(request):
        caught.append(({k: v for k, v in request.headers.items() if k.lower().startswith("wechatpay")},
                       request.body))
        return empty(status=204)

    port = free_port()
    capture = LiveServer(receiver, port)
    await capture.start()
    car, _ = await car_with_arrears(client, sandbox, ctx, 1_500)
    real_notify_url = ctx.wechatpay.notify_url
    ctx.wechatpay.notify_url = f"http://127.0.0.1:{port}/notify"  # this order's notifications come to us
    try:
        order = (await create_order(client, car.user, car.binding["id"])).json()
    finally:
        ctx.wechatpay.notify_url = real_notify_url
    await pay(client, order)
    for _ in range(100):
        if caught:
            break
        await asyncio.sleep(0.05)
    await capture.stop()
    assert len(caught) == 1
    headers, body = caught[0]

    key = (await client.get("/sandbox/control/pay/platform-key")).json()
    (tmp_path / "platform.pem").write_text(key["public_key_pem"])
    other = ServerProcess(free_port(), server_env(
        tmp_path, SANDBOX_ROUTES="1", WECHAT_APPID=settings.wechat_appid, WECHATPAY_MCHID=settings.wechatpay_mchid,
        WECHATPAY_PRIVATE_KEY_PATH=settings.wechatpay_private_key_path,
        WECHATPAY_MERCHANT_SERIAL=settings.wechatpay_merchant_serial, WECHATPAY_APIV3_KEY=settings.wechatpay_apiv3_key,
        WECHATPAY_PUBLIC_KEY_ID=key["public_key_id"], WECHATPAY_PUBLIC_KEY_PATH=str(tmp_path / "platform.pem")),
        tmp_path / "other.log", workers=2)
    try:
        await asyncio.to_thread(other.wait_ready)
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            answers = await asyncio.gather(*(
                http.post(f"{base}/callbacks/wechatpay", content=body,
                          headers={**headers, "Content-Type": "application/json"})
                for base in [str(client.base_url).rstrip("/"), other.url] * 5))
    finally:
        other.stop()
    assert [a.status_code for a in answers] == [204] * 10, [a.text for a in answers]
    paid = await PaymentOrder.get(id=order["id"])
    assert paid.status == "paid" and paid.settled["arrears_fen"] == 1_500
    assert await PayNotification.filter(out_trade_no=order["out_trade_no"]).count() == 1
    assert await AuditEvent.filter(entity_type="payment_order", entity_id=str(order["id"]),
                                   action="payment_order.paid").count() == 1
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0
