"""What the parts of the emulated WeChat Pay share (:mod:`sandbox.wechatpay`): ids shaped like
WeChat's, the platform key that signs answers and notifications, the merchant API's error shape, and
:class:`WeChatPay`, the state file with the caches each process keeps."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sanic import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from sandbox.config import SandboxConfig, load_rsa_public_key
from sandbox.state import Fault, State, Tx
from sandbox.wxcommon import dumps, serve_with_fault

BEIJING = timezone(timedelta(hours=8))
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
KEY_PREFIX = "wechatpay"

TRADE_STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "CLOSED": "订单已关闭",
    "PAYERROR": "支付失败(其他原因，如银行返回失败)",
    "REFUND": "转入退款",
}

FAULT_PATHS = {
    "jsapi": f"{KEY_PREFIX}/v3/pay/transactions/jsapi",
    "query_out_trade_no": f"{KEY_PREFIX}/v3/pay/transactions/out-trade-no/{{out_trade_no}}",
    "query_id": f"{KEY_PREFIX}/v3/pay/transactions/id/{{transaction_id}}",
    "close": f"{KEY_PREFIX}/v3/pay/transactions/out-trade-no/{{out_trade_no}}/close",
    "refund": f"{KEY_PREFIX}/v3/refund/domestic/refunds",
    "refund_query": f"{KEY_PREFIX}/v3/refund/domestic/refunds/{{out_refund_no}}",
    "tradebill": f"{KEY_PREFIX}/v3/bill/tradebill",
    "billdownload": f"{KEY_PREFIX}/v3/billdownload/file",
    "certificates": f"{KEY_PREFIX}/v3/certificates",
}


# -- small helpers -------------------------------------------------------------------------------


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, BEIJING).strftime("%Y-%m-%dT%H:%M:%S+08:00")


def _digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


def _alnum(n: int) -> str:
    return "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def _stamp(fmt: str = "%Y%m%d%H%M%S") -> str:
    return datetime.now(BEIJING).strftime(fmt)


def new_public_key_id() -> str:
    return "PUB_KEY_ID_" + _digits(28)


def new_prepay_id() -> str:
    return "wx" + _stamp() + secrets.token_hex(10)


def new_transaction_id() -> str:
    return "42000" + _digits(5) + _stamp("%Y%m%d") + _digits(10)


def new_refund_id() -> str:
    return "50" + _digits(9) + _stamp("%Y%m%d") + _digits(10)


def new_event_id() -> str:
    return "EV-" + _stamp() + _digits(8)


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


def canonical(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def sign_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs on responses and notifications: ``TS\\nNONCE\\nBODY\\n``."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def encrypt_resource(apiv3_key: str, plaintext: str, associated_data: str) -> dict[str, str]:
    """AEAD_AES_256_GCM under the APIv3 key, a 12-character nonce; ciphertext = b64(ct ‖ tag)."""
    nonce = _alnum(12)
    ct = AESGCM(apiv3_key.encode("ascii")).encrypt(nonce.encode(), plaintext.encode("utf-8"), associated_data.encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ct).decode(),
            "associated_data": associated_data, "nonce": nonce}


@dataclass(frozen=True)
class Platform:
    """The platform key pair shared by every process (through the state file)."""

    key_id: str
    private_key: RSAPrivateKey
    public_key_pem: str

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()

    def headers(self, body: bytes, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
        ts = timestamp or str(int(time.time()))
        nonce = nonce or new_nonce()
        return {
            "Request-ID": secrets.token_hex(16).upper(),
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": self.key_id,
            "Wechatpay-Signature": self.sign(sign_message(ts, nonce, body)),
            "Wechatpay-Signature-Type": SIGNATURE_TYPE,
        }


# -- errors ----------------------------------------------------------------------------------------


class PayError(Exception):
    """An error of the merchant API: HTTP ``status`` with ``{"code","message","detail"?}``."""

    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail

    def response(self) -> HTTPResponse:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return json_response(body, status=self.status, dumps=dumps)


def param_error(field: str, value: Any, issue: str, location: str = "body") -> PayError:
    return PayError(
        400, "PARAM_ERROR", f"输入源“/{location}{field}”映射到值字段“{field.rsplit('/', 1)[-1]}”{issue}",
        {"field": field, "value": value, "issue": issue, "location": location},
    )


def sign_error(message: str, detail: dict[str, Any] | None = None) -> PayError:
    return PayError(401, "SIGN_ERROR", message, detail)


def fault_reply(fault: Fault) -> HTTPResponse | None:
    """A fault's reply in WeChat Pay's error shape (None: it only delays or drops)."""
    if fault.http_status:
        status = int(fault.http_status)
        code = ("SYSTEM_ERROR" if status >= 500 else "RATELIMIT_EXCEEDED" if status == 429
                else "SIGN_ERROR" if status == 401 else "NOT_FOUND" if status == 404 else "PARAM_ERROR")
        return json_response({"code": code, "message": f"sandbox injected fault: HTTP {status}"},
                             status=status, dumps=dumps)
    if fault.body is not None:
        return json_response(fault.body, dumps=dumps)
    return None


async def serve(state: State, request: Request, key: str, work: Callable[[], Awaitable[HTTPResponse]]) -> HTTPResponse:
    """Run ``work`` under the next injected fault for ``key`` and log the call (the shared
    :func:`sandbox.wxcommon.serve_with_fault`, answering faults in WeChat Pay's error shape)."""
    return await serve_with_fault(state, request, key, work, errcodes=False, reply=fault_reply)


def gateway_of(request: Request) -> str:
    """The base URL the client used for this API (the part before ``/v3/``), e.g.
    ``http://127.0.0.1:8000/sandbox/wechatpay``: what it must put in front of ``/v3/...``."""
    path = request.path
    return f"{request.scheme}://{request.host}{path[:path.find('/v3/')]}"


def signed_url(request: Request) -> str:
    """The URL a merchant signs: the request line's path and query, without the mount prefix."""
    path = request.path
    i = path.find("/v3/")
    path = path[i:] if i >= 0 else path
    return path + ("?" + request.query_string if request.query_string else "")


# -- what the parts share --------------------------------------------------------------------------


class WeChatPay:
    """What every part of the emulated WeChat Pay shares: the state file, the platform key, the
    merchants' keys and the run-time settings, and how an order reads (one per blueprint; per process
    it keeps only caches)."""

    def __init__(self, config: SandboxConfig, state: State):
        self.config = config
        self.state = state
        self._platform: Platform | None = None
        self._platform_pid: int | None = None
        self._merchant_keys: dict[str, RSAPublicKey] = {}

    # -- keys ------------------------------------------------------------------------------------

    async def platform(self) -> Platform:
        if self._platform is None or self._platform_pid != os.getpid():
            row = await self.state.fetchone("SELECT public_key_id, private_key_pem, public_key_pem FROM pay_platform")
            if row is None:  # a state file opened before this emulator existed, without its seed
                raise RuntimeError("no WeChat Pay platform key in the state file")
            key = serialization.load_pem_private_key(row["private_key_pem"].encode(), password=None)
            assert isinstance(key, RSAPrivateKey)
            self._platform = Platform(row["public_key_id"], key, row["public_key_pem"])
            self._platform_pid = os.getpid()
        return self._platform

    def merchant_key(self, pem: str) -> RSAPublicKey:
        key = self._merchant_keys.get(pem)
        if key is None:
            key = load_rsa_public_key(pem)
            self._merchant_keys[pem] = key
        return key

    async def signed(self, response: HTTPResponse) -> HTTPResponse:
        platform = await self.platform()
        body = response.body or b""
        for name, value in platform.headers(body).items():
            response.headers[name] = value
        return response

    # -- settings --------------------------------------------------------------------------------

    async def settings(self) -> dict[str, Any]:
        rows = await self.state.fetchall(
            "SELECT key, value FROM settings WHERE key IN ('pay_retry_schedule_s', 'pay_refund_delay_s', "
            "'pay_notify_timeout_s')"
        )
        stored = {r["key"]: json.loads(r["value"]) for r in rows}
        return {
            "retry_schedule_s": stored.get("pay_retry_schedule_s", list(self.config.pay_retry_schedule_s)),
            "refund_delay_s": stored.get("pay_refund_delay_s", self.config.pay_refund_delay_s),
            "notify_timeout_s": stored.get("pay_notify_timeout_s", self.config.pay_notify_timeout_s),
        }

    # -- how an order reads ------------------------------------------------------------------------------------

    @staticmethod
    def trade_state(order: Any, refunded: bool, now: float) -> str:
        state = order["trade_state"]
        if state == "NOTPAY" and order["expire_at"] is not None and now >= order["expire_at"]:
            return "CLOSED"
        if state == "SUCCESS" and refunded:
            return "REFUND"
        return state

    async def has_refunds(self, db: State | Tx, mchid: str, out_trade_no: str) -> bool:
        row = await db.fetchone("SELECT 1 FROM pay_refunds WHERE mchid = ? AND out_trade_no = ? LIMIT 1",
                                (mchid, out_trade_no))
        return row is not None

    def transaction(self, order: Any, refunded: bool, now: float, state: str | None = None) -> dict[str, Any]:
        state = state or self.trade_state(order, refunded, now)
        obj: dict[str, Any] = {"appid": order["appid"], "mchid": order["mchid"], "out_trade_no": order["out_trade_no"]}
        if order["transaction_id"]:
            obj["transaction_id"] = order["transaction_id"]
        obj["trade_type"] = "JSAPI"
        obj["trade_state"] = state
        obj["trade_state_desc"] = TRADE_STATE_DESC[state]
        if order["bank_type"]:
            obj["bank_type"] = order["bank_type"]
        if order["attach"] is not None:
            obj["attach"] = order["attach"]
        if order["success_time"] and state in ("SUCCESS", "REFUND"):
            obj["success_time"] = order["success_time"]
        obj["payer"] = {"openid": order["openid"]}
        amount: dict[str, Any] = {"total": order["total"]}
        if state in ("SUCCESS", "REFUND"):
            amount["payer_total"] = order["total"]
        amount["currency"] = order["currency"]
        amount["payer_currency"] = order["currency"]
        obj["amount"] = amount
        return obj
