"""The merchant API of the emulated WeChat Pay (:mod:`sandbox.wechatpay`), mounted at
``/sandbox/wechatpay``: orders, query, close and refunds, the request signatures, and the blueprint.

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
  request like any other, valid 30 s) → the bill (:mod:`sandbox.wechatpay.bill`). A day without
  records → 400 NO_STATEMENT_EXIST.
- ``GET /v3/certificates`` → ``{"data": []}`` (public-key mode only).
- Any other path or method → 404 ``{"code":"NOT_FOUND"}``.

The notifications a payment or a refund makes: :mod:`sandbox.wechatpay.notify`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from sandbox.wechatpay import bill
from sandbox.wechatpay.core import (
    FAULT_PATHS,
    KEY_PREFIX,
    PayError,
    WeChatPay,
    canonical,
    new_prepay_id,
    new_refund_id,
    param_error,
    rfc3339,
    serve,
    sign_error,
    signed_url,
)
from sandbox.wechatpay.notify import Dispatcher, new_notification
from sandbox.wxcommon import dumps

log = logging.getLogger("sandbox.wechatpay")

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW_S = 300
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
OUT_TRADE_NO_RE = re.compile(r"^[A-Za-z0-9_\-|*]{6,32}$")
OUT_REFUND_NO_RE = re.compile(r"^[A-Za-z0-9_\-|*@]{1,64}$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}:\d{2}|Z)$")
AUTH_PARAM_RE = re.compile(r'\s*([A-Za-z_]+)\s*=\s*"([^"]*)"\s*(?:,|$)')
MAX_TOTAL = 10**10


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


def _given(data: dict[str, Any], name: str, prefix: str, required: bool) -> tuple[Any, str]:
    """The value of ``name`` (None when absent, which a required field may not be) and its field path."""
    field = f"{prefix}/{name}"
    if data.get(name) is None and required:
        raise param_error(field, None, "必填性规则校验失败，此字段为必填项")
    return data.get(name), field


def _str(data: dict[str, Any], name: str, *, prefix: str = "", required: bool = True, max_len: int = 256,
         pattern: re.Pattern[str] | None = None, min_len: int = 1) -> str | None:
    value, field = _given(data, name, prefix, required)
    if value is None:
        return None
    if not isinstance(value, str):
        raise param_error(field, value, "类型错误，应为字符串")
    if not min_len <= len(value) <= max_len:
        raise param_error(field, value, f"长度应为{min_len}-{max_len}个字符")
    if pattern is not None and not pattern.fullmatch(value):
        raise param_error(field, value, "格式错误")
    return value


def _int(data: dict[str, Any], name: str, *, prefix: str, lo: int, hi: int = MAX_TOTAL, required: bool = True) -> int | None:
    value, field = _given(data, name, prefix, required)
    if value is None:
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


# -- the merchant API ----------------------------------------------------------------------------


class MerchantAPI:
    """The ``/v3/...`` operations of the merchant API (orders, query, close, refunds): each takes the
    request and the authenticated merchant's row and answers JSON or raises :class:`PayError`."""

    def __init__(self, pay: WeChatPay, dispatcher: Dispatcher):
        self.pay = pay
        self.state = pay.state
        self.dispatcher = dispatcher

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
            self.pay.merchant_key(merchant["merchant_public_key_pem"]).verify(
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
                state = self.pay.trade_state(order, False, now)
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
        refunded = await self.pay.has_refunds(self.state, order["mchid"], order["out_trade_no"])
        return self.pay.transaction(order, refunded, time.time())

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
        delay = float((await self.pay.settings())["refund_delay_s"])
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
                               {"issue": f"trade_state is {self.pay.trade_state(order, False, now)}"})
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
                await new_notification(
                    tx, merchant, "REFUND.SUCCESS", "退款成功", "refund", plaintext, order["out_trade_no"],
                    out_refund_no, notify_url, success_at, "pending", success_at,
                )
                created = True
        if created:
            self.dispatcher.wake()
        return self.refund_object(row, now)

    async def refund_query(self, request: Request, merchant: Any, out_refund_no: str) -> dict[str, Any]:
        row = await self.state.fetchone("SELECT * FROM pay_refunds WHERE mchid = ? AND out_refund_no = ?",
                                        (merchant["mchid"], out_refund_no))
        if row is None:
            raise PayError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self.refund_object(row, time.time())


# -- the blueprint ---------------------------------------------------------------------------------


def create_wechatpay_blueprint(pay: WeChatPay, dispatcher: Dispatcher) -> Blueprint:
    bp = Blueprint("sandbox_wechatpay", url_prefix="/wechatpay")
    state = pay.state
    merchant_api = MerchantAPI(pay, dispatcher)

    def api(uri: str, key: str, method: str, impl: Callable[..., Awaitable[dict[str, Any] | HTTPResponse]]) -> None:
        async def handler(request: Request, **params: str) -> HTTPResponse:
            async def work() -> HTTPResponse:
                try:
                    if request.method.upper() != method:
                        raise PayError(404, "NOT_FOUND", f"{request.method} {uri} 不存在（此接口只接受{method}）")
                    merchant = await merchant_api.authenticate(request, signed_url(request))
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

    api("/v3/pay/transactions/jsapi", FAULT_PATHS["jsapi"], "POST", merchant_api.jsapi)
    api("/v3/pay/transactions/out-trade-no/<out_trade_no>", FAULT_PATHS["query_out_trade_no"], "GET",
        merchant_api.query_by_out_trade_no)
    api("/v3/pay/transactions/id/<transaction_id>", FAULT_PATHS["query_id"], "GET", merchant_api.query_by_id)
    api("/v3/pay/transactions/out-trade-no/<out_trade_no>/close", FAULT_PATHS["close"], "POST", merchant_api.close)
    api("/v3/refund/domestic/refunds", FAULT_PATHS["refund"], "POST", merchant_api.refund)
    api("/v3/refund/domestic/refunds/<out_refund_no>", FAULT_PATHS["refund_query"], "GET", merchant_api.refund_query)
    api("/v3/bill/tradebill", FAULT_PATHS["tradebill"], "GET", partial(bill.tradebill, pay))
    api("/v3/billdownload/file", FAULT_PATHS["billdownload"], "GET", partial(bill.billdownload, pay))
    api("/v3/certificates", FAULT_PATHS["certificates"], "GET", certificates)

    async def unknown_api(request: Request, rest: str = "") -> HTTPResponse:
        await state.record_call(f"{KEY_PREFIX}/{rest.strip('/')}", None, 404)
        return await pay.signed(PayError(404, "NOT_FOUND", f"{request.method} /{rest} 不是微信支付的接口").response())

    bp.add_route(unknown_api, "/<rest:path>", methods=list(ALL_METHODS), name="pay_unknown")
    bp.add_route(unknown_api, "/", methods=list(ALL_METHODS), name="pay_unknown_root")

    async def start_dispatcher(app) -> None:
        await state.open()
        dispatcher.start()

    async def stop_dispatcher(app) -> None:
        await dispatcher.stop()

    bp.after_server_start(start_dispatcher)
    bp.before_server_stop(stop_dispatcher)
    return bp
