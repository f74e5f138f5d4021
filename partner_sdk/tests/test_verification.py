"""Verifying the bank's responses and notifications (signatures built here with hashlib/hmac)."""

from __future__ import annotations

import json

import pytest
from fakebank import APP_ID, SECRET, hmac_hex, sha_hex

from openbank_partner import (
    Notification,
    ProtocolError,
    SignatureError,
    parse_notification,
    verify_notification,
    verify_response,
)

BODY = b'{"out_trade_no":"ETC20261130000001","amount_fen":3500}'
REQ_NONCE = "client-nonce-000000001"


def response_headers(status: int = 201, request_nonce: str = REQ_NONCE, body: bytes = BODY,
                     secret: str = SECRET) -> dict[str, str]:
    text = "\n".join(["RESPONSE", str(status), request_nonce, "1764460801", "bank-nonce-0000000001", sha_hex(body)])
    return {"X-Timestamp": "1764460801", "X-Nonce": "bank-nonce-0000000001", "X-Signature": hmac_hex(secret, text)}


class TestResponse:
    def test_good(self) -> None:
        verify_response(SECRET, 201, REQ_NONCE, response_headers(), BODY)

    def test_header_names_are_case_insensitive(self) -> None:
        headers = {k.lower(): v for k, v in response_headers().items()}
        verify_response(SECRET, 201, REQ_NONCE, headers, BODY)

    @pytest.mark.parametrize(("status", "nonce", "body"), [
        (200, REQ_NONCE, BODY),                       # wrong status
        (201, "client-nonce-000000002", BODY),        # answers another request
        (201, REQ_NONCE, BODY.replace(b"3500", b"3600")),  # altered body
        (201, REQ_NONCE, b""),
    ])
    def test_mismatch(self, status: int, nonce: str, body: bytes) -> None:
        with pytest.raises(SignatureError):
            verify_response(SECRET, status, nonce, response_headers(), body)

    def test_wrong_secret(self) -> None:
        with pytest.raises(SignatureError):
            verify_response(SECRET, 201, REQ_NONCE, response_headers(secret="sk_someone-else"), BODY)

    @pytest.mark.parametrize("drop", ["X-Timestamp", "X-Nonce", "X-Signature"])
    def test_unsigned(self, drop: str) -> None:
        headers = response_headers()
        del headers[drop]
        with pytest.raises(SignatureError, match="not signed"):
            verify_response(SECRET, 201, REQ_NONCE, headers, BODY)

    def test_altered_timestamp_header(self) -> None:
        headers = response_headers() | {"X-Timestamp": "1764460802"}
        with pytest.raises(SignatureError):
            verify_response(SECRET, 201, REQ_NONCE, headers, BODY)

    @pytest.mark.parametrize("mangle", [str.upper, lambda s: s[:-1], lambda s: s + "0", lambda s: "é" + s[1:]])
    def test_signature_must_be_exact_lowercase_hex(self, mangle) -> None:
        headers = response_headers()
        headers["X-Signature"] = mangle(headers["X-Signature"])
        with pytest.raises(SignatureError):
            verify_response(SECRET, 201, REQ_NONCE, headers, BODY)

    def test_any_of_several_secrets(self) -> None:
        headers = response_headers(secret="sk_old-secret")
        verify_response(["sk_new-secret", "sk_old-secret"], 201, REQ_NONCE, headers, BODY)
        with pytest.raises(SignatureError):
            verify_response(["sk_new-secret"], 201, REQ_NONCE, headers, BODY)
        with pytest.raises(SignatureError):
            verify_response([], 201, REQ_NONCE, headers, BODY)


NOW = 1764460800
CALLBACK = "https://partner.example/bank/notify?tenant=t%201&a=1"
EVENT = {"event_id": "ev_0001", "type": "binding.activated", "occurred_at": "2026-11-30T08:00:00+08:00",
         "data": {"binding_id": 42, "card_number_masked": "3201****2345", "plate_number": "京A12345",
                  "plate_color": "blue", "status": "active"}}
EVENT_BODY = json.dumps(EVENT, ensure_ascii=False).encode()


def notification_headers(body: bytes = EVENT_BODY, timestamp: int = NOW, secret: str = SECRET,
                         path: str = "/bank/notify", canonical: str = "a=1&tenant=t%201",
                         method: str = "POST") -> dict[str, str]:
    nonce = "bank-event-nonce-0001"
    text = "\n".join([method, path, canonical, str(timestamp), nonce, sha_hex(body)])
    return {"X-App-Id": APP_ID, "X-Timestamp": str(timestamp), "X-Nonce": nonce,
            "X-Signature": hmac_hex(secret, text), "Content-Type": "application/json"}


class TestNotification:
    def test_good_with_full_url(self) -> None:
        verify_notification(SECRET, "POST", CALLBACK, notification_headers(), EVENT_BODY, now=NOW, app_id=APP_ID)

    def test_good_with_path_and_query_as_received(self) -> None:
        verify_notification(SECRET, "POST", "/bank/notify?a=1&tenant=t+1", notification_headers(), EVENT_BODY,
                            now=NOW)

    @pytest.mark.parametrize("skew", [-300, 300])
    def test_timestamp_within_tolerance(self, skew: int) -> None:
        verify_notification(SECRET, "POST", CALLBACK, notification_headers(), EVENT_BODY, now=NOW + skew)

    @pytest.mark.parametrize("skew", [-301, 301, 3600])
    def test_stale_or_future_timestamp(self, skew: int) -> None:
        with pytest.raises(SignatureError, match="300 s"):
            verify_notification(SECRET, "POST", CALLBACK, notification_headers(), EVENT_BODY, now=NOW + skew)

    def test_stale_even_when_correctly_signed_for_then(self) -> None:
        old = NOW - 3600
        with pytest.raises(SignatureError):
            verify_notification(SECRET, "POST", CALLBACK, notification_headers(timestamp=old), EVENT_BODY, now=NOW)

    def test_custom_tolerance(self) -> None:
        verify_notification(SECRET, "POST", CALLBACK, notification_headers(), EVENT_BODY, NOW + 500, 600)

    def test_tampered_body(self) -> None:
        tampered = EVENT_BODY.replace(b'"active"', b'"unbound"')
        with pytest.raises(SignatureError, match="signature"):
            verify_notification(SECRET, "POST", CALLBACK, notification_headers(), tampered, now=NOW)

    def test_wrong_secret(self) -> None:
        headers = notification_headers(secret="sk_not-the-partner-secret")
        with pytest.raises(SignatureError):
            verify_notification(SECRET, "POST", CALLBACK, headers, EVENT_BODY, now=NOW)

    @pytest.mark.parametrize("url", [
        "https://partner.example/bank/other?tenant=t%201&a=1",
        "https://partner.example/bank/notify?tenant=t%202&a=1",
        "https://partner.example/bank/notify",
    ])
    def test_wrong_url(self, url: str) -> None:
        with pytest.raises(SignatureError):
            verify_notification(SECRET, "POST", url, notification_headers(), EVENT_BODY, now=NOW)

    def test_wrong_method(self) -> None:
        with pytest.raises(SignatureError):
            verify_notification(SECRET, "PUT", CALLBACK, notification_headers(), EVENT_BODY, now=NOW)

    def test_another_partners_app_id(self) -> None:
        with pytest.raises(SignatureError, match="X-App-Id"):
            verify_notification(SECRET, "POST", CALLBACK, notification_headers(), EVENT_BODY, now=NOW,
                                app_id="pt0000000000000000")

    @pytest.mark.parametrize("drop", ["X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature"])
    def test_missing_header(self, drop: str) -> None:
        headers = notification_headers()
        del headers[drop]
        with pytest.raises(SignatureError, match=drop):
            verify_notification(SECRET, "POST", CALLBACK, headers, EVENT_BODY, now=NOW)

    @pytest.mark.parametrize(("name", "value"), [
        ("X-Timestamp", "1764460800.5"), ("X-Timestamp", "-1"), ("X-Timestamp", ""),
        ("X-Nonce", "short"), ("X-Nonce", "with space 0123456789"),
    ])
    def test_malformed_header(self, name: str, value: str) -> None:
        headers = notification_headers() | {name: value}
        with pytest.raises(SignatureError):
            verify_notification(SECRET, "POST", CALLBACK, headers, EVENT_BODY, now=NOW)

    def test_parse(self) -> None:
        event = parse_notification(SECRET, "POST", CALLBACK, notification_headers(), EVENT_BODY, now=NOW,
                                   app_id=APP_ID)
        assert event == Notification(event_id="ev_0001", type="binding.activated",
                                     occurred_at="2026-11-30T08:00:00+08:00", data=EVENT["data"], app_id=APP_ID)
        assert event.raw == EVENT

    def test_parse_accepts_the_previous_secret(self) -> None:
        headers = notification_headers(secret="sk_old-secret")
        event = parse_notification(["sk_new-secret", "sk_old-secret"], "POST", CALLBACK, headers, EVENT_BODY,
                                   now=NOW)
        assert event.event_id == "ev_0001"

    def test_parse_verifies_first(self) -> None:
        with pytest.raises(SignatureError):
            parse_notification(SECRET, "POST", CALLBACK, notification_headers(), EVENT_BODY + b" ", now=NOW)

    @pytest.mark.parametrize("body", [b"not json", b"[]", b'{"event_id":"ev_1"}',
                                      b'{"event_id":"e","type":"t","occurred_at":"o","data":[]}'])
    def test_parse_malformed_but_signed(self, body: bytes) -> None:
        with pytest.raises(ProtocolError):
            parse_notification(SECRET, "POST", CALLBACK, notification_headers(body=body), body, now=NOW)
