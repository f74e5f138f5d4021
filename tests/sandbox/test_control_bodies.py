"""Malformed control-API bodies: each answers 400 in the sandbox's error shape, naming the field when
there is one, and changes nothing (the bodies are pydantic models, sandbox/control_kit.py)."""

from __future__ import annotations

import pytest

CARD = "6222020200112233446"


def assert_refused(r, field):
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "INVALID_REQUEST" and body["message"], body
    assert body.get("field") == field, body
    assert set(body) <= {"code", "message", "field"}, body


@pytest.mark.parametrize("path", ["login-code", "pay/settings", "faults", "bank-cards", "partners", "settings",
                                  "subscribe-templates", "pages"])
@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object(sb, path, content):
    r = sb.control("POST", path, content=content, headers={"content-type": "application/json"})
    assert_refused(r, None)


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("login-code", {"expires_in": True}, "expires_in"),  # true is not 1
        ("login-code", {"expires_in": "60"}, "expires_in"),  # nor "60" 60
        ("phone-code", {"phone": 13812345678}, "phone"),
        ("face/nope", {"result": "pass", "expires_in": -1}, "expires_in"),
        ("bank-cards", {"card_number": CARD, "name": "张三", "id_number": "11010119900307123X",
                        "phone": "13812345678", "card_class": "I", "balance_fen": "100"}, "balance_fen"),
        ("bank-cards", {"card_number": CARD, "name": "   ", "id_number": "11010119900307123X",
                        "phone": "13812345678", "card_class": "I"}, "name"),
        (f"bank-cards/{CARD}/balance", {"balance_fen": 1.5}, "balance_fen"),
        (f"bank-cards/{CARD}/balance", {}, "balance_fen"),
        ("faults", {"path": "cgi-bin/token", "delay_s": True}, "delay_s"),
        ("faults", {"path": ["cgi-bin/token"], "http_status": 503}, "path"),
        ("pay/settings", {"retry_schedule_s": [1, "2"]}, "retry_schedule_s"),
        ("pay/settings", {"notify_timeout_s": 0}, "notify_timeout_s"),
        ("pay/settings", {"retry": [1]}, "retry"),  # a typo is not a no-op
        ("pay/merchants", {"mchid": "19000000x1"}, "mchid"),
        ("pay/wx-no-such-order", {}, "result"),  # the body is read before the order is looked up
        ("pay/wx-no-such-order", {"result": "SUCCESS", "notify": "send", "delay_s": 1}, "delay_s"),
        ("pay/notifications/EV-nope/redeliver", {"count": 0}, "count"),
        ("pay/notifications/EV-nope/redeliver", {"tamper": "everything"}, "tamper"),
        ("partners", {"app_id": "pt0123456789abcdef", "secret": None}, "secret"),
        ("signature-image", {"text": None}, "text"),
        ("settings", {"stable_token_daily_force_limit": -1}, "stable_token_daily_force_limit"),
        ("subscribe-templates", {"template_id": "T", "title": 1, "keywords": {"thing1": "x"}}, "title"),
        ("subscribe-templates", {"template_id": "T", "title": "t", "keywords": {"thing1": 5}}, "keywords"),
        ("subscribe-templates", {"template_id": "T", "title": "t", "keywords": {"thing1": "x"}, "appid": ["wx"]},
         "appid"),
        ("pages", {"pages": [None]}, "pages"),
    ],
)
def test_a_field_that_does_not_fit(sb, path, body, field):
    assert_refused(sb.control("POST", path, json=body), field)


def test_refused_bodies_change_nothing(sb):
    before = sb.control("GET", "pay/settings").json()
    assert_refused(sb.control("POST", "pay/settings", json={"refund_delay_s": 0, "notify_timeout_s": 61}),
                   "notify_timeout_s")
    assert sb.control("GET", "pay/settings").json() == before
    assert sb.control("GET", f"bank-cards/{CARD}").status_code == 404
