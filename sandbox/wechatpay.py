"""Emulated WeChat Pay API v3 (直连商户, mini-program JSAPI), mounted at ``/sandbox/wechatpay``: stands for
``https://api.mch.weixin.qq.com``. Wire contract: ``docs/wechat-wire.md`` section 2; guide:
``docs/sandbox.md`` ("WeChat Pay v3"). An independent implementation from the documents (it does not
use ``wechatpayv3``), so that a mistake cannot hide by being made on both sides.

**Keys.** The platform key pair (RSA 2048) is generated once per state file, in the seed that runs
when a process opens it, and stored there, so every worker process signs with the same key; its id is
``PUB_KEY_ID_`` + 28 digits (public-key mode: ``Wechatpay-Serial`` carries that id; there are no
platform certificates, ``GET /v3/certificates`` answers ``{"data": []}``). The backend reads the
public key from ``GET /sandbox/control/pay/platform-key``. Merchants (``SandboxConfig.pay_merchants``,
or ``POST /sandbox/control/pay/merchants``) give their mchid, appid, APIv3 key, certificate serial and
the public half of their API key.

**Requests.** Every ``/v3/...`` call must carry ``Authorization: WECHATPAY2-SHA256-RSA2048
mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"`` (any order), the signature being
RSA-SHA256 PKCS#1 v1.5 under the merchant's key over ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n``:
URL is the path and query exactly as on the request line (percent-encoding kept) **without the mount
prefix** (``/v3/pay/transactions/jsapi``, as the request would be on api.mch.weixin.qq.com), BODY the
exact body bytes (empty for a GET). A missing or malformed header, an unknown mchid, a serial_no other
than the merchant's, a timestamp more than 300 s away or a signature that does not verify answer 401
``{"code":"SIGN_ERROR","message","detail"}`` (``detail.sign_information`` shows the string the
emulator verified, as WeChat's own SIGN_ERROR does). The mchid of the body or query must be the one of
the Authorization header (400 PARAM_ERROR otherwise).

**Responses.** Every answer of this blueprint (errors, 204s and injected faults included) carries
``Request-ID``, ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``, ``Wechatpay-Serial`` (the PUB_KEY_ID),
``Wechatpay-Signature`` (RSA-SHA256 over ``TS\\nNONCE\\nBODY\\n``; BODY empty for a 204) and
``Wechatpay-Signature-Type: WECHATPAY2-SHA256-RSA2048``. Errors are ``{"code","message","detail"?}``.

**APIs** (fault and call-log keys: ``wechatpay/`` + the path, with ``{…}`` literally for a parameter):

- ``POST /v3/pay/transactions/jsapi`` → ``{"prepay_id"}``; the same out_trade_no again with the same
  body → the same prepay_id; with another body → 400 INVALID_REQUEST "订单号重复"; an order already
  paid → 400 ORDERPAID, closed → 400 ORDER_CLOSED; appid not the merchant's → 400
  APPID_MCHID_NOT_MATCH; anything malformed → 400 PARAM_ERROR with ``detail{field,value,issue,location}``.
- ``GET /v3/pay/transactions/out-trade-no/{no}?mchid=`` and ``GET /v3/pay/transactions/id/{id}?mchid=``
  → the transaction; unknown → 404 ORDER_NOT_EXIST. ``trade_state``: NOTPAY, SUCCESS, CLOSED (closed,
  or NOTPAY past its time_expire), PAYERROR, REFUND (paid, and a refund was applied for).
- ``POST /v3/pay/transactions/out-trade-no/{no}/close {mchid}`` → 204 (also for a closed order); a
  paid one → 400 ORDERPAID; unknown → 404 ORDER_NOT_EXIST.
- ``POST /v3/refund/domestic/refunds`` → the refund, ``status`` PROCESSING until
  ``pay_refund_delay_s`` has passed, then SUCCESS (0: SUCCESS at once); idempotent per out_refund_no
  (the same body → the same refund; another → 400 INVALID_REQUEST); refunds of an order never total
  more than was paid (400 NOT_ENOUGH); only a paid order can be refunded (400 INVALID_REQUEST
  otherwise); ``amount.total`` must be the order's (400 INVALID_REQUEST); unknown order → 404
  RESOURCE_NOT_EXISTS. With a ``notify_url``, REFUND.SUCCESS is delivered when it succeeds.
- ``GET /v3/refund/domestic/refunds/{out_refund_no}`` → the refund, or 404 RESOURCE_NOT_EXISTS.
- ``GET /v3/bill/tradebill?bill_date=&bill_type=ALL|SUCCESS|REFUND&tar_type=GZIP?`` →
  ``{"hash_type":"SHA1","hash_value","download_url"}``; ``GET /v3/billdownload/file?token=`` (signed
  request like any other, valid 30 s) → the bill (:mod:`sandbox.wechatpay_bill`). A day without
  records → 400 NO_STATEMENT_EXIST.
- ``GET /v3/certificates`` → ``{"data": []}`` (public-key mode only).
- Any other path or method → 404 ``{"code":"NOT_FOUND"}``.

**Paying and notifications.** ``POST /sandbox/control/pay/{prepay_id} {result, notify?, delay_s?,
bank_type?}`` plays the user paying. A SUCCESS creates a TRANSACTION.SUCCESS notification (PAYERROR
none: WeChat only notifies successful payments). Notifications are rows of the state file; each
worker process runs a dispatcher (:meth:`WeChatPay.start`) that claims due deliveries atomically (a
lease of the delivery timeout + 5 s) and POSTs them, so a retry due while the process that made the
payment is gone is sent by any other process running the sandbox. A delivery succeeds on HTTP 200 or
204 within ``pay_notify_timeout_s``; otherwise the next one is due after the next pause of
``pay_retry_schedule_s``; after the last pause's delivery fails the notification is ``failed``.
Redeliveries (``POST /sandbox/control/pay/notifications/{id}/redeliver``) are extra sends of the same
body with fresh signatures, outside that schedule (optionally tampered with, for negative tests);
``POST /sandbox/control/pay/{prepay_id}/notify`` does the same for the order's payment notification.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw
from sanic.response import json as json_response

from sandbox import wechatpay_bill as bill
from sandbox.config import (
    MCHID_RE,
    SandboxConfig,
    check_pay_merchant,
    check_retry_schedule,
    load_rsa_public_key,
)
from sandbox.state import Fault, State, Tx
from sandbox.wxcommon import dumps, serve_with_fault

log = logging.getLogger("sandbox.wechatpay")

BEIJING = timezone(timedelta(hours=8))
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW_S = 300
LEASE_MARGIN_S = 5.0
POLL_S = 0.2
POLL_IDLE_S = 1.0
BILL_TTL_S = 30
KEY_PREFIX = "wechatpay"
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
SUCCESS_STATUSES = (200, 204)
TAMPERS = ("byte", "serial", "timestamp", "signature")
NOTIFY_MODES = ("send", "drop", "delay")
BANK_TYPE_RE = re.compile(r"^[A-Z0-9_]{1,32}$")
OUT_TRADE_NO_RE = re.compile(r"^[A-Za-z0-9_\-|*]{6,32}$")
OUT_REFUND_NO_RE = re.compile(r"^[A-Za-z0-9_\-|*@]{1,64}$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}:\d{2}|Z)$")
BILL_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
AUTH_PARAM_RE = re.compile(r'\s*([A-Za-z_]+)\s*=\s*"([^"]*)"\s*(?:,|$)')
MAX_TOTAL = 10**10

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

SCHEMA_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS pay_platform (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        public_key_id TEXT NOT NULL,          -- PUB_KEY_ID_ + 28 digits
        private_key_pem TEXT NOT NULL,
        public_key_pem TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS pay_merchants (
        mchid TEXT PRIMARY KEY,
        appid TEXT NOT NULL,
        apiv3_key TEXT NOT NULL,
        merchant_serial TEXT NOT NULL,
        merchant_public_key_pem TEXT NOT NULL,
        source TEXT NOT NULL,                 -- 'config' | 'control'
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS pay_orders (
        mchid TEXT NOT NULL,
        out_trade_no TEXT NOT NULL,
        appid TEXT NOT NULL,
        prepay_id TEXT NOT NULL UNIQUE,
        request_json TEXT NOT NULL,           -- the jsapi body, canonical: a repeat must be identical
        description TEXT NOT NULL,
        attach TEXT,
        notify_url TEXT NOT NULL,
        time_expire TEXT,
        expire_at REAL,
        total INTEGER NOT NULL,
        currency TEXT NOT NULL,
        openid TEXT NOT NULL,
        trade_state TEXT NOT NULL,            -- NOTPAY | SUCCESS | CLOSED | PAYERROR (REFUND, expiry: derived)
        transaction_id TEXT UNIQUE,
        bank_type TEXT,
        success_time TEXT,
        success_at REAL,
        closed_at REAL,
        created_at REAL NOT NULL,
        PRIMARY KEY (mchid, out_trade_no)
    )""",
    """CREATE TABLE IF NOT EXISTS pay_refunds (
        refund_id TEXT PRIMARY KEY,
        mchid TEXT NOT NULL,
        out_refund_no TEXT NOT NULL,
        out_trade_no TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        request_json TEXT NOT NULL,
        reason TEXT,
        notify_url TEXT,
        funds_account TEXT,
        refund INTEGER NOT NULL,
        total INTEGER NOT NULL,
        currency TEXT NOT NULL,
        created_at REAL NOT NULL,
        success_at REAL NOT NULL,             -- PROCESSING before, SUCCESS from then on
        UNIQUE (mchid, out_refund_no)
    )""",
    "CREATE INDEX IF NOT EXISTS pay_refunds_by_order ON pay_refunds (mchid, out_trade_no)",
    """CREATE TABLE IF NOT EXISTS pay_notifications (
        id TEXT PRIMARY KEY,                  -- EV-...
        mchid TEXT NOT NULL,
        event_type TEXT NOT NULL,
        summary TEXT NOT NULL,
        out_trade_no TEXT,
        out_refund_no TEXT,
        notify_url TEXT NOT NULL,
        body TEXT NOT NULL,                   -- sent as is by every delivery (signed afresh each time)
        resource_json TEXT NOT NULL,          -- the plaintext of resource (for the control API)
        created_at REAL NOT NULL,
        status TEXT NOT NULL,                 -- pending | delivered | failed | dropped
        next_at REAL,                         -- when the next scheduled delivery is due (pending)
        lease_until REAL,                     -- a process is delivering it until then
        attempts INTEGER NOT NULL DEFAULT 0,  -- scheduled deliveries made
        delivered_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS pay_notifications_due ON pay_notifications (status, next_at)",
    """CREATE TABLE IF NOT EXISTS pay_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        notification_id TEXT NOT NULL,
        kind TEXT NOT NULL,                   -- scheduled | redeliver
        tamper TEXT,
        at REAL NOT NULL,
        http_status INTEGER,                  -- NULL: no answer (error says why)
        error TEXT,
        reply TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS pay_attempts_by_notification ON pay_attempts (notification_id, id)",
    """CREATE TABLE IF NOT EXISTS pay_bills (
        token TEXT PRIMARY KEY,
        mchid TEXT NOT NULL,
        content BLOB NOT NULL,
        gzipped INTEGER NOT NULL,
        expires_at REAL NOT NULL
    )""",
)


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


def generate_platform_key() -> tuple[str, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return new_public_key_id(), private_pem, public_pem


def with_schema(config: SandboxConfig, seed: Callable[[Tx], Awaitable[None]] | None) -> Callable[[Tx], Awaitable[None]]:
    """A :class:`State` seed creating the WeChat Pay tables, the platform key pair (once per state
    file: the seed runs in ``BEGIN IMMEDIATE``, so concurrent workers cannot both create one) and the
    configured merchants (a merchant registered through the control API is left alone); then ``seed``."""

    async def seeded(tx: Tx) -> None:
        for statement in SCHEMA_STATEMENTS:
            await tx.execute(statement)
        if await tx.fetchone("SELECT 1 FROM pay_platform WHERE id = 1") is None:
            key_id, private_pem, public_pem = generate_platform_key()
            await tx.execute(
                "INSERT INTO pay_platform (id, public_key_id, private_key_pem, public_key_pem, created_at) "
                "VALUES (1, ?, ?, ?, ?)",
                (key_id, private_pem, public_pem, time.time()),
            )
        for mchid, m in config.pay_merchants.items():
            await tx.execute(
                "INSERT INTO pay_merchants (mchid, appid, apiv3_key, merchant_serial, merchant_public_key_pem, source, "
                "updated_at) VALUES (?, ?, ?, ?, ?, 'config', ?) ON CONFLICT (mchid) DO UPDATE SET "
                "appid = excluded.appid, apiv3_key = excluded.apiv3_key, merchant_serial = excluded.merchant_serial, "
                "merchant_public_key_pem = excluded.merchant_public_key_pem, updated_at = excluded.updated_at "
                "WHERE pay_merchants.source = 'config'",
                (mchid, m.appid, m.apiv3_key, m.merchant_serial, m.merchant_public_key_pem, time.time()),
            )
        if seed is not None:
            await seed(tx)

    return seeded


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


class ControlProblem(Exception):
    """A control-API request that cannot be done (``status`` 400 or 404; ``field`` the culprit)."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


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


# -- reading requests ------------------------------------------------------------------------------


def json_body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        raise PayError(400, "PARAM_ERROR", "请求体不是合法的JSON对象",
                       {"field": "/", "value": None, "issue": "body is not a JSON object", "location": "body"}) from None
    if not isinstance(data, dict):
        raise PayError(400, "PARAM_ERROR", "请求体不是合法的JSON对象",
                       {"field": "/", "value": None, "issue": "body is not a JSON object", "location": "body"})
    return data


def _str(data: dict[str, Any], name: str, *, prefix: str = "", required: bool = True, max_len: int = 256,
         pattern: re.Pattern[str] | None = None, min_len: int = 1) -> str | None:
    value = data.get(name)
    field = f"{prefix}/{name}"
    if value is None:
        if required:
            raise param_error(field, None, "必填性规则校验失败，此字段为必填项")
        return None
    if not isinstance(value, str):
        raise param_error(field, value, "类型错误，应为字符串")
    if not min_len <= len(value) <= max_len:
        raise param_error(field, value, f"长度应为{min_len}-{max_len}个字符")
    if pattern is not None and not pattern.fullmatch(value):
        raise param_error(field, value, "格式错误")
    return value


def _int(data: dict[str, Any], name: str, *, prefix: str, lo: int, hi: int = MAX_TOTAL, required: bool = True) -> int | None:
    value = data.get(name)
    field = f"{prefix}/{name}"
    if value is None:
        if required:
            raise param_error(field, None, "必填性规则校验失败，此字段为必填项")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise param_error(field, value, "类型错误，应为整数")
    if not lo <= value <= hi:
        raise param_error(field, value, f"取值应在[{lo}, {hi}]之间")
    return value


def _object(data: dict[str, Any], name: str, *, required: bool = True) -> dict[str, Any]:
    value = data.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise param_error(f"/{name}", value, "必填性规则校验失败，此字段应为对象")
    return value


def _url(data: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = _str(data, name, required=required, max_len=256)
    if value is None:
        return None
    try:
        parsed = httpx.URL(value)
    except Exception:  # noqa: BLE001 - any parse failure is a bad URL
        parsed = None
    if parsed is None or parsed.scheme not in ("https", "http") or not parsed.host:
        raise param_error(f"/{name}", value, "应为以https://或http://开头的URL")
    return value


def _currency(data: dict[str, Any], prefix: str, *, required: bool) -> str:
    value = _str(data, "currency", prefix=prefix, required=required, max_len=16) or "CNY"
    if value != "CNY":
        raise param_error(f"{prefix}/currency", value, "币种只支持CNY")
    return value


def parse_time_expire(value: str) -> float:
    if not RFC3339_RE.fullmatch(value):
        raise param_error("/time_expire", value, "应为rfc3339格式，如2018-06-08T10:34:56+08:00")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise param_error("/time_expire", value, "应为rfc3339格式，如2018-06-08T10:34:56+08:00") from None


# -- the emulator ----------------------------------------------------------------------------------


class WeChatPay:
    """State access, signing and the notification dispatcher of the emulated WeChat Pay (one per
    blueprint; per process it keeps only caches: the platform key and the dispatcher task)."""

    def __init__(self, config: SandboxConfig, state: State):
        self.config = config
        self.state = state
        self._platform: Platform | None = None
        self._platform_pid: int | None = None
        self._merchant_keys: dict[str, RSAPublicKey] = {}
        self._task: asyncio.Task | None = None
        self._task_pid: int | None = None
        self._wake: asyncio.Event | None = None
        self._inflight: set[asyncio.Task] = set()
        self._client: httpx.AsyncClient | None = None

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

    def _merchant_key(self, pem: str) -> RSAPublicKey:
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

    async def set_settings(self, data: dict[str, Any]) -> dict[str, Any]:
        allowed = ("retry_schedule_s", "refund_delay_s", "notify_timeout_s")
        unknown = set(data) - set(allowed)
        if unknown:
            raise ControlProblem(400, f"unknown setting; the settings are {', '.join(allowed)}", min(unknown))
        updates: dict[str, Any] = {}
        if "retry_schedule_s" in data:
            schedule = data["retry_schedule_s"]
            try:
                if not isinstance(schedule, list) or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                                         for v in schedule):
                    raise ValueError
                check_retry_schedule([float(v) for v in schedule])
            except ValueError:
                raise ControlProblem(400, "retry_schedule_s must be a list of at most 30 pauses of 0-86400 s",
                                     "retry_schedule_s") from None
            updates["pay_retry_schedule_s"] = [float(v) for v in schedule]
        for name, lo, hi, lo_open in (("refund_delay_s", 0, 3600, False), ("notify_timeout_s", 0, 60, True)):
            if name in data:
                value = data[name]
                if (isinstance(value, bool) or not isinstance(value, (int, float))
                        or not (lo < value if lo_open else lo <= value) or value > hi):
                    raise ControlProblem(400, f"{name} must be a number in {'(' if lo_open else '['}{lo}, {hi}]", name)
                updates["pay_" + name] = float(value)
        for key, value in updates.items():
            await self.state.set_setting(key, json.dumps(value))
        return await self.settings()

    # -- authentication --------------------------------------------------------------------------

    async def authenticate(self, request: Request, url: str) -> Any:
        """The merchant row of a correctly signed request, or :class:`PayError` 401 SIGN_ERROR."""
        header = request.headers.get("authorization") or ""
        scheme, _, rest = header.strip().partition(" ")
        if scheme != AUTH_SCHEME or not rest.strip():
            raise sign_error("Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》",
                             {"field": "Authorization", "location": "header",
                              "issue": f"expected '{AUTH_SCHEME} mchid=\"…\",nonce_str=\"…\",timestamp=\"…\","
                                       "serial_no=\"…\",signature=\"…\"'"})
        params: dict[str, str] = {}
        pos = 0
        rest = rest.strip()
        while pos < len(rest):
            m = AUTH_PARAM_RE.match(rest, pos)
            if m is None or m.group(1) in params:
                raise sign_error("Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》",
                                 {"field": "Authorization", "location": "header", "issue": "malformed parameters"})
            params[m.group(1)] = m.group(2)
            pos = m.end()
        missing = [k for k in ("mchid", "nonce_str", "timestamp", "serial_no", "signature") if not params.get(k)]
        if missing:
            raise sign_error(f"Http头Authorization缺少{', '.join(missing)}",
                             {"field": "Authorization", "location": "header", "issue": f"missing {', '.join(missing)}"})
        mchid = params["mchid"]
        merchant = await self.state.fetchone("SELECT * FROM pay_merchants WHERE mchid = ?", (mchid,))
        if merchant is None:
            raise sign_error("商户号不存在或未开通APIv3", {"field": "mchid", "value": mchid, "location": "authorization",
                                                          "issue": "unknown mchid"})
        if params["serial_no"].upper() != merchant["merchant_serial"].upper():
            raise sign_error("商户证书序列号有误。请使用签名私钥匹配的证书序列号",
                             {"field": "serial_no", "value": params["serial_no"], "location": "authorization",
                              "issue": "the serial_no is not the merchant's certificate serial"})
        ts = params["timestamp"]
        if not ts.isdigit() or abs(time.time() - int(ts)) > MAX_SKEW_S:
            raise sign_error("Http头Authorization中的timestamp与当前时间相差超过5分钟",
                             {"field": "timestamp", "value": ts, "location": "authorization",
                              "issue": f"more than {MAX_SKEW_S} s away from the server's clock ({int(time.time())})"})
        body = request.body or b""
        message = f"{request.method}\n{url}\n{ts}\n{params['nonce_str']}\n".encode() + body + b"\n"
        try:
            signature = base64.b64decode(params["signature"], validate=True)
            self._merchant_key(merchant["merchant_public_key_pem"]).verify(
                signature, message, padding.PKCS1v15(), hashes.SHA256()
            )
        except (ValueError, InvalidSignature):
            text = message.decode("utf-8", errors="replace")
            raise sign_error("签名错误，请检查后再试", {
                "field": "signature", "location": "authorization", "issue": "sign not match",
                "sign_information": {
                    "method": request.method, "url": url, "timestamp": ts, "nonce_str": params["nonce_str"],
                    "sign_message_length": len(message), "truncated_sign_message": text[:1024],
                },
            }) from None
        return merchant

    # -- orders ------------------------------------------------------------------------------------

    @staticmethod
    def trade_state(order: Any, refunded: bool, now: float) -> str:
        state = order["trade_state"]
        if state == "NOTPAY" and order["expire_at"] is not None and now >= order["expire_at"]:
            return "CLOSED"
        if state == "SUCCESS" and refunded:
            return "REFUND"
        return state

    async def _has_refunds(self, db: State | Tx, mchid: str, out_trade_no: str) -> bool:
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

    async def jsapi(self, request: Request, merchant: Any) -> dict[str, Any]:
        data = json_body(request)
        appid = _str(data, "appid", max_len=32)
        mchid = _str(data, "mchid", max_len=32)
        description = _str(data, "description", max_len=127)
        out_trade_no = _str(data, "out_trade_no", max_len=32, min_len=6, pattern=OUT_TRADE_NO_RE)
        time_expire = _str(data, "time_expire", required=False, max_len=64)
        attach = _str(data, "attach", required=False, max_len=128)
        notify_url = _url(data, "notify_url", required=True)
        amount = _object(data, "amount")
        total = _int(amount, "total", prefix="/amount", lo=1)
        currency = _currency(amount, "/amount", required=False)
        payer = _object(data, "payer")
        openid = _str(payer, "openid", prefix="/payer", max_len=128)
        expire_at = parse_time_expire(time_expire) if time_expire is not None else None
        if mchid != merchant["mchid"]:
            raise PayError(400, "PARAM_ERROR", "请求中的mchid与Authorization中的商户号不一致",
                           {"field": "/mchid", "value": mchid, "issue": "not the mchid of the Authorization header",
                            "location": "body"})
        if appid != merchant["appid"]:
            raise PayError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        request_json = canonical(data)
        now = time.time()
        async with self.state.tx() as tx:
            order = await tx.fetchone("SELECT * FROM pay_orders WHERE mchid = ? AND out_trade_no = ?",
                                      (mchid, out_trade_no))
            if order is not None:
                state = self.trade_state(order, False, now)
                if state == "SUCCESS":
                    raise PayError(400, "ORDERPAID", "该订单已支付")
                if state == "CLOSED":
                    raise PayError(400, "ORDER_CLOSED", "订单已关闭")
                if order["request_json"] != request_json:
                    raise PayError(400, "INVALID_REQUEST", "订单号重复",
                                   {"issue": "the out_trade_no was used with other parameters"})
                return {"prepay_id": order["prepay_id"]}
            prepay_id = new_prepay_id()
            await tx.execute(
                "INSERT INTO pay_orders (mchid, out_trade_no, appid, prepay_id, request_json, description, attach, "
                "notify_url, time_expire, expire_at, total, currency, openid, trade_state, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'NOTPAY', ?)",
                (mchid, out_trade_no, appid, prepay_id, request_json, description, attach, notify_url, time_expire,
                 expire_at, total, currency, openid, now),
            )
        return {"prepay_id": prepay_id}

    def _query_mchid(self, request: Request, merchant: Any) -> str:
        mchid = request.args.get("mchid")
        if not mchid:
            raise param_error("/mchid", None, "必填性规则校验失败，此字段为必填项", location="querystring")
        if mchid != merchant["mchid"]:
            raise param_error("/mchid", mchid, "与Authorization中的商户号不一致", location="querystring")
        return mchid

    async def _order_answer(self, order: Any) -> dict[str, Any]:
        if order is None:
            raise PayError(404, "ORDER_NOT_EXIST", "订单不存在")
        refunded = await self._has_refunds(self.state, order["mchid"], order["out_trade_no"])
        return self.transaction(order, refunded, time.time())

    async def query_by_out_trade_no(self, request: Request, merchant: Any, out_trade_no: str) -> dict[str, Any]:
        mchid = self._query_mchid(request, merchant)
        order = await self.state.fetchone("SELECT * FROM pay_orders WHERE mchid = ? AND out_trade_no = ?",
                                          (mchid, out_trade_no))
        return await self._order_answer(order)

    async def query_by_id(self, request: Request, merchant: Any, transaction_id: str) -> dict[str, Any]:
        mchid = self._query_mchid(request, merchant)
        order = await self.state.fetchone("SELECT * FROM pay_orders WHERE mchid = ? AND transaction_id = ?",
                                          (mchid, transaction_id))
        return await self._order_answer(order)

    async def close(self, request: Request, merchant: Any, out_trade_no: str) -> HTTPResponse:
        data = json_body(request)
        mchid = _str(data, "mchid", max_len=32)
        if mchid != merchant["mchid"]:
            raise PayError(400, "PARAM_ERROR", "请求中的mchid与Authorization中的商户号不一致",
                           {"field": "/mchid", "value": mchid, "issue": "not the mchid of the Authorization header",
                            "location": "body"})
        now = time.time()
        async with self.state.tx() as tx:
            order = await tx.fetchone("SELECT * FROM pay_orders WHERE mchid = ? AND out_trade_no = ?",
                                      (mchid, out_trade_no))
            if order is None:
                raise PayError(404, "ORDER_NOT_EXIST", "订单不存在")
            if order["trade_state"] == "SUCCESS":
                raise PayError(400, "ORDERPAID", "订单已支付")
            if order["trade_state"] != "CLOSED":
                await tx.execute(
                    "UPDATE pay_orders SET trade_state = 'CLOSED', closed_at = ? WHERE mchid = ? AND out_trade_no = ?",
                    (now, mchid, out_trade_no),
                )
        return HTTPResponse(status=204)

    # -- refunds -----------------------------------------------------------------------------------

    def refund_object(self, r: Any, now: float) -> dict[str, Any]:
        status = "SUCCESS" if now >= r["success_at"] else "PROCESSING"
        obj: dict[str, Any] = {
            "refund_id": r["refund_id"], "out_refund_no": r["out_refund_no"], "transaction_id": r["transaction_id"],
            "out_trade_no": r["out_trade_no"], "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
        }
        if status == "SUCCESS":
            obj["success_time"] = rfc3339(r["success_at"])
        obj.update({
            "create_time": rfc3339(r["created_at"]), "status": status, "funds_account": r["funds_account"] or "AVAILABLE",
            "amount": {
                "total": r["total"], "refund": r["refund"], "from": [], "payer_total": r["total"],
                "payer_refund": r["refund"], "settlement_refund": r["refund"], "settlement_total": r["total"],
                "discount_refund": 0, "currency": r["currency"], "refund_fee": 0,
            },
            "promotion_detail": [],
        })
        return obj

    async def refund(self, request: Request, merchant: Any) -> dict[str, Any]:
        data = json_body(request)
        transaction_id = _str(data, "transaction_id", required=False, max_len=32)
        out_trade_no = _str(data, "out_trade_no", required=False, max_len=32)
        if transaction_id is None and out_trade_no is None:
            raise param_error("/transaction_id", None, "transaction_id与out_trade_no必填其一")
        out_refund_no = _str(data, "out_refund_no", max_len=64, pattern=OUT_REFUND_NO_RE)
        reason = _str(data, "reason", required=False, max_len=80)
        notify_url = _url(data, "notify_url", required=False)
        funds_account = _str(data, "funds_account", required=False, max_len=32)
        if funds_account is not None and funds_account != "AVAILABLE":
            raise param_error("/funds_account", funds_account, "只支持AVAILABLE")
        amount = _object(data, "amount")
        refund = _int(amount, "refund", prefix="/amount", lo=1)
        total = _int(amount, "total", prefix="/amount", lo=1)
        currency = _currency(amount, "/amount", required=True)
        request_json = canonical(data)
        mchid = merchant["mchid"]
        now = time.time()
        delay = float((await self.settings())["refund_delay_s"])
        created = False
        async with self.state.tx() as tx:
            prior = await tx.fetchone("SELECT * FROM pay_refunds WHERE mchid = ? AND out_refund_no = ?",
                                      (mchid, out_refund_no))
            if prior is not None:
                if prior["request_json"] != request_json:
                    raise PayError(400, "INVALID_REQUEST", "退款单号重复：同一out_refund_no的请求参数与之前不一致",
                                   {"issue": "the out_refund_no was used with other parameters"})
                return self.refund_object(prior, now)
            if transaction_id is not None:
                order = await tx.fetchone("SELECT * FROM pay_orders WHERE mchid = ? AND transaction_id = ?",
                                          (mchid, transaction_id))
            else:
                order = await tx.fetchone("SELECT * FROM pay_orders WHERE mchid = ? AND out_trade_no = ?",
                                          (mchid, out_trade_no))
            if order is None:
                raise PayError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
            if order["trade_state"] != "SUCCESS":
                raise PayError(400, "INVALID_REQUEST", "订单未支付成功，不能退款",
                               {"issue": f"trade_state is {self.trade_state(order, False, now)}"})
            if total != order["total"]:
                raise PayError(400, "INVALID_REQUEST", "订单金额与原支付金额不一致",
                               {"field": "/amount/total", "value": total, "issue": f"the order's total is {order['total']}",
                                "location": "body"})
            if currency != order["currency"]:
                raise param_error("/amount/currency", currency, "与原订单币种不一致")
            done = await tx.fetchone(
                "SELECT COALESCE(SUM(refund), 0) AS n FROM pay_refunds WHERE mchid = ? AND out_trade_no = ?",
                (mchid, order["out_trade_no"]),
            )
            if int(done["n"]) + refund > order["total"]:
                raise PayError(400, "NOT_ENOUGH", "申请退款金额超过订单可退金额",
                               {"issue": f"paid {order['total']}, refunded {int(done['n'])}, asked {refund}"})
            refund_id = new_refund_id()
            success_at = now + delay
            await tx.execute(
                "INSERT INTO pay_refunds (refund_id, mchid, out_refund_no, out_trade_no, transaction_id, request_json, "
                "reason, notify_url, funds_account, refund, total, currency, created_at, success_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (refund_id, mchid, out_refund_no, order["out_trade_no"], order["transaction_id"], request_json, reason,
                 notify_url, funds_account, refund, order["total"], currency, now, success_at),
            )
            row = await tx.fetchone("SELECT * FROM pay_refunds WHERE refund_id = ?", (refund_id,))
            if notify_url:
                plaintext = {
                    "mchid": mchid, "transaction_id": order["transaction_id"], "out_trade_no": order["out_trade_no"],
                    "refund_id": refund_id, "out_refund_no": out_refund_no, "refund_status": "SUCCESS",
                    "success_time": rfc3339(success_at), "user_received_account": "支付用户零钱",
                    "amount": {"total": order["total"], "refund": refund, "payer_total": order["total"],
                               "payer_refund": refund},
                }
                await self._new_notification(
                    tx, merchant, "REFUND.SUCCESS", "退款成功", "refund", plaintext, order["out_trade_no"],
                    out_refund_no, notify_url, success_at, "pending", success_at,
                )
                created = True
        if created:
            self.wake()
        return self.refund_object(row, now)

    async def refund_query(self, request: Request, merchant: Any, out_refund_no: str) -> dict[str, Any]:
        row = await self.state.fetchone("SELECT * FROM pay_refunds WHERE mchid = ? AND out_refund_no = ?",
                                        (merchant["mchid"], out_refund_no))
        if row is None:
            raise PayError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self.refund_object(row, time.time())

    # -- bills -------------------------------------------------------------------------------------

    async def tradebill(self, request: Request, merchant: Any) -> dict[str, Any]:
        args = request.args
        bill_date = args.get("bill_date")
        if not bill_date:
            raise param_error("/bill_date", None, "必填性规则校验失败，此字段为必填项", location="querystring")
        try:
            if not BILL_DATE_RE.fullmatch(bill_date):
                raise ValueError
            day = date.fromisoformat(bill_date)
        except ValueError:
            raise param_error("/bill_date", bill_date, "格式应为YYYY-MM-DD", location="querystring") from None
        if day > datetime.now(BEIJING).date():
            raise param_error("/bill_date", bill_date, "账单日期不能晚于今天", location="querystring")
        bill_type = args.get("bill_type") or "ALL"
        if bill_type not in bill.COLUMNS:
            raise param_error("/bill_type", bill_type, "只支持ALL、SUCCESS、REFUND", location="querystring")
        tar_type = args.get("tar_type")
        if tar_type not in (None, "GZIP"):
            raise param_error("/tar_type", tar_type, "只支持GZIP", location="querystring")
        start = datetime(day.year, day.month, day.day, tzinfo=BEIJING).timestamp()
        end = start + 86400
        now = time.time()
        mchid = merchant["mchid"]
        payments, refunds = [], []
        for order in await self.state.fetchall(
            "SELECT * FROM pay_orders WHERE mchid = ? AND trade_state = 'SUCCESS' AND success_at >= ? AND success_at < ? "
            "ORDER BY success_at", (mchid, start, end),
        ):
            payments.append(self._bill_payment(order))
        for r in await self.state.fetchall(
            "SELECT r.*, o.appid, o.openid, o.bank_type, o.description, o.attach, o.success_at AS paid_at "
            "FROM pay_refunds r JOIN pay_orders o ON o.mchid = r.mchid AND o.out_trade_no = r.out_trade_no "
            "WHERE r.mchid = ? AND r.success_at >= ? AND r.success_at < ? AND r.success_at <= ? ORDER BY r.success_at",
            (mchid, start, end, now),
        ):
            payment = bill.Payment(r["appid"], mchid, r["transaction_id"], r["out_trade_no"], r["openid"],
                                   r["bank_type"] or "OTHERS", r["currency"], r["total"], r["description"], r["attach"],
                                   r["paid_at"])
            refunds.append(bill.Refund(payment, r["refund_id"], r["out_refund_no"], r["refund"], r["created_at"],
                                       r["success_at"]))
        has_rows = (payments if bill_type != "REFUND" else []) or (refunds if bill_type != "SUCCESS" else [])
        if not has_rows:
            raise PayError(400, "NO_STATEMENT_EXIST", "当日无账单")
        content = bill.render(bill_type, payments, refunds)
        stored = gzip.compress(content, mtime=0) if tar_type == "GZIP" else content
        token = secrets.token_urlsafe(24)
        await self.state.execute(
            "INSERT INTO pay_bills (token, mchid, content, gzipped, expires_at) VALUES (?, ?, ?, ?, ?)",
            (token, mchid, stored, int(tar_type == "GZIP"), now + BILL_TTL_S),
        )
        await self.state.execute("DELETE FROM pay_bills WHERE expires_at < ?", (now - 3600,))
        return {"hash_type": "SHA1", "hash_value": bill.sha1_hex(content),
                "download_url": f"{gateway_of(request)}/v3/billdownload/file?token={token}"}

    @staticmethod
    def _bill_payment(order: Any) -> bill.Payment:
        return bill.Payment(order["appid"], order["mchid"], order["transaction_id"], order["out_trade_no"],
                            order["openid"], order["bank_type"] or "OTHERS", order["currency"], order["total"],
                            order["description"], order["attach"], order["success_at"])

    async def billdownload(self, request: Request, merchant: Any) -> HTTPResponse:
        token = request.args.get("token")
        if not token:
            raise param_error("/token", None, "必填性规则校验失败，此字段为必填项", location="querystring")
        row = await self.state.fetchone("SELECT * FROM pay_bills WHERE token = ? AND mchid = ?",
                                        (token, merchant["mchid"]))
        if row is None or row["expires_at"] < time.time():
            raise PayError(400, "INVALID_REQUEST", "账单下载地址已失效（有效期30秒），请重新申请")
        return raw(bytes(row["content"]), content_type="application/octet-stream")

    # -- notifications -----------------------------------------------------------------------------

    async def _new_notification(
        self, tx: Tx, merchant: Any, event_type: str, summary: str, original_type: str, plaintext: dict[str, Any],
        out_trade_no: str, out_refund_no: str | None, notify_url: str, event_at: float, status: str,
        next_at: float | None,
    ) -> str:
        notification_id = new_event_id()
        resource = encrypt_resource(merchant["apiv3_key"], dumps(plaintext), original_type)
        body = {
            "id": notification_id, "create_time": rfc3339(event_at), "resource_type": "encrypt-resource",
            "event_type": event_type, "summary": summary,
            "resource": {"original_type": original_type, **resource},
        }
        await tx.execute(
            "INSERT INTO pay_notifications (id, mchid, event_type, summary, out_trade_no, out_refund_no, notify_url, "
            "body, resource_json, created_at, status, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (notification_id, merchant["mchid"], event_type, summary, out_trade_no, out_refund_no, notify_url,
             dumps(body), dumps(plaintext), time.time(), status, next_at),
        )
        return notification_id

    async def pay(self, prepay_id: str, result: str, notify: str, delay_s: float, bank_type: str) -> dict[str, Any]:
        """Play the user paying the order of ``prepay_id`` (the control API)."""
        now = time.time()
        notification_id = None
        async with self.state.tx() as tx:
            order = await tx.fetchone("SELECT * FROM pay_orders WHERE prepay_id = ?", (prepay_id,))
            if order is None:
                raise ControlProblem(404, "unknown prepay_id")
            state = self.trade_state(order, False, now)
            if state == "SUCCESS":
                raise ControlProblem(400, "the order is already paid", "prepay_id")
            if state == "CLOSED":
                raise ControlProblem(400, "the order is closed (closed by the merchant or past its time_expire)",
                                     "prepay_id")
            merchant = await tx.fetchone("SELECT * FROM pay_merchants WHERE mchid = ?", (order["mchid"],))
            transaction_id = order["transaction_id"] or new_transaction_id()
            if result == "SUCCESS":
                await tx.execute(
                    "UPDATE pay_orders SET trade_state = 'SUCCESS', transaction_id = ?, bank_type = ?, success_time = ?, "
                    "success_at = ? WHERE prepay_id = ?",
                    (transaction_id, bank_type, rfc3339(now), now, prepay_id),
                )
            else:
                await tx.execute(
                    "UPDATE pay_orders SET trade_state = 'PAYERROR', transaction_id = ?, bank_type = ? WHERE prepay_id = ?",
                    (transaction_id, bank_type, prepay_id),
                )
            order = await tx.fetchone("SELECT * FROM pay_orders WHERE prepay_id = ?", (prepay_id,))
            if result == "SUCCESS":
                plaintext = self.transaction(order, False, now, "SUCCESS")
                status, next_at = ("dropped", None) if notify == "drop" else (
                    "pending", now + (delay_s if notify == "delay" else 0))
                notification_id = await self._new_notification(
                    tx, merchant, "TRANSACTION.SUCCESS", "支付成功", "transaction", plaintext, order["out_trade_no"],
                    None, order["notify_url"], now, status, next_at,
                )
        if notification_id is not None:
            self.wake()
        return {
            "prepay_id": prepay_id, "mchid": order["mchid"], "out_trade_no": order["out_trade_no"],
            "trade_state": order["trade_state"], "transaction_id": order["transaction_id"],
            "notification_id": notification_id,
        }

    async def orders(self, mchid: str | None, out_trade_no: str | None) -> list[dict[str, Any]]:
        where, params = [], []
        for column, value in (("mchid", mchid), ("out_trade_no", out_trade_no)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self.state.fetchall(
            "SELECT o.*, EXISTS (SELECT 1 FROM pay_refunds r WHERE r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no) "  # nosec B608
            "AS refunded FROM pay_orders o" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at",
            params,
        )
        now = time.time()
        return [
            {"mchid": r["mchid"], "out_trade_no": r["out_trade_no"], "prepay_id": r["prepay_id"],
             "transaction_id": r["transaction_id"], "trade_state": self.trade_state(r, bool(r["refunded"]), now),
             "total": r["total"], "notify_url": r["notify_url"], "created_at": r["created_at"]}
            for r in rows
        ]

    async def notifications(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        where, params = [], []
        for column in ("mchid", "out_trade_no", "out_refund_no", "event_type"):
            if filters.get(column):
                where.append(f"{column} = ?")
                params.append(filters[column])
        rows = await self.state.fetchall(
            "SELECT rowid AS seq, * FROM pay_notifications" + (" WHERE " + " AND ".join(where) if where else "")  # nosec B608
            + " ORDER BY rowid",
            params,
        )
        out = []
        for r in rows:
            attempts = await self.state.fetchall(
                "SELECT at, kind, tamper, http_status, error, reply FROM pay_attempts WHERE notification_id = ? ORDER BY id",
                (r["id"],),
            )
            out.append({
                "id": r["id"], "mchid": r["mchid"], "event_type": r["event_type"], "summary": r["summary"],
                "out_trade_no": r["out_trade_no"], "out_refund_no": r["out_refund_no"], "notify_url": r["notify_url"],
                "status": r["status"], "next_attempt_at": r["next_at"] if r["status"] == "pending" else None,
                "created_at": r["created_at"], "delivered_at": r["delivered_at"],
                "resource": json.loads(r["resource_json"]), "attempts": [dict(a) for a in attempts],
            })
        return out

    async def redeliver(self, notification_id: str, count: int, parallel: bool, tamper: str | None) -> dict[str, Any]:
        row = await self.state.fetchone("SELECT * FROM pay_notifications WHERE id = ?", (notification_id,))
        if row is None:
            raise ControlProblem(404, "unknown notification id")
        if parallel:
            attempts = list(await asyncio.gather(*(self._send(row, "redeliver", tamper) for _ in range(count))))
        else:
            attempts = [await self._send(row, "redeliver", tamper) for _ in range(count)]
        async with self.state.tx() as tx:
            for a in attempts:
                await self._record_attempt(tx, notification_id, a)
        return {"id": notification_id, "attempts": attempts}

    async def notify_again(self, prepay_id: str, count: int, parallel: bool, tamper: str | None) -> dict[str, Any]:
        """Send the payment notification of the order of ``prepay_id`` again (``POST pay/{prepay_id}/notify``):
        what a test that knows the order, not the notification's id, asks for."""
        order = await self.state.fetchone("SELECT mchid, out_trade_no FROM pay_orders WHERE prepay_id = ?", (prepay_id,))
        if order is None:
            raise ControlProblem(404, "unknown prepay_id")
        row = await self.state.fetchone(
            "SELECT id FROM pay_notifications WHERE mchid = ? AND out_trade_no = ? AND event_type = 'TRANSACTION.SUCCESS' "
            "ORDER BY rowid DESC LIMIT 1", (order["mchid"], order["out_trade_no"]))
        if row is None:
            raise ControlProblem(400, "the order is not paid: there is no notification to send (POST pay/{prepay_id} "
                                 "pays it)", "prepay_id")
        return await self.redeliver(row["id"], count, parallel, tamper)

    # -- delivery ----------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                             limits=httpx.Limits(max_connections=200, max_keepalive_connections=20))
        return self._client

    async def _send(self, row: Any, kind: str, tamper: str | None) -> dict[str, Any]:
        """One delivery of the notification ``row`` (signed now; tampered with if asked)."""
        platform = await self.platform()
        timeout = float((await self.settings())["notify_timeout_s"])
        body = row["body"].encode("utf-8")
        ts = str(int(time.time()) - (600 if tamper == "timestamp" else 0))
        headers = platform.headers(body, timestamp=ts)
        if tamper == "signature":  # a well-formed signature, of other bytes
            headers["Wechatpay-Signature"] = platform.sign(sign_message(ts, headers["Wechatpay-Nonce"], body + b" "))
        elif tamper == "serial":
            headers["Wechatpay-Serial"] = new_public_key_id()
        elif tamper == "byte":
            body = _flip_one_byte(body)
        headers.update({"Content-Type": "application/json", "User-Agent": "Mozilla/4.0", "Accept": "*/*"})
        attempt: dict[str, Any] = {"at": time.time(), "kind": kind, "tamper": tamper, "http_status": None,
                                   "error": None, "reply": None}
        try:
            response = await asyncio.wait_for(
                self._http().post(row["notify_url"], content=body, headers=headers, timeout=httpx.Timeout(timeout)),
                timeout,
            )
            attempt["http_status"] = response.status_code
            attempt["reply"] = response.text[:500]
        except (TimeoutError, httpx.TimeoutException):
            attempt["error"] = f"timeout: no answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            attempt["error"] = f"{type(exc).__name__}: {exc}"[:500]
        return attempt

    @staticmethod
    async def _record_attempt(tx: Tx, notification_id: str, a: dict[str, Any]) -> None:
        await tx.execute(
            "INSERT INTO pay_attempts (notification_id, kind, tamper, at, http_status, error, reply) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (notification_id, a["kind"], a["tamper"], a["at"], a["http_status"], a["error"], a["reply"]),
        )

    async def _claim(self, timeout: float) -> Any:
        now = time.time()
        return await self.state.fetchone(
            "UPDATE pay_notifications SET lease_until = ?, attempts = attempts + 1 WHERE id = ("
            "SELECT id FROM pay_notifications WHERE status = 'pending' AND next_at <= ? "
            "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_at LIMIT 1) RETURNING *",
            (now + timeout + LEASE_MARGIN_S, now, now),
        )

    async def _deliver(self, row: Any) -> None:
        attempt = await self._send(row, "scheduled", None)
        schedule = (await self.settings())["retry_schedule_s"]
        now = time.time()
        done = attempt["http_status"] in SUCCESS_STATUSES
        n = row["attempts"]  # this delivery's number (counted when it was claimed)
        async with self.state.tx() as tx:
            await self._record_attempt(tx, row["id"], attempt)
            if done:
                await tx.execute("UPDATE pay_notifications SET status = 'delivered', next_at = NULL, lease_until = NULL, "
                                 "delivered_at = ? WHERE id = ?", (now, row["id"]))
            elif n <= len(schedule):
                await tx.execute("UPDATE pay_notifications SET next_at = ?, lease_until = NULL WHERE id = ?",
                                 (now + float(schedule[n - 1]), row["id"]))
            else:
                await tx.execute("UPDATE pay_notifications SET status = 'failed', next_at = NULL, lease_until = NULL "
                                 "WHERE id = ?", (row["id"],))

    def wake(self) -> None:
        """A notification may be due: make sure this process's dispatcher runs and looks now."""
        self.start()
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        """Start this process's dispatcher (idempotent; needs a running event loop)."""
        if self._task is not None and self._task_pid == os.getpid() and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wake = asyncio.Event()
        self._inflight = set()
        self._client = None
        self._task = loop.create_task(self._loop(), name="sandbox-wechatpay-dispatcher")
        self._task_pid = os.getpid()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or self._task_pid != os.getpid():
            return
        tasks = [task, *self._inflight]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight = set()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            try:
                due = await self.state.fetchone(
                    "SELECT MIN(MAX(next_at, COALESCE(lease_until, 0))) AS t FROM pay_notifications WHERE status = 'pending'"
                )
                t = None if due is None else due["t"]
                if t is not None and t <= time.time():
                    timeout = float((await self.settings())["notify_timeout_s"])
                    row = await self._claim(timeout)
                    if row is not None:
                        task = asyncio.create_task(self._deliver_logged(row))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
                        continue
                    wait = 0.01  # another process claimed it first
                else:
                    # nothing pending: a notification made by this process wakes the loop at once; one
                    # made by another process is that process's to send, unless it stops (then within 1 s)
                    wait = POLL_IDLE_S if t is None else max(0.0, min(POLL_S, t - time.time()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sandbox WeChat Pay dispatcher failed")
                wait = 1.0
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def _deliver_logged(self, row: Any) -> None:
        try:
            await self._deliver(row)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sandbox WeChat Pay delivery of %s failed", row["id"])

    # -- merchants and keys (control API) -----------------------------------------------------------

    async def register_merchant(self, data: dict[str, Any]) -> dict[str, Any]:
        fields = ("mchid", "appid", "apiv3_key", "merchant_serial", "merchant_public_key_pem")
        unknown = set(data) - set(fields)
        if unknown:
            raise ControlProblem(400, f"unknown field; the fields are {', '.join(fields)}", min(unknown))
        mchid = data.get("mchid")
        if not isinstance(mchid, str) or not MCHID_RE.fullmatch(mchid):
            raise ControlProblem(400, "mchid must be 1-32 digits", "mchid")
        try:
            check_pay_merchant(data.get("appid"), data.get("apiv3_key"), data.get("merchant_serial"),
                               data.get("merchant_public_key_pem"))
        except ValueError as exc:
            field, message = exc.args
            raise ControlProblem(400, message, field) from None
        await self.state.execute(
            "INSERT INTO pay_merchants (mchid, appid, apiv3_key, merchant_serial, merchant_public_key_pem, source, "
            "updated_at) VALUES (?, ?, ?, ?, ?, 'control', ?) ON CONFLICT (mchid) DO UPDATE SET appid = excluded.appid, "
            "apiv3_key = excluded.apiv3_key, merchant_serial = excluded.merchant_serial, "
            "merchant_public_key_pem = excluded.merchant_public_key_pem, source = 'control', "
            "updated_at = excluded.updated_at",
            (mchid, data["appid"], data["apiv3_key"], data["merchant_serial"], data["merchant_public_key_pem"],
             time.time()),
        )
        return {"mchid": mchid, "appid": data["appid"], "merchant_serial": data["merchant_serial"], "source": "control"}

    async def merchants(self) -> list[dict[str, Any]]:
        rows = await self.state.fetchall("SELECT mchid, appid, merchant_serial, source FROM pay_merchants ORDER BY mchid")
        return [dict(r) for r in rows]

    async def platform_key(self) -> dict[str, str]:
        platform = await self.platform()
        return {"public_key_id": platform.key_id, "public_key_pem": platform.public_key_pem}


def _flip_one_byte(body: bytes) -> bytes:
    """The body with one character of ``resource.ciphertext`` changed (still valid JSON and base64)."""
    marker = b'"ciphertext":"'
    i = body.find(marker)
    i = i + len(marker) + 4 if i >= 0 else len(body) // 2
    swapped = b"B" if body[i:i + 1] != b"B" else b"C"
    return body[:i] + swapped + body[i + 1:]


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


# -- the blueprint ---------------------------------------------------------------------------------


def create_wechatpay_blueprint(pay: WeChatPay) -> Blueprint:
    bp = Blueprint("sandbox_wechatpay", url_prefix="/wechatpay")
    state = pay.state

    def api(uri: str, key: str, method: str, impl: Callable[..., Awaitable[dict[str, Any] | HTTPResponse]]) -> None:
        async def handler(request: Request, **params: str) -> HTTPResponse:
            async def work() -> HTTPResponse:
                try:
                    if request.method.upper() != method:
                        raise PayError(404, "NOT_FOUND", f"{request.method} {uri} 不存在（此接口只接受{method}）")
                    merchant = await pay.authenticate(request, signed_url(request))
                    result = await impl(request, merchant, **params)
                except PayError as exc:
                    return exc.response()
                except Exception:
                    log.exception("sandbox WeChat Pay %s failed", uri)
                    return PayError(500, "SYSTEM_ERROR", "系统错误").response()
                return result if isinstance(result, HTTPResponse) else json_response(result, dumps=dumps)

            return await pay.signed(await serve(state, request, key, work))

        state.api_paths.add(key)
        bp.add_route(handler, uri, methods=list(ALL_METHODS), name="pay_" + re.sub(r"[^a-z0-9]+", "_", key), unquote=True)

    async def certificates(request: Request, merchant: Any) -> dict[str, Any]:
        return {"data": []}

    api("/v3/pay/transactions/jsapi", FAULT_PATHS["jsapi"], "POST", pay.jsapi)
    api("/v3/pay/transactions/out-trade-no/<out_trade_no>", FAULT_PATHS["query_out_trade_no"], "GET",
        pay.query_by_out_trade_no)
    api("/v3/pay/transactions/id/<transaction_id>", FAULT_PATHS["query_id"], "GET", pay.query_by_id)
    api("/v3/pay/transactions/out-trade-no/<out_trade_no>/close", FAULT_PATHS["close"], "POST", pay.close)
    api("/v3/refund/domestic/refunds", FAULT_PATHS["refund"], "POST", pay.refund)
    api("/v3/refund/domestic/refunds/<out_refund_no>", FAULT_PATHS["refund_query"], "GET", pay.refund_query)
    api("/v3/bill/tradebill", FAULT_PATHS["tradebill"], "GET", pay.tradebill)
    api("/v3/billdownload/file", FAULT_PATHS["billdownload"], "GET", pay.billdownload)
    api("/v3/certificates", FAULT_PATHS["certificates"], "GET", certificates)

    async def unknown_api(request: Request, rest: str = "") -> HTTPResponse:
        await state.record_call(f"{KEY_PREFIX}/{rest.strip('/')}", None, 404)
        return await pay.signed(PayError(404, "NOT_FOUND", f"{request.method} /{rest} 不是微信支付的接口").response())

    bp.add_route(unknown_api, "/<rest:path>", methods=list(ALL_METHODS), name="pay_unknown")
    bp.add_route(unknown_api, "/", methods=list(ALL_METHODS), name="pay_unknown_root")

    async def start_dispatcher(app) -> None:
        await state.open()
        pay.start()

    async def stop_dispatcher(app) -> None:
        await pay.stop()

    bp.after_server_start(start_dispatcher)
    bp.before_server_stop(stop_dispatcher)
    return bp
