"""A fake bank for the client tests (an httpx.MockTransport handler) and signing helpers written afresh
with hashlib/hmac, not the SDK's own, so the tests check the SDK against the document, not itself."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

import httpx

APP_ID = "pt0123456789abcdef"
SECRET = "sk_test-secret-for-unit-tests-only-000000000000"


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def sha_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_request_signature(secret: str, method: str, raw_target: str, timestamp: str, nonce: str,
                               body: bytes) -> str:
    """The document's request signature, for the simple queries the client sends."""
    path, _, query = raw_target.partition("?")
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    canon = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    return hmac_hex(secret, "\n".join([method, path, canon, timestamp, nonce, sha_hex(body)]))


def signed_response_headers(secret: str, status: int, request_nonce: str, body: bytes,
                            nonce: str = "bank-nonce-0000000001") -> dict[str, str]:
    ts = str(int(time.time()))
    text = "\n".join(["RESPONSE", str(status), request_nonce, ts, nonce, sha_hex(body)])
    return {"X-Timestamp": ts, "X-Nonce": nonce, "X-Signature": hmac_hex(secret, text)}


@dataclass
class Reply:
    """What the fake bank answers: a JSON object (or raw bytes), signed unless told otherwise."""

    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    signed: bool = True
    secret: str = SECRET
    sign_for_nonce: str | None = None  # sign as if answering another request
    tamper: bool = False  # change the body after signing


@dataclass
class Seen:
    method: str
    target: str
    headers: httpx.Headers
    body: bytes

    @property
    def json(self) -> object:
        return json.loads(self.body)


class FakeBank:
    """An httpx.MockTransport handler: checks each request's signature, answers from a script."""

    def __init__(self, *script: Reply | Exception | Callable[[Seen], Reply]) -> None:
        self.script = list(script)
        self.seen: list[Seen] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        seen = Seen(request.method, request.url.raw_path.decode(), request.headers, request.read())
        self.seen.append(seen)
        h = request.headers
        assert h["X-App-Id"] == APP_ID
        assert abs(int(h["X-Timestamp"]) - time.time()) < 5
        assert h["X-Signature"] == expected_request_signature(
            SECRET, request.method, seen.target, h["X-Timestamp"], h["X-Nonce"], seen.body)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        reply = step(seen) if callable(step) else step
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        headers = dict(reply.headers)
        if reply.signed:
            headers.update(signed_response_headers(reply.secret, reply.status,
                                                   reply.sign_for_nonce or h["X-Nonce"], body))
        if reply.tamper:
            body = body.replace(b"3500", b"3600")
        return httpx.Response(reply.status, headers=headers, content=body)


def debit_json(out_trade_no: str = "ETC20261130000001", **changes: object) -> dict[str, object]:
    obj: dict[str, object] = {
        "out_trade_no": out_trade_no, "status": "succeeded", "category": "toll", "amount_fen": 3500,
        "refunded_fen": 0, "binding_id": 42, "card_number_masked": "3201****2345", "plate_number": None,
        "plate_color": None, "merchant": "G2 Beijing-Shanghai Expwy", "occurred_at": "2026-11-30T08:00:00+08:00",
        "booked_at": "2026-11-30T08:00:01+08:00", "refusal_code": None,
    }
    obj.update(changes)
    return obj


def error_json(code: str, message: str = "refused", field: str | None = None) -> dict[str, object]:
    err: dict[str, object] = {"code": code, "message": message}
    if field:
        err["field"] = field
    return {"error": err}


