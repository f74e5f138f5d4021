"""The WeChat Pay v3 emulator (/sandbox/wechatpay) and the message-push client, over real HTTP.

Requests are signed here with ``cryptography`` directly (as docs/wechat-wire.md section 2 says), every
answer's signature is checked against the platform public key, and the notifications and pushes are
received by a small HTTP server started by this module. ``wechatpayv3`` (the library the backend's
adapter uses) and ``wechatpy`` are imported here only, to cross-check: the notifications must pass
``wechatpayv3``'s own ``callback()``, the pushes ``wechatpy``'s ``WeChatCrypto``."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jsonschema import Draft202012Validator

from sandbox import SandboxConfig
from sandbox.config import (
    WECHAT_PAY_RETRY_SCHEDULE_S,
    PayMerchant,
    parse_retry_schedule,
)
from tests.sandbox.support import APPID, start_sandbox, stop_sandbox

BEIJING = timezone(timedelta(hours=8))
DOC = json.loads((Path(__file__).resolve().parents[2] / "sandbox" / "control_openapi.json").read_text(encoding="utf-8"))
MCHID = "1900000109"
MCHID_B = "1900000222"
APIV3_KEY = "sandbox-apiv3-key-0123456789abcd"
APIV3_KEY_B = "another-apiv3-key-0123456789abcd"
SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
SERIAL_B = "7A7232F1B8E15157F09EFDC096DE15EBE81A4705"
TOKEN = "sandboxToken123"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


# -- keys, signing ---------------------------------------------------------------------------------


@dataclass
class Merchant:
    mchid: str
    appid: str
    apiv3_key: str
    serial: str
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @property
    def private_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()

    @property
    def public_pem(self) -> str:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()


MERCHANT = Merchant(MCHID, APPID, APIV3_KEY, SERIAL)


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def authorization(m: Merchant, method: str, url: str, body: bytes = b"", *, ts: int | None = None,
                  nonce: str | None = None, key: rsa.RSAPrivateKey | None = None, serial: str | None = None,
                  mchid: str | None = None, reverse: bool = False) -> str:
    ts_s = str(int(time.time()) if ts is None else ts)
    nonce = nonce or secrets.token_hex(16).upper()
    message = f"{method}\n{url}\n{ts_s}\n{nonce}\n".encode() + body + b"\n"
    fields = [("mchid", mchid or m.mchid), ("nonce_str", nonce), ("timestamp", ts_s),
              ("serial_no", serial or m.serial), ("signature", rsa_sign(key or m.key, message))]
    if reverse:
        fields.reverse()
    return "WECHATPAY2-SHA256-RSA2048 " + ",".join(f'{k}="{v}"' for k, v in fields)


class PayClient:
    """Signs requests to the emulator like a merchant; the signed URL is the part from /v3/."""

    def __init__(self, http: httpx.Client, gateway: str, merchant: Merchant):
        self.http, self.gateway, self.m = http, gateway, merchant

    def call(self, method: str, url: str, body: Any = None, *, raw: bytes | None = None, **auth: Any) -> httpx.Response:
        content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        headers = {"Authorization": authorization(self.m, method, url, content, **auth),
                   "Content-Type": "application/json", "Accept": "application/json"}
        return self.http.request(method, self.gateway + url, content=content, headers=headers)

    def jsapi(self, out_trade_no: str, total: int = 100, notify_url: str = "https://merchant.example/notify",
              **extra: Any) -> httpx.Response:
        body = {"appid": self.m.appid, "mchid": self.m.mchid, "description": "沙箱测试商品",
                "out_trade_no": out_trade_no, "notify_url": notify_url, "amount": {"total": total, "currency": "CNY"},
                "payer": {"openid": "oSandboxPayer0001"}, **extra}
        return self.call("POST", "/v3/pay/transactions/jsapi", body)

    def query(self, out_trade_no: str) -> httpx.Response:
        return self.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={self.m.mchid}")

    def refund(self, out_refund_no: str, refund: int, total: int = 100, **by: Any) -> httpx.Response:
        return self.call("POST", "/v3/refund/domestic/refunds", {
            **by, "out_refund_no": out_refund_no, "amount": {"refund": refund, "total": total, "currency": "CNY"}})


def verify_signed(response: httpx.Response, platform: dict[str, str]) -> None:
    """The answer carries WeChat Pay's headers and its signature verifies with the platform key."""
    h = response.headers
    assert h["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048", dict(h)
    assert h["Wechatpay-Serial"] == platform["public_key_id"]
    assert h["Request-ID"] and h["Wechatpay-Nonce"]
    assert abs(int(h["Wechatpay-Timestamp"]) - time.time()) < 60
    message = f"{h['Wechatpay-Timestamp']}\n{h['Wechatpay-Nonce']}\n".encode() + response.content + b"\n"
    public = serialization.load_pem_public_key(platform["public_key_pem"].encode())
    public.verify(base64.b64decode(h["Wechatpay-Signature"]), message, padding.PKCS1v15(), hashes.SHA256())


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)


# -- a receiver for notifications and pushes -------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A threaded HTTP server recording every request. ``plan[path]`` is a list of
    ``(status, delay_s, body)`` answers consumed in order (then 200 with an empty body); a GET
    answers its ``echostr``, or ``echo_wrong`` if set."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plan: dict[str, list[tuple[int, float, bytes]]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _record(self) -> Received:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                rec = Received(self.command, split.path, {k: v[0] for k, v in parse_qs(split.query).items()},
                               {k: v for k, v in self.headers.items()}, body, time.time())
                with receiver.lock:
                    receiver.requests.append(rec)
                    planned = receiver.plan.get(split.path)
                    answer = planned.pop(0) if planned else (200, 0.0, b"")
                return rec, answer

            def _answer(self, status: int, delay: float, body: bytes) -> None:
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self) -> None:
                _, (status, delay, body) = self._record()
                self._answer(status, delay, body)

            def do_GET(self) -> None:
                rec, (status, delay, body) = self._record()
                self._answer(status, delay, body or rec.query.get("echostr", "").encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """This module's sandbox: merchant A from a SANDBOX_PAY_MERCHANTS file, refunds PROCESSING for 0.3 s."""
    tmp = tmp_path_factory.mktemp("wechatpay")
    (tmp / "merchant_a.pem").write_text(MERCHANT.public_pem, encoding="ascii")
    merchants = tmp / "merchants.json"
    merchants.write_text(json.dumps({MCHID: {"appid": APPID, "apiv3_key": APIV3_KEY, "merchant_serial": SERIAL,
                                             "merchant_public_key_path": "merchant_a.pem"}}), encoding="utf-8")
    env = {"SANDBOX_PAY_MERCHANTS": str(merchants), "SANDBOX_PAY_REFUND_DELAY_S": "0.3"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        server = start_sandbox(tmp / "state" / "sandbox.sqlite3", tmp / "sandbox.log")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield server
    stop_sandbox(server.proc)
    assert server.proc.returncode == 0, server.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def gateway(sandbox) -> str:
    return f"{sandbox.base}/sandbox/wechatpay"


@pytest.fixture
def platform(sb) -> dict[str, str]:
    r = sb.control("GET", "pay/platform-key")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def client(http, gateway) -> PayClient:
    return PayClient(http, gateway, MERCHANT)


@pytest.fixture
def wxpay(gateway, platform, receiver):
    """wechatpayv3's sync client in public-key mode, pointed at the emulator."""
    from wechatpayv3 import WeChatPay, WeChatPayType

    pay = WeChatPay(wechatpay_type=WeChatPayType.MINIPROG, mchid=MCHID, private_key=MERCHANT.private_pem,
                    cert_serial_no=SERIAL, appid=APPID, apiv3_key=APIV3_KEY, notify_url=receiver.url("/notify"),
                    public_key=platform["public_key_pem"], public_key_id=platform["public_key_id"], timeout=(5, 10))
    pay._core._gate_way = gateway
    return pay


@pytest.fixture
def fresh_settings(sb):
    yield
    r = sb.control("POST", "pay/settings", json={"retry_schedule_s": [0.2, 0.2, 0.5, 1, 2, 5], "refund_delay_s": 0.3,
                                                  "notify_timeout_s": 5})
    assert r.status_code == 200


def new_no(prefix: str = "T") -> str:
    return f"{prefix}{secrets.token_hex(8)}"


def paid_order(client: PayClient, sb, notify_url: str, total: int = 100, **pay: Any) -> tuple[str, dict]:
    no = new_no()
    r = client.jsapi(no, total=total, notify_url=notify_url)
    assert r.status_code == 200, r.text
    answer = sb.control("POST", f"pay/{r.json()['prepay_id']}", json={"result": "SUCCESS", **pay})
    assert answer.status_code == 200, answer.text
    return no, answer.json()


def notifications(sb, **filters: str) -> list[dict]:
    r = sb.control("GET", "pay/notifications", params=filters)
    assert r.status_code == 200, r.text
    Draft202012Validator({**DOC["components"]["schemas"]["PayNotifications"], "components": DOC["components"]}).validate(r.json())
    return r.json()["notifications"]


# -- configuration ---------------------------------------------------------------------------------


def test_config_from_env(tmp_path):
    m = Merchant("1234567890", "wxsandbox0000dev1", APIV3_KEY, SERIAL, MERCHANT.key)
    path = tmp_path / "m.json"
    path.write_text(json.dumps({m.mchid: {"appid": m.appid, "apiv3_key": m.apiv3_key, "merchant_serial": m.serial,
                                          "merchant_public_key_pem": m.public_pem}}), encoding="utf-8")
    cfg = SandboxConfig.from_env({"SANDBOX_PAY_MERCHANTS": str(path), "SANDBOX_PAY_RETRY_SCHEDULE_S": "0.1, 0.5,2",
                                  "SANDBOX_PAY_REFUND_DELAY_S": "0", "SANDBOX_PAY_NOTIFY_TIMEOUT_S": "2.5"})
    assert cfg.pay_merchants == {m.mchid: PayMerchant(m.appid, m.apiv3_key, m.serial, m.public_pem)}
    assert cfg.pay_retry_schedule_s == [0.1, 0.5, 2.0]
    assert (cfg.pay_refund_delay_s, cfg.pay_notify_timeout_s) == (0.0, 2.5)
    assert SandboxConfig().pay_retry_schedule_s == [0.2, 0.2, 0.5, 1, 2, 5] and SandboxConfig().pay_merchants == {}
    assert parse_retry_schedule("wechat") == list(WECHAT_PAY_RETRY_SCHEDULE_S)
    assert sum(WECHAT_PAY_RETRY_SCHEDULE_S) == 24 * 3600 + 4 * 60  # "about 24h4m in total"
    assert parse_retry_schedule("wechat/600")[:4] == [0.025, 0.025, 0.05, 0.3]
    for bad in ({"SANDBOX_PAY_RETRY_SCHEDULE_S": "-1"}, {"SANDBOX_PAY_RETRY_SCHEDULE_S": "wechat/0"},
                {"SANDBOX_PAY_NOTIFY_TIMEOUT_S": "0"}):
        with pytest.raises(ValueError):
            SandboxConfig.from_env(bad)
    path.write_text(json.dumps({m.mchid: {"appid": m.appid, "apiv3_key": "short", "merchant_serial": m.serial,
                                          "merchant_public_key_pem": m.public_pem}}), encoding="utf-8")
    with pytest.raises(ValueError, match="apiv3_key"):
        SandboxConfig.from_env({"SANDBOX_PAY_MERCHANTS": str(path)})
    with pytest.raises(ValueError):
        PayMerchant(m.appid, APIV3_KEY, m.serial, "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


# -- keys and merchants ------------------------------------------------------------------------------


def test_platform_key_and_merchants(sb, platform):
    assert platform["public_key_id"].startswith("PUB_KEY_ID_") and len(platform["public_key_id"]) == 11 + 28
    assert platform["public_key_id"][11:].isdigit()
    key = serialization.load_pem_public_key(platform["public_key_pem"].encode())
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert sb.control("GET", "pay/platform-key").json() == platform  # stored, not regenerated
    merchants = sb.control("GET", "pay/merchants").json()["merchants"]
    assert {"mchid": MCHID, "appid": APPID, "merchant_serial": SERIAL, "source": "config"} in merchants
    # registration is strict and checks the key
    for body, fld in (({"mchid": "12a"}, "mchid"),
                      ({"mchid": MCHID_B, "appid": APPID, "apiv3_key": "x" * 31}, "apiv3_key"),
                      ({"mchid": MCHID_B, "appid": APPID, "apiv3_key": APIV3_KEY_B, "merchant_serial": SERIAL_B,
                        "merchant_public_key_pem": "not a key"}, "merchant_public_key_pem"),
                      ({"mchid": MCHID_B, "extra": 1}, "extra")):
        r = sb.control("POST", "pay/merchants", json=body)
        assert r.status_code == 400 and r.json()["field"] == fld, r.text


def test_platform_key_is_shared_by_processes_on_one_state_file(sandbox, platform, http, tmp_path):
    """A second process on the same state file signs with the same key (several workers)."""
    other = start_sandbox(sandbox.state_path, tmp_path / "second.log")
    try:
        assert http.get(f"{other.control}/pay/platform-key").json() == platform
        r = PayClient(http, f"{other.base}/sandbox/wechatpay", MERCHANT).jsapi(new_no())
        assert r.status_code == 200
        verify_signed(r, platform)
    finally:
        stop_sandbox(other.proc)
    assert other.proc.returncode == 0


def test_two_processes_deliver_each_notification_once_and_hand_over(http, receiver, tmp_path):
    """Deliveries are claimed through the state file: with two processes running, each notification is
    delivered once; one due after its process stopped is delivered by the other."""
    state = tmp_path / "shared.sqlite3"
    a = start_sandbox(state, tmp_path / "a.log")
    b = None
    try:
        b = start_sandbox(state, tmp_path / "b.log")
        r = http.post(f"{a.control}/pay/merchants", json={"mchid": MCHID, "appid": APPID, "apiv3_key": APIV3_KEY,
                                                          "merchant_serial": SERIAL,
                                                          "merchant_public_key_pem": MERCHANT.public_pem})
        assert r.status_code == 201
        clients = [PayClient(http, f"{srv.base}/sandbox/wechatpay", MERCHANT) for srv in (a, b)]
        nos = []
        for i in range(6):
            no = new_no("MP")
            prepay_id = clients[i % 2].jsapi(no, notify_url=receiver.url("/notify/shared")).json()["prepay_id"]
            srv = (a, b)[(i + 1) % 2]
            assert http.post(f"{srv.control}/pay/{prepay_id}", json={"result": "SUCCESS"}).status_code == 200
            nos.append(no)
        wait_for(lambda: len(receiver.at("/notify/shared")) >= 6)
        time.sleep(0.5)
        got = receiver.at("/notify/shared")
        assert len(got) == 6 and len({json.loads(g.body)["id"] for g in got}) == 6
        # paid through A, notification due in 1.5 s; A stops; B delivers it
        no = new_no("HO")
        prepay_id = clients[0].jsapi(no, notify_url=receiver.url("/notify/handover")).json()["prepay_id"]
        assert http.post(f"{a.control}/pay/{prepay_id}", json={"result": "SUCCESS", "delay_s": 1.5}).status_code == 200
        stop_sandbox(a.proc)
        assert a.proc.returncode == 0
        wait_for(lambda: receiver.at("/notify/handover"), timeout=10)
        [n] = http.get(f"{b.control}/pay/notifications", params={"out_trade_no": no}).json()["notifications"]
        assert n["status"] == "delivered" and len(n["attempts"]) == 1
    finally:
        stop_sandbox(a.proc)
        if b is not None:
            stop_sandbox(b.proc)


# -- authentication and signed answers -----------------------------------------------------------------


def test_request_authentication(client, platform):
    no = new_no()
    url = f"/v3/pay/transactions/out-trade-no/{no}?mchid={MCHID}"
    assert client.jsapi(no).status_code == 200
    ok = client.call("GET", url, reverse=True)  # the five fields in another order
    assert ok.status_code == 200 and ok.json()["trade_state"] == "NOTPAY"
    verify_signed(ok, platform)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "bad signature": dict(key=other_key),
        "unknown mchid": dict(mchid="1999999999"),
        "serial mismatch": dict(serial="0123456789ABCDEF"),
        "timestamp 6 min old": dict(ts=int(time.time()) - 360),
        "timestamp 6 min ahead": dict(ts=int(time.time()) + 360),
    }
    for name, auth in cases.items():
        r = client.call("GET", url, **auth)
        assert r.status_code == 401 and r.json()["code"] == "SIGN_ERROR", (name, r.text)
        verify_signed(r, platform)
    assert client.call("GET", url, ts=int(time.time()) - 280).status_code == 200  # within 5 minutes
    # the signed URL is the one on api.mch.weixin.qq.com: signing the mount prefix too is wrong
    headers = {"Authorization": authorization(MERCHANT, "GET", "/sandbox/wechatpay" + url)}
    r = client.http.get(client.gateway + url, headers=headers)
    assert r.status_code == 401 and r.json()["detail"]["sign_information"]["url"] == url
    # the query is signed: a parameter added after signing fails
    headers = {"Authorization": authorization(MERCHANT, "GET", url)}
    assert client.http.get(client.gateway + url + "&x=1", headers=headers).status_code == 401
    # the exact body bytes are signed: a body re-serialised after signing fails
    body = {"mchid": MCHID}
    signed_bytes = json.dumps(body).encode()
    headers = {"Authorization": authorization(MERCHANT, "POST", f"/v3/pay/transactions/out-trade-no/{no}/close",
                                              signed_bytes), "Content-Type": "application/json"}
    r = client.http.post(f"{client.gateway}/v3/pay/transactions/out-trade-no/{no}/close",
                         content=json.dumps(body, separators=(",", ":")).encode(), headers=headers)
    assert r.status_code == 401
    for header in (None, "Bearer x", 'WECHATPAY2-SHA256-RSA2048 mchid="1"', "WECHATPAY2-SHA256-RSA2048 junk"):
        r = client.http.get(client.gateway + url, headers={} if header is None else {"Authorization": header})
        assert r.status_code == 401 and r.json()["code"] == "SIGN_ERROR", header
        verify_signed(r, platform)


def test_unknown_paths_and_methods_are_signed_404s(client, platform):
    for method, url in (("GET", "/v3/pay/nothing"), ("DELETE", "/v3/pay/transactions/jsapi"), ("GET", "/")):
        r = client.call(method, url)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", (method, url, r.text)
        verify_signed(r, platform)
    r = client.call("GET", "/v3/certificates")
    assert r.status_code == 200 and r.json() == {"data": []}
    verify_signed(r, platform)


# -- orders ------------------------------------------------------------------------------------------


def test_jsapi_idempotent_duplicate_and_validation(client, platform):
    no = new_no()
    first = client.jsapi(no, attach="a1")
    assert first.status_code == 200
    verify_signed(first, platform)
    prepay_id = first.json()["prepay_id"]
    assert prepay_id.startswith("wx") and len(prepay_id) == 36
    assert client.jsapi(no, attach="a1").json() == {"prepay_id": prepay_id}  # identical → same prepay_id
    dup = client.jsapi(no, attach="a2")
    assert dup.status_code == 400 and dup.json()["code"] == "INVALID_REQUEST" and dup.json()["message"] == "订单号重复"
    verify_signed(dup, platform)
    other = Merchant(MCHID, "wxotherapp0000001", APIV3_KEY, SERIAL, MERCHANT.key)
    r = PayClient(client.http, client.gateway, other).jsapi(new_no())
    assert r.status_code == 400 and r.json()["code"] == "APPID_MCHID_NOT_MATCH"
    bad = [
        ({"out_trade_no": "12345"}, "/out_trade_no"),
        ({"out_trade_no": "x" * 33}, "/out_trade_no"),
        ({"amount": {"total": 0}}, "/amount/total"),
        ({"amount": {"total": 1.5}}, "/amount/total"),
        ({"amount": {"total": 1, "currency": "USD"}}, "/amount/currency"),
        ({"payer": {}}, "/payer/openid"),
        ({"notify_url": "ftp://x/notify"}, "/notify_url"),
        ({"time_expire": "2030-01-01 10:00:00"}, "/time_expire"),
        ({"description": ""}, "/description"),
    ]
    for override, fld in bad:
        body = {"appid": APPID, "mchid": MCHID, "description": "d", "out_trade_no": new_no(),
                "notify_url": "http://127.0.0.1/notify", "amount": {"total": 1}, "payer": {"openid": "o1"}, **override}
        r = client.call("POST", "/v3/pay/transactions/jsapi", body)
        assert r.status_code == 400 and r.json()["code"] == "PARAM_ERROR", (override, r.text)
        assert r.json()["detail"]["field"] == fld and r.json()["detail"]["location"] == "body"
    r = client.call("POST", "/v3/pay/transactions/jsapi", raw=b"{not json")
    assert r.status_code == 400 and r.json()["code"] == "PARAM_ERROR"
    body = {"appid": APPID, "mchid": MCHID_B, "description": "d", "out_trade_no": new_no(),
            "notify_url": "http://127.0.0.1/notify", "amount": {"total": 1}, "payer": {"openid": "o1"}}
    assert client.call("POST", "/v3/pay/transactions/jsapi", body).status_code == 400  # not the header's mchid


def test_query_close_and_expiry(client, sb, platform, receiver):
    missing = client.query("NO_SUCH_ORDER")
    assert missing.status_code == 404 and missing.json()["code"] == "ORDER_NOT_EXIST"
    verify_signed(missing, platform)
    assert client.call("GET", "/v3/pay/transactions/out-trade-no/NO_SUCH?mchid=").status_code == 400
    assert client.call("GET", f"/v3/pay/transactions/out-trade-no/NO_SUCH?mchid={MCHID_B}").status_code == 400
    # close: 204, signed empty body; idempotent; then the order reads CLOSED and cannot be paid
    no = new_no()
    prepay_id = client.jsapi(no).json()["prepay_id"]
    closed = client.call("POST", f"/v3/pay/transactions/out-trade-no/{no}/close", {"mchid": MCHID})
    assert closed.status_code == 204 and closed.content == b""
    verify_signed(closed, platform)  # over "TS\nNONCE\n\n"
    assert client.call("POST", f"/v3/pay/transactions/out-trade-no/{no}/close", {"mchid": MCHID}).status_code == 204
    q = client.query(no).json()
    assert q["trade_state"] == "CLOSED" and q["trade_state_desc"] == "订单已关闭" and "transaction_id" not in q
    assert sb.control("POST", f"pay/{prepay_id}", json={"result": "SUCCESS"}).status_code == 400
    assert client.jsapi(no).json()["code"] == "ORDER_CLOSED"
    r = client.call("POST", "/v3/pay/transactions/out-trade-no/NO_SUCH_ORDER/close", {"mchid": MCHID})
    assert r.status_code == 404 and r.json()["code"] == "ORDER_NOT_EXIST"
    # a paid order: closing it is refused; the query by transaction_id finds it
    no, paid = paid_order(client, sb, receiver.url("/sink"))
    r = client.call("POST", f"/v3/pay/transactions/out-trade-no/{no}/close", {"mchid": MCHID})
    assert r.status_code == 400 and r.json()["code"] == "ORDERPAID"
    assert client.jsapi(no, notify_url=receiver.url("/sink")).json()["code"] == "ORDERPAID"
    by_id = client.call("GET", f"/v3/pay/transactions/id/{paid['transaction_id']}?mchid={MCHID}")
    assert by_id.status_code == 200 and by_id.json() == client.query(no).json()
    verify_signed(by_id, platform)
    tx = by_id.json()
    assert tx["trade_state"] == "SUCCESS" and tx["trade_type"] == "JSAPI" and tx["bank_type"] == "OTHERS"
    assert len(tx["transaction_id"]) == 28 and tx["transaction_id"].isdigit()
    assert datetime.fromisoformat(tx["success_time"]).utcoffset() == timedelta(hours=8)
    assert tx["amount"] == {"total": 100, "payer_total": 100, "currency": "CNY", "payer_currency": "CNY"}
    assert tx["payer"] == {"openid": "oSandboxPayer0001"}
    assert client.call("GET", f"/v3/pay/transactions/id/4200000000000000000000000000?mchid={MCHID}").status_code == 404
    # time_expire: a NOTPAY order past it reads CLOSED and cannot be paid
    no = new_no()
    expire = (datetime.now(BEIJING) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S+08:00")
    prepay_id = client.jsapi(no, time_expire=expire).json()["prepay_id"]
    assert client.query(no).json()["trade_state"] == "NOTPAY"
    wait_for(lambda: client.query(no).json()["trade_state"] == "CLOSED", timeout=5)
    r = sb.control("POST", f"pay/{prepay_id}", json={"result": "SUCCESS"})
    assert r.status_code == 400 and r.json()["field"] == "prepay_id"
    orders = sb.control("GET", "pay/orders", params={"out_trade_no": no}).json()["orders"]
    assert [o["trade_state"] for o in orders] == ["CLOSED"] and orders[0]["prepay_id"] == prepay_id


def test_payerror_then_success(client, sb, receiver):
    no = new_no()
    prepay_id = client.jsapi(no, notify_url=receiver.url("/payerror")).json()["prepay_id"]
    r = sb.control("POST", f"pay/{prepay_id}", json={"result": "PAYERROR"})
    assert r.status_code == 200 and r.json()["notification_id"] is None and r.json()["trade_state"] == "PAYERROR"
    q = client.query(no).json()
    assert q["trade_state"] == "PAYERROR" and q["transaction_id"] == r.json()["transaction_id"]
    assert "success_time" not in q
    assert notifications(sb, out_trade_no=no) == []  # WeChat notifies successes only
    r2 = sb.control("POST", f"pay/{prepay_id}", json={"result": "SUCCESS", "bank_type": "CMB_CREDIT"})
    assert r2.status_code == 200 and r2.json()["transaction_id"] == r.json()["transaction_id"]
    assert client.query(no).json()["bank_type"] == "CMB_CREDIT"
    assert sb.control("POST", f"pay/{prepay_id}", json={"result": "SUCCESS"}).status_code == 400  # paid already
    assert sb.control("POST", "pay/wx_unknown", json={"result": "SUCCESS"}).status_code == 404
    for body, fld in (({"result": "OK"}, "result"), ({"result": "SUCCESS", "notify": "x"}, "notify"),
                      ({"result": "SUCCESS", "notify": "send", "delay_s": 1}, "delay_s"),
                      ({"result": "SUCCESS", "extra": 1}, "extra")):
        r = sb.control("POST", f"pay/{prepay_id}", json=body)
        assert r.status_code == 400 and r.json()["field"] == fld


# -- notifications -----------------------------------------------------------------------------------


def test_notification_is_accepted_by_wechatpayv3(client, sb, wxpay, receiver, platform):
    """The acceptance line of the issue: wechatpayv3's own callback() accepts and decrypts it."""
    code, text = wxpay.pay(description="沙箱测试商品", out_trade_no=(no := new_no()), amount={"total": 888},
                           payer={"openid": "oLibraryPayer01"}, notify_url=receiver.url("/notify/lib"))
    assert code == 200, text  # wechatpayv3 verified the answer's signature itself
    prepay_id = json.loads(text)["prepay_id"]
    paid = sb.control("POST", f"pay/{prepay_id}", json={"result": "SUCCESS"}).json()
    got = wait_for(lambda: receiver.at("/notify/lib"))[0]
    result = wxpay.callback(got.headers, got.body)
    assert result is not None, "wechatpayv3 refused the notification"
    assert result["id"] == paid["notification_id"] and result["event_type"] == "TRANSACTION.SUCCESS"
    tx = result["resource"]
    assert tx["out_trade_no"] == no and tx["trade_state"] == "SUCCESS" and tx["amount"]["total"] == 888
    assert tx["transaction_id"] == paid["transaction_id"] and tx["mchid"] == MCHID and tx["appid"] == APPID
    assert tx["payer"] == {"openid": "oLibraryPayer01"}
    # the body, exactly as wechat-wire.md describes it
    body = json.loads(got.body)
    assert list(body) == ["id", "create_time", "resource_type", "event_type", "summary", "resource"]
    assert body["id"].startswith("EV-") and body["resource_type"] == "encrypt-resource" and body["summary"] == "支付成功"
    assert datetime.fromisoformat(body["create_time"]).utcoffset() == timedelta(hours=8)
    res = body["resource"]
    assert res["original_type"] == "transaction" and res["algorithm"] == "AEAD_AES_256_GCM"
    assert res["associated_data"] == "transaction" and len(res["nonce"]) == 12
    plain = AESGCM(APIV3_KEY.encode()).decrypt(res["nonce"].encode(), base64.b64decode(res["ciphertext"]),
                                               res["associated_data"].encode())
    assert json.loads(plain) == tx
    assert got.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert got.headers["Wechatpay-Serial"] == platform["public_key_id"]
    assert got.headers["Content-Type"] == "application/json"
    # wechatpayv3 verifies the query answer too, and sees the payment
    code, text = wxpay.query(out_trade_no=no)
    assert code == 200 and json.loads(text)["trade_state"] == "SUCCESS"
    code, text = wxpay.close(out_trade_no=no)
    assert code == 400 and json.loads(text)["code"] == "ORDERPAID"
    [n] = wait_for(lambda: [x for x in notifications(sb, out_trade_no=no) if x["status"] == "delivered"])
    assert [a["http_status"] for a in n["attempts"]] == [200] and n["resource"] == tx


async def test_async_wechatpayv3_client_against_the_emulator(gateway, platform, sb):
    """The backend's adapter uses AsyncWeChatPay: jsapi, query and close (204) verify."""
    from wechatpayv3.async_ import AsyncWeChatPay, WeChatPayType

    async with AsyncWeChatPay(wechatpay_type=WeChatPayType.MINIPROG, mchid=MCHID, private_key=MERCHANT.private_pem,
                              cert_serial_no=SERIAL, appid=APPID, apiv3_key=APIV3_KEY,
                              notify_url="https://merchant.example/notify", public_key=platform["public_key_pem"],
                              public_key_id=platform["public_key_id"], timeout=(5, 10)) as pay:
        pay._core._gate_way = gateway
        no = new_no()
        code, text = await pay.pay(description="异步", out_trade_no=no, amount={"total": 1}, payer={"openid": "oA"})
        assert code == 200 and json.loads(text)["prepay_id"].startswith("wx")
        code, text = await pay.query(out_trade_no=no)
        assert code == 200 and json.loads(text)["trade_state"] == "NOTPAY"
        code, text = await pay.close(out_trade_no=no)
        assert code == 204
        code, text = await pay.query(out_trade_no=no)
        assert json.loads(text)["trade_state"] == "CLOSED"


def test_retries_after_500_on_the_compressed_schedule(client, sb, receiver, wxpay):
    receiver.plan["/notify/flaky"] = [(500, 0, '{"code":"FAIL","message":"失败"}'.encode()), (503, 0, b""), (404, 0, b"")]
    no, paid = paid_order(client, sb, receiver.url("/notify/flaky"))
    n = wait_for(lambda: [x for x in notifications(sb, out_trade_no=no) if x["status"] == "delivered"], timeout=10)[0]
    assert [a["http_status"] for a in n["attempts"]] == [500, 503, 404, 200]
    assert all(a["kind"] == "scheduled" for a in n["attempts"])
    got = receiver.at("/notify/flaky")
    assert len(got) == 4 and len({json.loads(g.body)["id"] for g in got}) == 1  # one notification, 4 deliveries
    assert len({g.body for g in got}) == 1 and len({g.headers["Wechatpay-Nonce"] for g in got}) == 4
    gaps = [b.at - a.at for a, b in zip(got, got[1:])]
    for gap, pause in zip(gaps, [0.2, 0.2, 0.5]):  # sandbox default: 0.2, 0.2, 0.5, 1, 2, 5
        assert pause - 0.05 <= gap <= pause + 1.5, gaps
    for g in got:
        assert wxpay.callback(g.headers, g.body)["resource"]["out_trade_no"] == no
    time.sleep(0.5)
    assert len(receiver.at("/notify/flaky")) == 4  # nothing after the 200


def test_gives_up_after_the_schedule_and_timeouts_count_as_failures(client, sb, receiver, fresh_settings):
    r = sb.control("POST", "pay/settings", json={"retry_schedule_s": [0.1, 0.1], "notify_timeout_s": 0.5})
    assert r.json()["retry_schedule_s"] == [0.1, 0.1] and r.json()["notify_timeout_s"] == 0.5
    receiver.plan["/notify/down"] = [(500, 0, b"")] * 10
    no, _ = paid_order(client, sb, receiver.url("/notify/down"))
    n = wait_for(lambda: [x for x in notifications(sb, out_trade_no=no) if x["status"] == "failed"], timeout=10)[0]
    assert [a["http_status"] for a in n["attempts"]] == [500, 500, 500] and n["next_attempt_at"] is None
    # a merchant slower than the timeout: no answer counted, retried, then delivered
    receiver.plan["/notify/slow"] = [(200, 1.5, b"")]
    no, _ = paid_order(client, sb, receiver.url("/notify/slow"))
    n = wait_for(lambda: [x for x in notifications(sb, out_trade_no=no) if x["status"] == "delivered"], timeout=10)[0]
    first, second = n["attempts"]
    assert first["http_status"] is None and first["error"].startswith("timeout")
    assert second["http_status"] == 200
    # an unreachable merchant: a connection error
    no, _ = paid_order(client, sb, "http://127.0.0.1:9/notify")
    n = wait_for(lambda: [x for x in notifications(sb, out_trade_no=no) if x["status"] == "failed"], timeout=10)[0]
    assert all(a["http_status"] is None and a["error"] for a in n["attempts"])
    r = sb.control("POST", "pay/settings", json={"retry_schedule_s": [-1]})
    assert r.status_code == 400 and r.json()["field"] == "retry_schedule_s"
    assert sb.control("POST", "pay/settings", json={"nope": 1}).status_code == 400


def test_notify_drop_delay_and_redeliver_in_parallel(client, sb, receiver, wxpay):
    no, paid = paid_order(client, sb, receiver.url("/notify/dropped"), notify="drop")
    time.sleep(0.5)
    assert receiver.at("/notify/dropped") == []
    [n] = notifications(sb, out_trade_no=no)
    assert n["status"] == "dropped" and n["attempts"] == []
    # the same notification, 8 times at once: same id and body, each freshly signed
    r = sb.control("POST", f"pay/notifications/{paid['notification_id']}/redeliver", json={"count": 8, "parallel": True})
    assert r.status_code == 200, r.text
    assert [a["http_status"] for a in r.json()["attempts"]] == [200] * 8
    got = receiver.at("/notify/dropped")
    assert len(got) == 8 and len({g.body for g in got}) == 1
    assert len({g.headers["Wechatpay-Nonce"] for g in got}) == 8
    assert {wxpay.callback(g.headers, g.body)["id"] for g in got} == {paid["notification_id"]}
    [n] = notifications(sb, out_trade_no=no)
    assert n["status"] == "dropped" and [a["kind"] for a in n["attempts"]] == ["redeliver"] * 8
    # delay: not before delay_s
    no, paid = paid_order(client, sb, receiver.url("/notify/later"), notify="delay", delay_s=0.8)
    time.sleep(0.4)
    assert receiver.at("/notify/later") == []
    wait_for(lambda: receiver.at("/notify/later"), timeout=5)
    assert receiver.at("/notify/later")[0].at - paid_at(sb, no) >= 0.75
    # errors of the control route
    assert sb.control("POST", "pay/notifications/EV-nope/redeliver", json={}).status_code == 404
    for body, fld in (({"count": 0}, "count"), ({"parallel": "yes"}, "parallel"), ({"tamper": "x"}, "tamper")):
        r = sb.control("POST", f"pay/notifications/{paid['notification_id']}/redeliver", json=body)
        assert r.status_code == 400 and r.json()["field"] == fld


def test_an_order_s_payment_notification_is_sent_again_by_its_prepay_id(client, sb, receiver, wxpay):
    """``POST pay/{prepay_id}/notify``: what a test that paid an order asks for, without the notification's id."""
    no = new_no()
    prepay_id = client.jsapi(no, total=100, notify_url=receiver.url("/notify/again")).json()["prepay_id"]
    # not paid yet: nothing to send
    r = sb.control("POST", f"pay/{prepay_id}/notify")
    assert r.status_code == 400 and r.json()["field"] == "prepay_id"
    paid = sb.control("POST", f"pay/{prepay_id}", json={"result": "SUCCESS", "notify": "drop"}).json()
    r = sb.control("POST", f"pay/{prepay_id}/notify")  # no body: one delivery
    assert r.status_code == 200, r.text
    assert r.json()["id"] == paid["notification_id"] and [a["http_status"] for a in r.json()["attempts"]] == [200]
    Draft202012Validator({**DOC["components"]["schemas"]["Redelivery"], "components": DOC["components"]}).validate(r.json())
    r = sb.control("POST", f"pay/{prepay_id}/notify", json={"count": 2})
    assert [a["http_status"] for a in r.json()["attempts"]] == [200, 200]
    got = receiver.at("/notify/again")
    assert len(got) == 3 and len({g.body for g in got}) == 1
    for g in got:  # each one signed afresh, and the same payment
        event = wxpay.callback(g.headers, g.body)
        assert event["id"] == paid["notification_id"] and event["resource"]["out_trade_no"] == no
    [n] = notifications(sb, out_trade_no=no)
    assert n["status"] == "dropped" and [a["kind"] for a in n["attempts"]] == ["redeliver"] * 3
    assert sb.control("POST", "pay/wx-nope/notify").status_code == 404
    for body, fld in (({"count": 0}, "count"), ({"parallel": 1}, "parallel"), ({"tamper": "x"}, "tamper"),
                      ({"result": "SUCCESS"}, "result")):
        r = sb.control("POST", f"pay/{prepay_id}/notify", json=body)
        assert r.status_code == 400 and r.json()["field"] == fld


def paid_at(sb, out_trade_no: str) -> float:
    return notifications(sb, out_trade_no=out_trade_no)[0]["created_at"]


def test_tampered_notifications_are_refused_by_wechatpayv3(client, sb, receiver, wxpay):
    no, paid = paid_order(client, sb, receiver.url("/notify/tamper"), notify="drop")
    nid = paid["notification_id"]
    results = {}
    for tamper in ("byte", "serial", "signature", "timestamp"):
        r = sb.control("POST", f"pay/notifications/{nid}/redeliver", json={"tamper": tamper})
        assert r.status_code == 200 and r.json()["attempts"][0]["tamper"] == tamper
        got = receiver.at("/notify/tamper")[-1]
        results[tamper] = (got, wxpay.callback(got.headers, got.body))
    assert results["byte"][1] is None and results["signature"][1] is None and results["serial"][1] is None
    assert results["serial"][0].headers["Wechatpay-Serial"].startswith("PUB_KEY_ID_")
    # correctly signed, but 10 minutes old: wechatpayv3 does not check the skew (wechat-wire.md), the
    # backend must
    stale, accepted = results["timestamp"]
    assert accepted is not None and accepted["id"] == nid
    assert time.time() - int(stale.headers["Wechatpay-Timestamp"]) >= 590


# -- refunds -----------------------------------------------------------------------------------------


def test_refunds(client, sb, receiver, wxpay, platform):
    no, paid = paid_order(client, sb, receiver.url("/sink"))
    r1 = client.refund("R" + no, 30, out_trade_no=no, notify_url=receiver.url("/notify/refund"), reason="不想要了")
    assert r1.status_code == 200, r1.text
    verify_signed(r1, platform)
    body = r1.json()
    assert body["status"] == "PROCESSING" and "success_time" not in body
    assert body["amount"]["refund"] == 30 and body["amount"]["total"] == 100 and body["amount"]["currency"] == "CNY"
    assert body["transaction_id"] == paid["transaction_id"] and len(body["refund_id"]) == 29
    assert client.refund("R" + no, 30, out_trade_no=no, notify_url=receiver.url("/notify/refund"),
                         reason="不想要了").json()["refund_id"] == body["refund_id"]  # idempotent
    dup = client.refund("R" + no, 31, out_trade_no=no)
    assert dup.status_code == 400 and dup.json()["code"] == "INVALID_REQUEST"
    assert client.query(no).json()["trade_state"] == "REFUND"
    # never more than paid: 30 + 80 > 100; 30 + 70 = 100 fits (by transaction_id), then nothing more
    over = client.refund("R2" + no, 80, transaction_id=paid["transaction_id"])
    assert over.status_code == 400 and over.json()["code"] == "NOT_ENOUGH"
    assert client.refund("R3" + no, 70, transaction_id=paid["transaction_id"]).status_code == 200
    assert client.refund("R4" + no, 1, out_trade_no=no).json()["code"] == "NOT_ENOUGH"
    # PROCESSING, then SUCCESS (0.3 s here), and REFUND.SUCCESS delivered, accepted by wechatpayv3
    done = wait_for(lambda: (x := client.call("GET", f"/v3/refund/domestic/refunds/R{no}").json())["status"] == "SUCCESS" and x)
    assert datetime.fromisoformat(done["success_time"]).utcoffset() == timedelta(hours=8)
    got = wait_for(lambda: receiver.at("/notify/refund"))[0]
    result = wxpay.callback(got.headers, got.body)
    assert result["event_type"] == "REFUND.SUCCESS" and result["summary"] == "退款成功"
    assert json.loads(got.body)["resource"]["original_type"] == "refund"
    assert json.loads(got.body)["resource"]["associated_data"] == "refund"
    assert result["resource"] == {
        "mchid": MCHID, "transaction_id": paid["transaction_id"], "out_trade_no": no, "refund_id": body["refund_id"],
        "out_refund_no": "R" + no, "refund_status": "SUCCESS", "success_time": done["success_time"],
        "user_received_account": "支付用户零钱",
        "amount": {"total": 100, "refund": 30, "payer_total": 100, "payer_refund": 30},
    }
    assert [n["event_type"] for n in notifications(sb, out_refund_no="R" + no)] == ["REFUND.SUCCESS"]
    # errors
    missing = client.call("GET", "/v3/refund/domestic/refunds/NO_SUCH_REFUND")
    assert missing.status_code == 404 and missing.json()["code"] == "RESOURCE_NOT_EXISTS"
    assert client.refund("R5" + no, 1, out_trade_no="NO_SUCH_ORDER").json()["code"] == "RESOURCE_NOT_EXISTS"
    unpaid = new_no()
    client.jsapi(unpaid)
    assert client.refund("R6" + no, 1, out_trade_no=unpaid).json()["code"] == "INVALID_REQUEST"
    no2, _ = paid_order(client, sb, receiver.url("/sink"))
    assert client.refund("R7" + no2, 1, total=99, out_trade_no=no2).json()["code"] == "INVALID_REQUEST"
    assert client.refund("R8" + no2, 1).json()["code"] == "PARAM_ERROR"  # neither transaction_id nor out_trade_no
    # through wechatpayv3 (its answers verify)
    code, text = wxpay.refund(out_refund_no="R9" + no2, amount={"refund": 10, "total": 100, "currency": "CNY"},
                              out_trade_no=no2)
    assert code == 200 and json.loads(text)["status"] == "PROCESSING"
    code, text = wxpay.query_refund(out_refund_no="R9" + no2)
    assert code == 200


async def test_concurrent_refunds_never_exceed_the_payment(gateway, sb, receiver, client):
    no, _ = paid_order(client, sb, receiver.url("/sink"))
    body = lambda i: json.dumps({"out_trade_no": no, "out_refund_no": f"C{i}{no}",
                                 "amount": {"refund": 30, "total": 100, "currency": "CNY"}}).encode()
    async with httpx.AsyncClient(timeout=30) as http:
        import asyncio

        async def one(i: int) -> httpx.Response:
            content = body(i)
            headers = {"Authorization": authorization(MERCHANT, "POST", "/v3/refund/domestic/refunds", content),
                       "Content-Type": "application/json"}
            return await http.post(f"{gateway}/v3/refund/domestic/refunds", content=content, headers=headers)

        answers = await asyncio.gather(*(one(i) for i in range(8)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 3 + [400] * 5, [r.text for r in answers]
    assert {r.json()["code"] for r in answers if r.status_code == 400} == {"NOT_ENOUGH"}


# -- bills -------------------------------------------------------------------------------------------


def test_trade_bill(client, sb, receiver, wxpay, http, platform):
    no1, p1 = paid_order(client, sb, receiver.url("/sink"), total=12345)
    no2, _ = paid_order(client, sb, receiver.url("/sink"), total=1)
    assert client.refund("BR" + no1, 2345, total=12345, out_trade_no=no1).status_code == 200
    wait_for(lambda: client.call("GET", f"/v3/refund/domestic/refunds/BR{no1}").json()["status"] == "SUCCESS")
    today = datetime.now(BEIJING).strftime("%Y-%m-%d")
    r = client.call("GET", f"/v3/bill/tradebill?bill_date={today}&bill_type=ALL")
    assert r.status_code == 200, r.text
    verify_signed(r, platform)
    meta = r.json()
    assert meta["hash_type"] == "SHA1" and set(meta) == {"hash_type", "hash_value", "download_url"}
    url = meta["download_url"]
    assert url.startswith(client.gateway + "/v3/billdownload/file?token=")
    path = url[len(client.gateway):]
    assert http.get(url).status_code == 401  # the download is authenticated like any other call
    d = client.call("GET", path)
    assert d.status_code == 200
    verify_signed(d, platform)
    assert hashlib.sha1(d.content).hexdigest() == meta["hash_value"]
    text = d.content.decode("utf-8")
    lines = text.split("\r\n")
    assert lines[0] == ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
                        "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
                        "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")
    rows = [line.split(",") for line in lines[1:] if line.startswith("`")]
    records, summary = rows[:-1], rows[-1]
    assert all(v.startswith("`") for row in rows for v in row)
    cols = lines[0].split(",")
    recs = [dict(zip(cols, (v[1:] for v in row))) for row in records]
    assert all(len(row) == len(cols) for row in records)
    mine = {(r["商户订单号"], r["交易状态"]): r for r in recs}
    pay1 = mine[(no1, "SUCCESS")]
    assert pay1["应结订单金额"] == "123.45" and pay1["订单金额"] == "123.45" and pay1["微信订单号"] == p1["transaction_id"]
    assert pay1["手续费"] == "0.74" and pay1["费率"] == "0.60%" and pay1["商户号"] == MCHID and pay1["交易类型"] == "JSAPI"
    assert mine[(no2, "SUCCESS")]["应结订单金额"] == "0.01"
    ref = mine[(no1, "REFUND")]
    assert ref["退款金额"] == "23.45" and ref["商户退款单号"] == "BR" + no1 and ref["退款状态"] == "SUCCESS"
    assert lines[-3] == "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    assert summary[0] == f"`{len(records)}" and lines[-1] == ""
    total_settled = sum(round(float(r["应结订单金额"]) * 100) for r in recs)
    assert summary[1] == "`" + f"{total_settled // 100}.{total_settled % 100:02d}"
    # GZIP: the hash is the uncompressed bill's; wechatpayv3's own calls (tar_type=GZIP by default)
    code, text = wxpay.trade_bill(bill_date=today)
    assert code == 200
    meta2 = json.loads(text)
    code, content = wxpay.download_bill(meta2["download_url"])
    assert code == 200 and hashlib.sha1(gzip.decompress(content)).hexdigest() == meta2["hash_value"]
    only_refunds = client.call("GET", f"/v3/bill/tradebill?bill_date={today}&bill_type=REFUND").json()
    refund_text = client.call("GET", only_refunds["download_url"][len(client.gateway):]).content.decode()
    assert "退款申请时间,退款成功时间" in refund_text.split("\r\n")[0] and f"`{no2}" not in refund_text
    # errors
    assert client.call("GET", "/v3/billdownload/file?token=nope").json()["code"] == "INVALID_REQUEST"
    assert client.call("GET", "/v3/bill/tradebill?bill_date=2001-01-01").json()["code"] == "NO_STATEMENT_EXIST"
    future = (datetime.now(BEIJING) + timedelta(days=2)).strftime("%Y-%m-%d")
    for query in (f"bill_date={future}", "bill_date=2024-13-01", "bill_type=ALL", f"bill_date={today}&bill_type=X",
                  f"bill_date={today}&tar_type=ZIP"):
        r = client.call("GET", "/v3/bill/tradebill?" + query)
        assert r.status_code == 400 and r.json()["code"] == "PARAM_ERROR", (query, r.text)


# -- faults ------------------------------------------------------------------------------------------


def test_faults_on_the_merchant_api(client, sb, platform):
    path = "wechatpay/v3/pay/transactions/jsapi"
    r = sb.control("POST", "faults", json={"path": path, "http_status": 503})
    assert r.status_code == 201, r.text
    down = client.jsapi(new_no())
    assert down.status_code == 503 and down.json()["code"] == "SYSTEM_ERROR"
    verify_signed(down, platform)
    # the order is made but the answer is lost: the same request again gets the same prepay_id
    sb.control("POST", "faults", json={"path": "/sandbox/" + path, "when": "after", "drop": True})
    no = new_no()
    with pytest.raises(httpx.TransportError):
        client.jsapi(no)
    again = client.jsapi(no)
    assert again.status_code == 200
    assert sb.control("GET", "pay/orders", params={"out_trade_no": no}).json()["orders"][0]["prepay_id"] == \
        again.json()["prepay_id"]
    sb.control("POST", "faults", json={"path": "wechatpay/v3/pay/transactions/out-trade-no/{out_trade_no}",
                                       "body": {"code": "SYSTEM_ERROR", "message": "忙"}})
    faulty = client.query(no)
    assert faulty.status_code == 200 and faulty.json() == {"code": "SYSTEM_ERROR", "message": "忙"}
    verify_signed(faulty, platform)
    r = sb.control("POST", "faults", json={"path": path, "errcode": 40001})
    assert r.status_code == 400 and r.json()["field"] == "errcode"
    calls = sb.calls(path)
    assert [c["http_status"] for c in calls[-3:]] == [503, 0, 200]


# -- message push ------------------------------------------------------------------------------------


def test_push_verify(sb, receiver):
    from wechatpy.utils import check_signature

    r = sb.control("POST", "push/verify", json={"url": receiver.url("/push"), "token": TOKEN})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["ok"] is True and report["http_status"] == 200 and report["reply"] == report["echostr"]
    got = receiver.at("/push")[-1]
    assert got.method == "GET" and set(got.query) == {"signature", "timestamp", "nonce", "echostr"}
    check_signature(TOKEN, got.query["signature"], got.query["timestamp"], got.query["nonce"])  # raises if wrong
    receiver.plan["/push"] = [(200, 0, b"something else")]
    assert sb.control("POST", "push/verify", json={"url": receiver.url("/push"), "token": TOKEN}).json()["ok"] is False
    down = sb.control("POST", "push/verify", json={"url": "http://127.0.0.1:9/push", "token": TOKEN}).json()
    assert down["ok"] is False and down["http_status"] is None and down["error"]
    # the documented doc example: Token AAAAA, ts 1714036504, nonce 1514711492
    from sandbox.push import signature
    assert signature("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    for body, fld in (({"url": "ftp://x", "token": TOKEN}, "url"), ({"url": receiver.url("/p"), "token": "a b"}, "token")):
        r = sb.control("POST", "push/verify", json=body)
        assert r.status_code == 400 and r.json()["field"] == fld


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_push_plain_and_safe_round_trip(sb, receiver, fmt):
    import xmltodict
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.utils import check_signature

    message = {"FromUserName": "oUser0001", "MsgType": "event", "Event": "debug_demo", "debug_str": "你好, <world>"}
    # plain
    receiver.plan["/push/plain"] = [(200, 0, b"success")]
    r = sb.control("POST", "push", json={"url": receiver.url("/push/plain") + "?tenant=1", "token": TOKEN,
                                         "mode": "plain", "format": fmt, "message": message})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] is True and r.json()["reply"] == "success"
    got = receiver.at("/push/plain")[-1]
    assert got.query["tenant"] == "1" and "encrypt_type" not in got.query and "msg_signature" not in got.query
    check_signature(TOKEN, got.query["signature"], got.query["timestamp"], got.query["nonce"])
    if fmt == "json":
        assert got.headers["Content-Type"] == "application/json"
        sent = json.loads(got.body)
    else:
        assert got.headers["Content-Type"] == "text/xml"
        sent = xmltodict.parse(got.body)["xml"]
        assert b"<![CDATA[" in got.body
    assert {k: sent[k] for k in message} == message
    assert sent["ToUserName"].startswith("gh_") and int(sent["CreateTime"]) > 0
    # safe: wechatpy decrypts it
    r = sb.control("POST", "push", json={"url": receiver.url("/push/safe"), "token": TOKEN, "mode": "safe",
                                         "encoding_aes_key": AES_KEY, "appid": APPID, "format": fmt,
                                         "message": message})
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    got = receiver.at("/push/safe")[-1]
    q = got.query
    assert q["encrypt_type"] == "aes" and {"signature", "timestamp", "nonce", "msg_signature"} <= set(q)
    check_signature(TOKEN, q["signature"], q["timestamp"], q["nonce"])
    envelope = json.loads(got.body) if fmt == "json" else got.body.decode()
    if fmt == "json":
        assert set(envelope) == {"ToUserName", "Encrypt"}
    plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(envelope, q["msg_signature"], q["timestamp"], q["nonce"])
    assert plain == r.json()["plaintext"]
    inner = json.loads(plain) if fmt == "json" else xmltodict.parse(plain)["xml"]
    assert {k: inner[k] for k in message} == message
    # the wrong appid is refused by wechatpy (the appid travels inside the cipher text)
    from wechatpy.exceptions import InvalidAppIdException
    with pytest.raises(InvalidAppIdException):
        WeChatCrypto(TOKEN, AES_KEY, "wxsomeoneelse").decrypt_message(envelope, q["msg_signature"], q["timestamp"],
                                                                        q["nonce"])


def test_push_round_trips_against_wechatpy_encryption():
    """Our cipher and wechatpy's agree both ways (a fixed random prefix makes them byte-identical)."""
    from wechatpy.crypto import PrpCrypto

    from sandbox import push

    key = base64.b64decode(AES_KEY + "=")
    for msg in (b"", b"x", "消息".encode() * 40, b"a" * 31, b"a" * 32):
        ours = push.encrypt(AES_KEY, APPID, msg)
        assert PrpCrypto(key).decrypt(ours, APPID).encode() == msg
        theirs = PrpCrypto(key).encrypt(msg.decode(), APPID)
        assert push.decrypt(AES_KEY, theirs) == (msg, APPID)


def test_push_validation_and_report_schema(sb):
    cases = [({"url": "http://x", "token": TOKEN, "message": {"a": 1}, "mode": "safe"}, "encoding_aes_key"),
             ({"url": "http://x", "token": TOKEN, "message": {}}, "message"),
             ({"url": "http://x", "token": TOKEN, "message": {"a b": 1}}, "message"),
             ({"url": "http://x", "token": TOKEN, "message": {"a": 1}, "format": "yaml"}, "format"),
             ({"url": "http://x", "token": TOKEN, "message": {"a": 1}, "encoding_aes_key": "short"}, "encoding_aes_key"),
             ({"url": "http://x", "token": TOKEN, "message": {"a": 1}, "extra": 1}, "extra")]
    for body, fld in cases:
        r = sb.control("POST", "push", json=body)
        assert r.status_code == 400 and r.json()["field"] == fld, (body, r.text)
    schemas = DOC["components"]["schemas"]
    report = sb.control("POST", "push", json={"url": "http://127.0.0.1:9/x", "token": TOKEN, "message": {"a": 1}}).json()
    Draft202012Validator({**schemas["PushReport"], "components": DOC["components"]}).validate(report)
    assert report["accepted"] is False and report["error"]


def test_control_answers_fit_the_documented_schemas(sb, client):
    client.jsapi(new_no())
    schemas = DOC["components"]["schemas"]
    for path, name in (("pay/platform-key", "PayPlatformKey"), ("pay/merchants", "PayMerchants"),
                       ("pay/settings", "PaySettings"), ("pay/orders", "PayOrders"),
                       ("pay/notifications", "PayNotifications")):
        r = sb.control("GET", path)
        assert r.status_code == 200
        Draft202012Validator({**schemas[name], "components": DOC["components"]}).validate(r.json())
