"""Helpers for WeChat Pay tests: a binding that owes arrears, orders over the API, and the emulator's
control calls that play the user's ``wx.requestPayment`` and WeChat Pay's notifications."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time

from models.payments import PaymentOrder, PaymentRefund
from services.payments.orders import OBU_FEE_FEN
from tests.account_helpers import new_key
from tests.partner_helpers import bound_car, call, debit_body, new_partner


async def car_with_arrears(client, sandbox, ctx, arrears_fen: int = 1_200):
    """A bound car whose account could not pay a partner's debit: the binding owes ``arrears_fen``."""
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=100)
    resp = await call(client, partner, "POST", "/open/v1/debits", debit_body(car, arrears_fen))
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "INSUFFICIENT_FUNDS", resp.text
    return car, partner


async def create_order(client, user, reference_id: int, purpose: str = "arrears", *, key: str | None = None):
    return await client.post("/api/v1/payments/orders", json={"purpose": purpose, "reference_id": reference_id},
                             headers={**user.headers, "Idempotency-Key": key or new_key()})


def prepay_id(order: dict) -> str:
    return order["pay_params"]["package"].removeprefix("prepay_id=")


async def pay(client, order: dict, *, result: str = "SUCCESS", notify: str = "send") -> dict:
    resp = await client.post(f"/sandbox/control/pay/{prepay_id(order)}", json={"result": result, "notify": notify})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def notifications(client, out_trade_no: str) -> list[dict]:
    resp = await client.get("/sandbox/control/pay/notifications", params={"out_trade_no": out_trade_no})
    assert resp.status_code == 200, resp.text
    return resp.json()["notifications"]


async def redeliver(client, notification_id: str, **kw) -> dict:
    resp = await client.post(f"/sandbox/control/pay/notifications/{notification_id}/redeliver", json=kw)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def wait_status(order_id: int, status: str, timeout_s: float = 10) -> PaymentOrder:
    deadline = time.monotonic() + timeout_s
    while True:
        order = await PaymentOrder.get(id=order_id)
        if order.status == status or time.monotonic() > deadline:
            return order
        await asyncio.sleep(0.05)


async def paid_device_fee(client, sandbox, ctx):
    """A bound car (no OBU yet) whose ¥99.00 device fee is paid."""
    car = await bound_car(client, sandbox)
    order = (await create_order(client, car.user, car.binding["id"], "obu_fee")).json()
    assert order["amount_fen"] == OBU_FEE_FEN
    await pay(client, order)
    assert (await wait_status(order["id"], "paid")).status == "paid"
    return car, order


async def refund(client, user, order_id: int, *, key: str | None = None, **body):
    return await client.post(f"/api/v1/payments/orders/{order_id}/refunds", json=body,
                             headers={**user.headers, "Idempotency-Key": key or new_key()})


async def wait_refund(refund_id: int, status: str = "success"):
    for _ in range(200):
        row = await PaymentRefund.get(id=refund_id)
        if row.status == status:
            return row
        await asyncio.sleep(0.05)
    return row


async def run_cli(settings, *args: str) -> subprocess.CompletedProcess:
    """``python -m app ARGS`` in its own process, on the test server's database, var/ and emulators."""
    from tests.e2e.servers import ROOT

    env = {**os.environ, "DATABASE_URL": settings.database_url, "VAR_DIR": settings.var_dir, "PYTHONPATH": str(ROOT),
           "WECHAT_APPID": settings.wechat_appid, "WECHATPAY_MCHID": settings.wechatpay_mchid,
           "WECHATPAY_PRIVATE_KEY_PATH": settings.wechatpay_private_key_path,
           "WECHATPAY_MERCHANT_SERIAL": settings.wechatpay_merchant_serial,
           "WECHATPAY_APIV3_KEY": settings.wechatpay_apiv3_key, "SELF_BASE_URL": settings.self_base_url,
           "WECHATPAY_NOTIFY_URL": settings.wechatpay_notify,
           # the server's test keys: what the CLI decrypts (a card to send money to) is the server's
           "JWT_KEYS": ",".join(f"{kid}:{key.decode()}" for kid, key in settings.jwt_keys.items()),
           "PII_KEYS": ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in settings.pii_keys.items()),
           "PII_INDEX_KEY": base64.b64encode(settings.pii_index_key).decode()}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=120)
