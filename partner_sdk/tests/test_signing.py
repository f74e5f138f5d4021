"""Signing vectors, each recomputed here with hashlib/hmac from the document's recipe."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from openbank_partner import request_string, response_string, sign, sign_request
from openbank_partner.signing import body_sha256, new_nonce, split_target

SECRET = "sk_vector-secret-0123456789abcdefghijklmnopqrstu"
EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def test_empty_body_hash_is_the_hash_of_nothing() -> None:
    assert body_sha256(b"") == EMPTY_SHA == hashlib.sha256(b"").hexdigest()


def test_post_vector() -> None:
    body = b'{"out_trade_no":"PK-000001","plate_number":"\xe4\xba\xacA12345","plate_color":"blue"}'
    text = request_string("post", "/open/v1/debits", "", 1764460800, "abcdefghijklmnop", body)
    assert text == "\n".join(["POST", "/open/v1/debits", "", "1764460800", "abcdefghijklmnop",
                              hashlib.sha256(body).hexdigest()])
    assert sign(SECRET, text) == hmac_hex(SECRET, text)
    assert re.fullmatch(r"[0-9a-f]{64}", sign(SECRET, text))


def test_get_vector_with_query() -> None:
    text = request_string("GET", "/open/v1/statements", "date=2026-11-30&b=x%20y&a=1", "1764460800",
                          "n0nce-example-0001", b"")
    assert text.split("\n") == ["GET", "/open/v1/statements", "a=1&b=x%20y&date=2026-11-30", "1764460800",
                                "n0nce-example-0001", EMPTY_SHA]
    assert not text.endswith("\n")


def test_path_is_signed_exactly_as_on_the_request_line() -> None:
    text = request_string("GET", "/open/v1/debits/a%2Fb", "", 1, "n" * 16, b"")
    assert text.split("\n")[1] == "/open/v1/debits/a%2Fb"
    with pytest.raises(ValueError):
        request_string("GET", "/open/v1/statements?date=2026-11-30", "", 1, "n" * 16, b"")


def test_secret_and_string_are_utf8() -> None:
    secret, text = "sk_密钥", "GET\n/é\n\n1\nnnnnnnnnnnnnnnnn\n" + EMPTY_SHA
    assert sign(secret, text) == hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def test_response_vector() -> None:
    body = b'{"out_trade_no":"ETC20261130000001"}'
    text = response_string(201, "req-nonce-000000001", "1764460801", "bank-nonce-00000001", body)
    assert text == "\n".join(["RESPONSE", "201", "req-nonce-000000001", "1764460801", "bank-nonce-00000001",
                              hashlib.sha256(body).hexdigest()])


def test_sign_request_headers() -> None:
    body = b'{"a":1}'
    headers = sign_request(SECRET, "pt0123456789abcdef", "POST", "/open/v1/debits?x=1", body,
                           timestamp=1764460800, nonce="n0nce-example-0001")
    expected = hmac_hex(SECRET, "\n".join(["POST", "/open/v1/debits", "x=1", "1764460800", "n0nce-example-0001",
                                           hashlib.sha256(body).hexdigest()]))
    assert headers == {"X-App-Id": "pt0123456789abcdef", "X-Timestamp": "1764460800",
                       "X-Nonce": "n0nce-example-0001", "X-Signature": expected}


def test_sign_request_defaults_to_now_and_a_fresh_nonce() -> None:
    import time

    a = sign_request(SECRET, "pt0123456789abcdef", "GET", "/open/v1/debits/ABCDEF")
    b = sign_request(SECRET, "pt0123456789abcdef", "GET", "/open/v1/debits/ABCDEF")
    assert a["X-Nonce"] != b["X-Nonce"]
    assert abs(int(a["X-Timestamp"]) - time.time()) < 5


@pytest.mark.parametrize("nonce", ["short", "x" * 65, "has space 0123456789", "plus+0123456789abcd", "点" * 16])
def test_sign_request_refuses_a_malformed_nonce(nonce: str) -> None:
    with pytest.raises(ValueError):
        sign_request(SECRET, "pt0123456789abcdef", "GET", "/", nonce=nonce)


def test_new_nonce_format() -> None:
    nonces = {new_nonce() for _ in range(200)}
    assert len(nonces) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16,64}", n) for n in nonces)


@pytest.mark.parametrize(("target", "expected"), [
    ("/open/v1/debits", ("/open/v1/debits", "")),
    ("/cb?x=1&y=2", ("/cb", "x=1&y=2")),
    ("/cb?next=http://x/y?z", ("/cb", "next=http://x/y?z")),
    ("https://partner.example/bank/notify?k=v", ("/bank/notify", "k=v")),
    ("HTTPS://partner.example", ("/", "")),
    ("https://partner.example/a%20b?q=%2F", ("/a%20b", "q=%2F")),
])
def test_split_target(target: str, expected: tuple[str, str]) -> None:
    assert split_target(target) == expected
