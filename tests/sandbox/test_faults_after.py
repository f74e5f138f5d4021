"""Extended fault injection: when before/after, drop, body; on WeChat APIs and on the card network.

The point of ``when: "after"``: the one-shot work (a login code or phone code consumed, a message
recorded, a face session created) is done and committed, and only the reply is lost, late or wrong,
so a client that retries blindly after a read timeout gets 40163/40029 or sends twice."""

from __future__ import annotations

import secrets
import sqlite3
import time

import httpx
import pytest

from sandbox.config import DEFAULT_SUBSCRIBE_TEMPLATES
from sandbox.state import State
from tests.sandbox.support import APPID, CARDNET_KEY, SECRET, assert_wx_error
from tests.sandbox.test_face_subscribe import CERT, independent_cert_hash

CARD = {"card_number": "6222020200112233446", "name": "张三", "id_number": "11010119900307123X",
        "phone": "13812345678", "card_class": "II"}


@pytest.fixture(autouse=True)
def clear_faults(sb):
    assert sb.control("DELETE", "faults").status_code == 200
    yield
    sb.control("DELETE", "faults")


def fault(sb, **body) -> dict:
    r = sb.control("POST", "faults", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def code2session_raw(sb, code: str, timeout: float = 30) -> httpx.Response:
    return httpx.get(
        f"{sb.sb.wechat}/sns/jscode2session",
        params={"appid": APPID, "secret": SECRET, "js_code": code, "grant_type": "authorization_code"},
        timeout=timeout,
    )


# -- WeChat APIs -----------------------------------------------------------------------------------


def test_dropped_reply_after_login_code_was_consumed(sb):
    created = fault(sb, path="sns/jscode2session", when="after", drop=True)
    assert created["when"] == "after" and created["drop"] is True and created["errcode"] is None
    code = sb.login_code()["code"]
    with pytest.raises(httpx.RemoteProtocolError):
        code2session_raw(sb, code)
    # the code was consumed by the call whose reply was lost: a blind retry gets 40163
    assert_wx_error(sb.code2session(code), 40163)
    calls = sb.calls("sns/jscode2session")[-2:]
    assert [(c["http_status"], c["errcode"]) for c in calls] == [(0, 0), (200, 40163)]


def test_dropped_connection_before_does_no_work(sb):
    fault(sb, path="sns/jscode2session", drop=True)
    code = sb.login_code()["code"]
    with pytest.raises(httpx.RemoteProtocolError):
        code2session_raw(sb, code)
    assert "openid" in sb.code2session(code)
    assert [(c["http_status"], c["errcode"]) for c in sb.calls("sns/jscode2session")[-2:]] == [(0, None), (200, 0)]


def test_late_reply_after_phone_code_was_consumed(sb):
    token = sb.token()
    code = sb.phone_code("13911112222")
    fault(sb, path="wxa/business/getuserphonenumber", when="after", delay_s=1.5)
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sb.sb.wechat}/wxa/business/getuserphonenumber", params={"access_token": token},
                   json={"code": code}, timeout=httpx.Timeout(5, read=0.4))
    assert time.monotonic() - t0 < 1.4
    # the client gave up, but WeChat had done the work
    assert_wx_error(sb.wx_post("wxa/business/getuserphonenumber", token, {"code": code}), 40029)
    logged = sb.calls("wxa/business/getuserphonenumber")[-2:]
    assert [(c["http_status"], c["errcode"]) for c in logged] == [(200, 0), (200, 40029)]


def test_late_reply_after_is_the_real_one(sb):
    code = sb.login_code()["code"]
    fault(sb, path="sns/jscode2session", when="after", delay_s=1.0)
    t0 = time.monotonic()
    body = sb.code2session(code)
    assert time.monotonic() - t0 >= 0.95 and "openid" in body


def test_http_status_after_work(sb):
    token = sb.token()
    code = sb.phone_code("13911113333")
    fault(sb, path="wxa/business/getuserphonenumber", when="after", http_status=502)
    r = sb.http.post(f"{sb.sb.wechat}/wxa/business/getuserphonenumber", params={"access_token": token},
                     json={"code": code})
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/plain")
    assert_wx_error(sb.wx_post("wxa/business/getuserphonenumber", token, {"code": code}), 40029)


def test_errcode_after_work(sb):
    code = sb.login_code()["code"]
    fault(sb, path="sns/jscode2session", when="after", errcode=-1)
    assert_wx_error(sb.code2session(code), -1)
    assert_wx_error(sb.code2session(code), 40163)


def test_subscribe_message_sent_once_although_reply_dropped(sb):
    token = sb.token()
    openid = sb.login_code()["openid"]
    template = DEFAULT_SUBSCRIBE_TEMPLATES[0]
    data = {k: {"value": "1" if k.startswith("character_string") else ("12:00" if k.startswith("time") else "通知")}
            for k in template.keywords}
    sb.subscribe(openid, template.template_id)
    fault(sb, path="cgi-bin/message/subscribe/send", when="after", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{sb.sb.wechat}/cgi-bin/message/subscribe/send", params={"access_token": token},
                   json={"touser": openid, "template_id": template.template_id, "data": data}, timeout=30)
    msgs = sb.control("GET", "subscribe-messages", params={"touser": openid}).json()["messages"]
    assert len(msgs) == 1 and msgs[0]["template_id"] == template.template_id


def test_body_before_replaces_the_answer(sb):
    token = sb.token()
    openid = sb.login_code()["openid"]
    out = "seq_" + secrets.token_hex(8)
    verify_id = sb.wx_post("cityservice/face/identify/getverifyid", token,
                           {"out_seq_no": out, "cert_info": CERT, "openid": openid})["verify_id"]
    sb.control("POST", f"face/{verify_id}", json={"result": "pass"})
    query = {"verify_id": verify_id, "out_seq_no": out, "openid": openid, "cert_hash": independent_cert_hash(**CERT)}
    fault(sb, path="cityservice/face/identify/queryverifyinfo", body={"errcode": 0, "errmsg": "ok"})
    assert sb.wx_post("cityservice/face/identify/queryverifyinfo", token, query) == {"errcode": 0, "errmsg": "ok"}
    assert sb.wx_post("cityservice/face/identify/queryverifyinfo", token, query)["verify_ret"] == 10000
    assert sb.calls("cityservice/face/identify/queryverifyinfo")[-2]["errcode"] == 0


def test_body_after_work_is_done(sb):
    token = sb.token()
    openid = sb.login_code()["openid"]
    out = "seq_" + secrets.token_hex(8)
    fault(sb, path="cityservice/face/identify/getverifyid", when="after",
          body={"errcode": -1, "errmsg": "system error", "note": ["any", "json"]})
    request = {"out_seq_no": out, "cert_info": CERT, "openid": openid}
    body = sb.wx_post("cityservice/face/identify/getverifyid", token, request)
    assert body == {"errcode": -1, "errmsg": "system error", "note": ["any", "json"]}
    # the session was created all the same: the same out_seq_no is now a duplicate
    assert_wx_error(sb.wx_post("cityservice/face/identify/getverifyid", token, request), 47003)
    # with when=before the work is not done
    out2 = "seq_" + secrets.token_hex(8)
    fault(sb, path="cityservice/face/identify/getverifyid", body={"errcode": 0, "errmsg": "ok"})
    assert sb.wx_post("cityservice/face/identify/getverifyid", token, {**request, "out_seq_no": out2}) == \
        {"errcode": 0, "errmsg": "ok"}
    assert sb.wx_post("cityservice/face/identify/getverifyid", token, {**request, "out_seq_no": out2})["errcode"] == 0


def test_fault_list_shows_new_fields(sb):
    fault(sb, path="cgi-bin/token", when="after", delay_s=0.5, count=2)
    fault(sb, path="cgi-bin/token", body={"errcode": 0, "errmsg": "ok"})
    listed = sb.control("GET", "faults").json()["faults"]
    assert [(f["when"], f["drop"], f["body"], f["delay_s"], f["remaining"]) for f in listed] == [
        ("after", False, None, 0.5, 2), ("before", False, {"errcode": 0, "errmsg": "ok"}, None, 1)]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"path": "cgi-bin/token", "errcode": 1, "when": "later"}, "when"),
        ({"path": "cgi-bin/token", "errcode": 1, "when": None}, "when"),
        ({"path": "cgi-bin/token", "drop": "yes"}, "drop"),
        ({"path": "cgi-bin/token", "drop": 1}, "drop"),
        ({"path": "cgi-bin/token", "body": [1, 2]}, "body"),
        ({"path": "cgi-bin/token", "body": "ok"}, "body"),
        ({"path": "cgi-bin/token", "body": {"x": "y" * 70000}}, "body"),
        ({"path": "cgi-bin/token", "body": {}, "errcode": 1}, "body"),
        ({"path": "cgi-bin/token", "drop": True, "http_status": 500}, "drop"),
        ({"path": "cgi-bin/token", "drop": True, "body": {}}, "drop"),
        ({"path": "cgi-bin/token", "drop": False}, None),
        ({"path": "cgi-bin/token", "when": "after"}, None),
        ({"path": "cgi-bin/token", "errcode": 1, "colour": "red"}, "colour"),
        ({"path": "cgi-bin/token", "delay_s": 0}, "delay_s"),
        ({"path": "cardnet/v1/verify-elements", "errcode": 1, "when": "after"}, "errcode"),
    ],
)
def test_fault_validation(sb, body, field):
    r = sb.control("POST", "faults", json=body)
    assert r.status_code == 400, body
    assert r.json()["code"] == "INVALID_REQUEST" and r.json().get("field") == field, r.json()
    assert sb.control("GET", "faults").json()["faults"] == []


# -- card network ----------------------------------------------------------------------------------


def verify(sb, body, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{sb.sb.cardnet}/v1/verify-elements", json=body,
                      headers={"Authorization": f"Bearer {CARDNET_KEY}"}, timeout=timeout)


def request_body(**overrides) -> dict:
    body = {"request_id": "req-" + secrets.token_hex(8), "name": CARD["name"], "id_number": CARD["id_number"],
            "card_number": CARD["card_number"], "phone": CARD["phone"]}
    return {**body, **overrides}


@pytest.fixture
def card(sb):
    assert sb.control("POST", "bank-cards", json=CARD).status_code == 201
    yield CARD
    sb.control("POST", "bank-cards", json=CARD)


def test_cardnet_after_faults_store_the_answer(sb, card):
    first = request_body()
    fault(sb, path="cardnet/v1/verify-elements", when="after", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        verify(sb, first)
    second = request_body()
    fault(sb, path="cardnet/v1/verify-elements", when="after", http_status=504)
    assert verify(sb, second).status_code == 504
    third = request_body()
    fault(sb, path="cardnet/v1/verify-elements", when="after", delay_s=1.5)
    with pytest.raises(httpx.ReadTimeout):
        verify(sb, third, timeout=0.4)
    # the card changes now; the answers computed during the faulted calls were stored
    sb.control("POST", "bank-cards", json={**CARD, "phone": "13700000000", "card_class": "credit"})
    for body in (first, second, third):
        answer = verify(sb, body).json()
        assert answer["result"] == "MATCH" and answer["card_class"] == "II", answer
    assert verify(sb, request_body()).json()["result"] == "MISMATCH"
    statuses = [c["http_status"] for c in sb.calls("cardnet/v1/verify-elements")]
    assert statuses[-7:-4] == [0, 504, 200] and all(c["errcode"] is None for c in sb.calls("cardnet/v1/verify-elements"))


def test_cardnet_before_faults_do_no_work(sb, card):
    body = request_body()
    fault(sb, path="cardnet/v1/verify-elements", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        verify(sb, body)
    fault(sb, path="cardnet/v1/verify-elements", body={"request_id": body["request_id"], "result": "WEIRD"})
    r = verify(sb, body)
    assert r.status_code == 200 and r.json() == {"request_id": body["request_id"], "result": "WEIRD"}
    sb.control("POST", "bank-cards", json={**CARD, "card_class": "III"})
    # nothing was stored for this request_id: the real answer is computed now
    assert verify(sb, body).json()["card_class"] == "III"


async def test_state_file_of_an_older_sandbox_gets_the_new_fault_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the faults table as the first release created it
        db.execute("CREATE TABLE faults (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, errcode INTEGER, "
                   "http_status INTEGER, delay_s REAL, remaining INTEGER NOT NULL, created_at REAL NOT NULL)")
        db.execute("INSERT INTO faults (path, errcode, remaining, created_at) VALUES ('cgi-bin/token', 45009, 1, 0)")
    state = State(str(path))
    await state.open()
    try:
        fault = await state.take_fault("cgi-bin/token")
        assert (fault.when, fault.errcode, fault.drop, fault.body) == ("before", 45009, False, None)
    finally:
        await state.close()
