"""The emulated WeChat Pay's control routes (``/sandbox/control/pay/...``): the merchants it knows, its
platform key and settings, what it holds (orders, notifications), the user paying an order, and
redelivering a notification. Guide: ``docs/sandbox.md`` ("WeChat Pay v3").

- ``POST pay/merchants {mchid, appid, apiv3_key, merchant_serial, merchant_public_key_pem}`` → 201;
  ``GET pay/merchants``; ``GET pay/platform-key`` → ``{"public_key_id","public_key_pem"}``
- ``GET|POST pay/settings {retry_schedule_s?, refund_delay_s?, notify_timeout_s?}``
- ``GET pay/orders?mchid=&out_trade_no=``; ``GET pay/notifications?out_trade_no=&out_refund_no=&mchid=&event_type=``
  (each with its delivery attempts)
- ``POST pay/{prepay_id} {result: SUCCESS|PAYERROR, notify?: send|drop|delay, delay_s?, bank_type?}``:
  the user pays. A SUCCESS makes a TRANSACTION.SUCCESS notification (PAYERROR none: WeChat only
  notifies successful payments), sent at once, after ``delay_s`` or never (``drop``).
- ``POST pay/notifications/{id}/redeliver {count?, parallel?, tamper?}`` and ``POST
  pay/{prepay_id}/notify`` (the same body optional: that order's payment notification): extra sends
  with fresh signatures, outside the retry schedule (:mod:`sandbox.wechatpay.notify`).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from sanic import Request
from sanic.response import HTTPResponse

from sandbox.config import MCHID_RE, check_pay_merchant, check_retry_schedule
from sandbox.control_kit import Body, ControlRoutes, answer, bad, not_found, parse
from sandbox.wechatpay.core import WeChatPay, new_transaction_id, rfc3339
from sandbox.wechatpay.notify import TAMPERS, Dispatcher, new_notification

NOTIFY_MODES = ("send", "drop", "delay")
BANK_TYPE_RE = re.compile(r"^[A-Z0-9_]{1,32}$")


class MerchantBody(Body):
    mchid: str = Field(pattern=MCHID_RE.pattern, description="mchid must be 1-32 digits")
    # the merchant's own rules are check_pay_merchant's, shared with SANDBOX_PAY_MERCHANTS files
    appid: Any = None
    apiv3_key: Any = None
    merchant_serial: Any = None
    merchant_public_key_pem: Any = None

    @model_validator(mode="after")
    def merchant_fits(self) -> MerchantBody:
        try:
            check_pay_merchant(self.appid, self.apiv3_key, self.merchant_serial, self.merchant_public_key_pem)
        except ValueError as exc:
            field, message = exc.args
            raise bad(field, message) from None
        return self


class SettingsBody(Body):
    retry_schedule_s: list[float] | None = Field(
        None, description="retry_schedule_s must be a list of at most 30 pauses of 0-86400 s")
    refund_delay_s: float | None = Field(None, ge=0, le=3600, description="refund_delay_s must be a number in [0, 3600]")
    notify_timeout_s: float | None = Field(None, gt=0, le=60, description="notify_timeout_s must be a number in (0, 60]")

    @field_validator("retry_schedule_s")
    @classmethod
    def schedule_fits(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            try:
                check_retry_schedule(value)
            except ValueError:
                raise bad("retry_schedule_s", "retry_schedule_s must be a list of at most 30 pauses of 0-86400 s") from None
        return value


class PayBody(Body):
    result: Literal["SUCCESS", "PAYERROR"] = Field(description="result must be 'SUCCESS' or 'PAYERROR'")
    notify: Literal["send", "drop", "delay"] | None = Field(None, description="notify must be 'send', 'drop' or 'delay'")
    delay_s: float | None = Field(None, gt=0, le=3600,
                                  description="delay_s must be a number in (0, 3600], with notify 'delay'")
    bank_type: str = Field("OTHERS", pattern=BANK_TYPE_RE.pattern,
                           description="bank_type must be 1-32 of A-Z 0-9 _ (e.g. OTHERS, CMB_CREDIT)")

    @model_validator(mode="after")
    def delay_goes_with_delay(self) -> PayBody:
        if self.delay_s is not None and self.notify_mode != "delay":
            raise bad("delay_s", "delay_s must be a number in (0, 3600], with notify 'delay'")
        return self

    @property
    def notify_mode(self) -> str:
        return self.notify or ("delay" if self.delay_s is not None else "send")


class RedeliverBody(Body):
    count: int = Field(1, ge=1, le=100, description="count must be an integer in [1, 100]")
    parallel: bool = Field(False, description="parallel must be true or false")
    tamper: Literal[TAMPERS] | None = Field(None, description=f"tamper must be one of {', '.join(TAMPERS)}")


async def pay_the_order(pay: WeChatPay, dispatcher: Dispatcher, prepay_id: str, body: PayBody) -> dict[str, Any]:
    """Play the user paying the order of ``prepay_id``."""
    notify, delay_s = body.notify_mode, body.delay_s if body.delay_s is not None else 1.0
    now = time.time()
    notification_id = None
    async with pay.state.tx() as tx:
        order = await tx.fetchone("SELECT * FROM pay_orders WHERE prepay_id = ?", (prepay_id,))
        if order is None:
            raise not_found("unknown prepay_id")
        state = pay.trade_state(order, False, now)
        if state == "SUCCESS":
            raise bad("prepay_id", "the order is already paid")
        if state == "CLOSED":
            raise bad("prepay_id", "the order is closed (closed by the merchant or past its time_expire)")
        merchant = await tx.fetchone("SELECT * FROM pay_merchants WHERE mchid = ?", (order["mchid"],))
        transaction_id = order["transaction_id"] or new_transaction_id()
        if body.result == "SUCCESS":
            await tx.execute(
                "UPDATE pay_orders SET trade_state = 'SUCCESS', transaction_id = ?, bank_type = ?, success_time = ?, "
                "success_at = ? WHERE prepay_id = ?",
                (transaction_id, body.bank_type, rfc3339(now), now, prepay_id),
            )
        else:
            await tx.execute(
                "UPDATE pay_orders SET trade_state = 'PAYERROR', transaction_id = ?, bank_type = ? WHERE prepay_id = ?",
                (transaction_id, body.bank_type, prepay_id),
            )
        order = await tx.fetchone("SELECT * FROM pay_orders WHERE prepay_id = ?", (prepay_id,))
        if body.result == "SUCCESS":
            plaintext = pay.transaction(order, False, now, "SUCCESS")
            status, next_at = ("dropped", None) if notify == "drop" else (
                "pending", now + (delay_s if notify == "delay" else 0))
            notification_id = await new_notification(
                tx, merchant, "TRANSACTION.SUCCESS", "支付成功", "transaction", plaintext, order["out_trade_no"],
                None, order["notify_url"], now, status, next_at,
            )
    if notification_id is not None:
        dispatcher.wake()
    return {
        "prepay_id": prepay_id, "mchid": order["mchid"], "out_trade_no": order["out_trade_no"],
        "trade_state": order["trade_state"], "transaction_id": order["transaction_id"],
        "notification_id": notification_id,
    }


async def orders(pay: WeChatPay, mchid: str | None, out_trade_no: str | None) -> list[dict[str, Any]]:
    where, params = [], []
    for column, value in (("mchid", mchid), ("out_trade_no", out_trade_no)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    rows = await pay.state.fetchall(
        "SELECT o.*, EXISTS (SELECT 1 FROM pay_refunds r WHERE r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no) "  # nosec B608
        "AS refunded FROM pay_orders o" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at",
        params,
    )
    now = time.time()
    return [
        {"mchid": r["mchid"], "out_trade_no": r["out_trade_no"], "prepay_id": r["prepay_id"],
         "transaction_id": r["transaction_id"], "trade_state": pay.trade_state(r, bool(r["refunded"]), now),
         "total": r["total"], "notify_url": r["notify_url"], "created_at": r["created_at"]}
        for r in rows
    ]


async def register_merchant(pay: WeChatPay, m: MerchantBody) -> dict[str, Any]:
    await pay.state.execute(
        "INSERT INTO pay_merchants (mchid, appid, apiv3_key, merchant_serial, merchant_public_key_pem, source, "
        "updated_at) VALUES (?, ?, ?, ?, ?, 'control', ?) ON CONFLICT (mchid) DO UPDATE SET appid = excluded.appid, "
        "apiv3_key = excluded.apiv3_key, merchant_serial = excluded.merchant_serial, "
        "merchant_public_key_pem = excluded.merchant_public_key_pem, source = 'control', "
        "updated_at = excluded.updated_at",
        (m.mchid, m.appid, m.apiv3_key, m.merchant_serial, m.merchant_public_key_pem, time.time()),
    )
    return {"mchid": m.mchid, "appid": m.appid, "merchant_serial": m.merchant_serial, "source": "control"}


async def set_settings(pay: WeChatPay, body: SettingsBody) -> dict[str, Any]:
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is not None:
            await pay.state.set_setting("pay_" + name, json.dumps(value))
    return await pay.settings()


def add_control_routes(routes: ControlRoutes, pay: WeChatPay, dispatcher: Dispatcher) -> None:
    route = routes.route

    @route("/pay/merchants", ["POST"])
    async def pay_merchant_add(request: Request) -> HTTPResponse:
        return answer(await register_merchant(pay, parse(MerchantBody, request)), status=201)

    @route("/pay/merchants", ["GET"])
    async def pay_merchants(request: Request) -> HTTPResponse:
        rows = await pay.state.fetchall("SELECT mchid, appid, merchant_serial, source FROM pay_merchants ORDER BY mchid")
        return answer({"merchants": [dict(r) for r in rows]})

    @route("/pay/platform-key", ["GET"])
    async def pay_platform_key(request: Request) -> HTTPResponse:
        platform = await pay.platform()
        return answer({"public_key_id": platform.key_id, "public_key_pem": platform.public_key_pem})

    @route("/pay/settings", ["GET"])
    async def pay_settings_get(request: Request) -> HTTPResponse:
        return answer(await pay.settings())

    @route("/pay/settings", ["POST"])
    async def pay_settings_set(request: Request) -> HTTPResponse:
        return answer(await set_settings(pay, parse(SettingsBody, request)))

    @route("/pay/orders", ["GET"])
    async def pay_orders(request: Request) -> HTTPResponse:
        return answer({"orders": await orders(pay, request.args.get("mchid"), request.args.get("out_trade_no"))})

    @route("/pay/notifications", ["GET"])
    async def pay_notifications(request: Request) -> HTTPResponse:
        filters = {k: request.args.get(k) for k in ("mchid", "out_trade_no", "out_refund_no", "event_type")}
        return answer({"notifications": await dispatcher.notifications(filters)})

    @route("/pay/notifications/<notification_id>/redeliver", ["POST"])
    async def pay_redeliver(request: Request, notification_id: str) -> HTTPResponse:
        b = parse(RedeliverBody, request)
        return answer(await dispatcher.redeliver(notification_id, b.count, b.parallel, b.tamper))

    @route("/pay/<prepay_id>/notify", ["POST"])
    async def pay_notify_again(request: Request, prepay_id: str) -> HTTPResponse:
        b = parse(RedeliverBody, request)
        return answer(await dispatcher.notify_again(prepay_id, b.count, b.parallel, b.tamper))

    @route("/pay/<prepay_id>", ["POST"])
    async def pay_order(request: Request, prepay_id: str) -> HTTPResponse:
        return answer(await pay_the_order(pay, dispatcher, prepay_id, parse(PayBody, request)))
