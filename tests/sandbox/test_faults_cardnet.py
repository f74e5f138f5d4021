"""Fault injection and the card-check network against a real sandbox server."""

from __future__ import annotations

import time

import pytest

from tests.sandbox.support import APPID, CARDNET_KEY, SECRET, assert_wx_error


@pytest.fixture(autouse=True)
def clear_faults(sb):
    assert sb.control("DELETE", "faults").status_code == 200
    yield
    sb.control("DELETE", "faults")


def stable(sb, **extra):
    r = sb.http.post(
        f"{sb.sb.wechat}/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": APPID, "secret": SECRET, **extra},
    )
    return r


def test_errcode_fault_answers_n_times_then_normal(sb):
    r = sb.control("POST", "faults", json={"path": "cgi-bin/stable_token", "errcode": 45011, "count": 2})
    assert r.status_code == 201 and r.json()["count"] == 2
    for _ in range(2):
        resp = stable(sb)
        assert resp.status_code == 200
        assert_wx_error(resp.json(), 45011)
    assert "access_token" in stable(sb).json()
    calls = sb.calls("cgi-bin/stable_token")
    assert [c["errcode"] for c in calls[-3:]] == [45011, 45011, 0]


def test_fault_does_not_consume_code(sb):
    sb.control("POST", "faults", json={"path": "/sandbox/wechat/sns/jscode2session", "errcode": -1})
    code = sb.login_code()["code"]
    assert_wx_error(sb.code2session(code), -1)
    assert "openid" in sb.code2session(code)


def test_http_status_fault(sb):
    sb.control("POST", "faults", json={"path": "wxa/business/getuserphonenumber", "http_status": 500})
    token = sb.token()
    code = sb.phone_code("13811112222")
    r = sb.http.post(f"{sb.sb.wechat}/wxa/business/getuserphonenumber",
                     params={"access_token": token}, json={"code": code})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/plain")
    assert sb.calls("wxa/business/getuserphonenumber")[-1]["http_status"] == 500
    # next call is normal and the code was not consumed by the faulted call
    assert sb.wx_post("wxa/business/getuserphonenumber", token, {"code": code})["errcode"] == 0


def test_delay_fault(sb):
    sb.control("POST", "faults", json={"path": "cgi-bin/token", "delay_s": 1.0})
    t0 = time.monotonic()
    token = sb.token()
    slow = time.monotonic() - t0
    t0 = time.monotonic()
    sb.token()
    fast = time.monotonic() - t0
    assert token and slow >= 0.95 and fast < 0.9


def test_fault_list_and_validation(sb):
    sb.control("POST", "faults", json={"path": "cgi-bin/token", "errcode": 40013, "count": 3})
    listed = sb.control("GET", "faults").json()["faults"]
    assert [(f["path"], f["errcode"], f["remaining"]) for f in listed] == [("cgi-bin/token", 40013, 3)]
    for bad in (
        {"path": "no/such/api", "errcode": 1},
        {"path": "cgi-bin/token"},
        {"path": "cgi-bin/token", "errcode": 1, "http_status": 500},
        {"path": "cgi-bin/token", "http_status": 200},
        {"path": "cardnet/v1/verify-elements", "errcode": 1},
    ):
        r = sb.control("POST", "faults", json=bad)
        assert r.status_code == 400, bad
        assert r.json()["code"] == "INVALID_REQUEST"
    assert sb.control("DELETE", "faults").json()["deleted"] >= 1
    assert sb.control("GET", "faults").json()["faults"] == []


# -- card network --------------------------------------------------------------------------------

CARD = {"card_number": "6222020200112233446", "name": "张三", "id_number": "11010119900307123X",
        "phone": "13812345678", "card_class": "I", "balance_fen": 100_00}


def verify(sb, body, key=CARDNET_KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return sb.http.post(f"{sb.sb.cardnet}/v1/verify-elements", json=body, headers=headers)


def request_body(**overrides):
    body = {"request_id": "req-" + str(time.time_ns()), "name": CARD["name"], "id_number": CARD["id_number"],
            "card_number": CARD["card_number"], "phone": CARD["phone"]}
    body.update(overrides)
    return body


@pytest.fixture
def card(sb):
    r = sb.control("POST", "bank-cards", json=CARD)
    assert r.status_code == 201 and r.json() == {"card_number": CARD["card_number"]}
    return CARD


def test_cardnet_match(sb, card):
    body = request_body()
    r = verify(sb, body)
    assert r.status_code == 200
    assert r.json() == {"request_id": body["request_id"], "result": "MATCH", "mismatched_fields": [],
                        "card_class": "I", "bank_name": "沙箱银行"}
    # lower-case x in the ID number still matches
    assert verify(sb, request_body(id_number=CARD["id_number"].lower())).json()["result"] == "MATCH"


def test_cardnet_mismatch(sb, card):
    r = verify(sb, request_body(name="李四", phone="13900000000"))
    assert r.status_code == 200
    body = r.json()
    assert body["result"] == "MISMATCH" and body["mismatched_fields"] == ["name", "phone"]
    assert body["card_class"] == "I"
    body = verify(sb, request_body(id_number="110101199003071234")).json()
    assert body["result"] == "MISMATCH" and body["mismatched_fields"] == ["id_number"]


def test_cardnet_card_not_found(sb, card):
    body = verify(sb, request_body(card_number="6222020200000000006")).json()
    assert body["result"] == "CARD_NOT_FOUND" and body["card_class"] is None and body["mismatched_fields"] == []


@pytest.mark.parametrize("number", ["6222020200112233445", "6222020200000000000", "4111111111111112",
                                    "62220202001122334a6", "12345678901", "62220202001122334460"])
def test_cardnet_refuses_numbers_that_cannot_be_cards(sb, card, number):
    # the same request with a Luhn-valid number is fine (so only card_number is at fault)
    assert verify(sb, request_body()).status_code == 200
    r = verify(sb, request_body(card_number=number))
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "INVALID_REQUEST" and body["field"] == "card_number" and body["message"]
    assert set(body) == {"code", "message", "field"}


def test_cardnet_upsert_and_idempotency(sb, card):
    body = request_body()
    assert verify(sb, body).json()["result"] == "MATCH"
    sb.control("POST", "bank-cards", json={**CARD, "phone": "13600000000", "card_class": "credit"})
    try:
        fresh = verify(sb, request_body()).json()
        assert fresh["result"] == "MISMATCH" and fresh["card_class"] == "credit"
        # same request_id → same answer as the first time
        again = verify(sb, body).json()
        assert again["result"] == "MATCH" and again["card_class"] == "I"
    finally:
        sb.control("POST", "bank-cards", json=CARD)


def test_cardnet_auth_and_validation(sb, card):
    for key in (None, "wrong-key"):
        r = verify(sb, request_body(), key=key)
        assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED" and r.json()["message"]
    assert verify(sb, request_body(), key="second-cardnet-key").status_code == 200
    body = request_body()
    del body["phone"]
    r = verify(sb, body)
    assert r.status_code == 400
    assert r.json()["code"] == "INVALID_REQUEST" and r.json()["field"] == "phone" and r.json()["message"]
    r = sb.http.post(f"{sb.sb.cardnet}/v1/verify-elements", content=b"[1,2",
                     headers={"Authorization": f"Bearer {CARDNET_KEY}"})
    assert r.status_code == 400


def test_cardnet_faults(sb, card):
    sb.control("POST", "faults", json={"path": "cardnet/v1/verify-elements", "http_status": 503})
    assert verify(sb, request_body()).status_code == 503
    assert verify(sb, request_body()).status_code == 200
    calls = sb.calls("cardnet/v1/verify-elements")
    assert [c["http_status"] for c in calls[-2:]] == [503, 200]


def test_bank_card_validation(sb):
    for change, field in (({"card_number": "12ab"}, "card_number"), ({"card_class": "IV"}, "card_class"),
                          ({"phone": "123"}, "phone"), ({"balance_fen": -1}, "balance_fen"),
                          ({"card_number": "6222020200112233445"}, "card_number"),
                          ({"card_number": "4111111111111112"}, "card_number")):
        r = sb.control("POST", "bank-cards", json={**CARD, **change})
        assert r.status_code == 400 and r.json()["field"] == field, change
        assert r.json()["code"] == "INVALID_REQUEST"
    # well-known Luhn-valid test numbers are accepted
    for number in ("4111111111111111", "6228480012345678903"):
        r = sb.control("POST", "bank-cards", json={**CARD, "card_number": number})
        assert r.status_code == 201, r.text
