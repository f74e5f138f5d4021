"""Malformed control-API bodies: each answers 400 in the sandbox's error shape, naming the field when
there is one, and changes nothing (the bodies are pydantic models, sandbox/control_kit.py)."""

from __future__ import annotations

import json

import pytest

from sandbox import push
from tests.sandbox.support import APPID
from tests.sandbox.test_wechatpay_emulator import AES_KEY, TOKEN, Receiver

CARD = "6222020200112233446"
ID_FRONT = {"side": "front", "name": "张三", "id_number": "11010119900307123X", "valid_until": "20350101"}
PUSH = {"url": "http://127.0.0.1:9/push", "token": TOKEN, "message": {"MsgType": "event"}}
NAME_MESSAGE = "name must be a non-empty string of at most 32 characters"
URL_MESSAGE = "url must be an http(s) URL"
TOKEN_MESSAGE = "token must be 3-32 letters or digits (WeChat's rule for the Token)"
MESSAGE_MESSAGE = "message must be a non-empty JSON object of at most 65536 bytes"


def assert_refused(r, field):
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "INVALID_REQUEST" and body["message"], body
    assert body.get("field") == field, body
    assert set(body) <= {"code", "message", "field"}, body


@pytest.mark.parametrize("path", ["login-code", "pay/settings", "faults", "bank-cards", "partners", "settings",
                                  "id-card-images", "push", "push/verify", "subscribe-templates", "pages"])
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


def without(body: dict, field: str) -> dict:
    return {k: v for k, v in body.items() if k != field}


@pytest.mark.parametrize(
    "path,body,field,message",
    [
        # id-card-images: unknown, missing, wrong type, out of range; the message the old validator gave
        ("id-card-images", {**ID_FRONT, "colour": "red"}, "colour", None),
        ("id-card-images", without(ID_FRONT, "side"), "side", "side must be 'front' or 'back'"),
        ("id-card-images", {**ID_FRONT, "side": "FRONT"}, "side", "side must be 'front' or 'back'"),
        ("id-card-images", without(ID_FRONT, "name"), "name", NAME_MESSAGE),
        ("id-card-images", {**ID_FRONT, "name": 5}, "name", NAME_MESSAGE),
        ("id-card-images", {**ID_FRONT, "name": "  "}, "name", NAME_MESSAGE),
        ("id-card-images", {**ID_FRONT, "name": "张" * 33}, "name", NAME_MESSAGE),
        ("id-card-images", {**ID_FRONT, "id_number": 110101199003071234}, "id_number",
         "id_number must be 17 digits followed by a digit or X"),
        ("id-card-images", {**ID_FRONT, "id_number": "11010119900307123Y"}, "id_number",
         "id_number must be 17 digits followed by a digit or X"),
        ("id-card-images", without(ID_FRONT, "valid_until"), "valid_until", "valid_until must be YYYYMMDD or 长期"),
        ("id-card-images", {**ID_FRONT, "valid_until": 20350101}, "valid_until", "valid_until must be YYYYMMDD or 长期"),
        ("id-card-images", {**ID_FRONT, "valid_until": "20350230"}, "valid_until", "valid_until is not a real date"),
        ("id-card-images", {**ID_FRONT, "valid_from": "2015"}, "valid_from", "valid_from must be YYYYMMDD"),
        ("id-card-images", {**ID_FRONT, "valid_from": True}, "valid_from", "valid_from must be YYYYMMDD"),
        ("id-card-images", {**ID_FRONT, "valid_from": "20150229"}, "valid_from", "valid_from is not a real date"),
        ("id-card-images", {**ID_FRONT, "address": "路" * 81}, "address",
         "address must be a non-empty string of at most 80 characters"),
        ("id-card-images", {**ID_FRONT, "address": " "}, "address",
         "address must be a non-empty string of at most 80 characters"),
        ("id-card-images", {**ID_FRONT, "nationality": None}, "nationality",  # null is not the default
         "nationality must be a short non-empty string"),
        ("id-card-images", {**ID_FRONT, "nationality": "汉" * 9}, "nationality",
         "nationality must be a short non-empty string"),
        ("id-card-images", {**ID_FRONT, "authority": ""}, "authority", "authority must be a short non-empty string"),
        ("id-card-images", {**ID_FRONT, "format": "gif"}, "format", "format must be 'png' or 'jpeg'"),
        # push
        ("push", {**PUSH, "extra": 1}, "extra",
         "unknown field; the fields are url, token, mode, encoding_aes_key, appid, format, message"),
        ("push", without(PUSH, "url"), "url", URL_MESSAGE),
        ("push", {**PUSH, "url": 5}, "url", URL_MESSAGE),
        ("push", {**PUSH, "url": "ftp://127.0.0.1/push"}, "url", URL_MESSAGE),
        ("push", {**PUSH, "url": "http://"}, "url", URL_MESSAGE),
        ("push", {**PUSH, "url": "http://x/" + "a" * 2048}, "url", URL_MESSAGE),
        ("push", without(PUSH, "token"), "token", TOKEN_MESSAGE),
        ("push", {**PUSH, "token": "ab"}, "token", TOKEN_MESSAGE),
        ("push", {**PUSH, "mode": True}, "mode", "mode must be 'plain' or 'safe'"),
        ("push", {**PUSH, "mode": "safe"}, "encoding_aes_key", "encoding_aes_key is required in safe mode"),
        ("push", {**PUSH, "mode": "safe", "encoding_aes_key": None}, "encoding_aes_key",
         "encoding_aes_key is required in safe mode"),
        ("push", {**PUSH, "encoding_aes_key": AES_KEY[:-1] + "="}, "encoding_aes_key",
         "encoding_aes_key must be 43 characters of A-Z a-z 0-9 + /"),
        ("push", {**PUSH, "appid": None}, "appid", "appid must be 1-32 characters of A-Z a-z 0-9 _ -"),
        ("push", {**PUSH, "appid": "wx app"}, "appid", "appid must be 1-32 characters of A-Z a-z 0-9 _ -"),
        ("push", {**PUSH, "format": "yaml"}, "format", "format must be 'json' or 'xml'"),
        ("push", without(PUSH, "message"), "message", MESSAGE_MESSAGE),
        ("push", {**PUSH, "message": [1]}, "message", MESSAGE_MESSAGE),
        ("push", {**PUSH, "message": {}}, "message", MESSAGE_MESSAGE),
        ("push", {**PUSH, "message": {"x": "y" * 65536}}, "message", MESSAGE_MESSAGE),
        ("push", {**PUSH, "message": {"1st": 1}}, "message",
         "message keys must be XML-safe names (letters, digits, _ . -)"),
        # push/verify
        ("push/verify", {**without(PUSH, "message"), "mode": "plain"}, "mode", "unknown field; the fields are url, token"),
        ("push/verify", {"url": PUSH["url"]}, "token", TOKEN_MESSAGE),
        ("push/verify", {"url": ["http://x"], "token": TOKEN}, "url", URL_MESSAGE),
        ("push/verify", {}, "url", URL_MESSAGE),
    ],
)
def test_a_converted_body_is_refused_as_before(sb, path, body, field, message):
    r = sb.control("POST", path, json=body)
    assert_refused(r, field)
    if message is None:
        assert r.json()["message"].startswith("unknown field"), r.json()
    else:
        assert r.json()["message"] == message


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_a_refused_push_sends_nothing(sb, receiver):
    for path, body in (("push", {**PUSH, "mode": "safe"}), ("push", {**PUSH, "extra": 1}),
                       ("push", {**PUSH, "message": {}}), ("push/verify", {**without(PUSH, "message"), "x": 1})):
        assert sb.control("POST", path, json={**body, "url": receiver.url("/refused")}).status_code == 400
    assert receiver.at("/refused") == []
    assert sb.control("POST", "push", json={**PUSH, "url": receiver.url("/refused")}).json()["accepted"] is True
    assert len(receiver.at("/refused")) == 1  # the receiver does record what reaches it


def test_a_push_without_appid_is_for_the_configured_app(sb, receiver):
    r = sb.control("POST", "push", json={**PUSH, "url": receiver.url("/safe"), "mode": "safe", "encoding_aes_key": AES_KEY})
    assert r.status_code == 200, r.text
    encrypted = json.loads(receiver.at("/safe")[-1].body)["Encrypt"]
    message, appid = push.decrypt(AES_KEY, encrypted)
    assert appid == APPID and json.loads(message)["MsgType"] == "event"
