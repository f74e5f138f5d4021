"""Money movement on the emulated card network (``/sandbox/cardnet/v1/transfers``), its query, the
control routes around it (card balance, block, transfer log) and faults on both paths.

The point of the idempotency and fault tests: the backend pulls money from a user's card and must
never pull twice. A repeat of a request_id returns the first answer without moving money again, and
after a lost reply (``when: "after"``) the GET query tells what happened."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from urllib.parse import quote

import httpx
import pytest

from sandbox.state import State
from tests.sandbox.support import CARDNET_KEY
from tests.sandbox.test_control_openapi import DOC, schema_validator

AUTH = {"Authorization": f"Bearer {CARDNET_KEY}"}
HOLDER = {"name": "王五", "id_number": "11010119900307123X", "phone": "13812345678", "card_class": "I"}
TRANSFER_FIELDS = {"request_id", "status", "reason", "amount_fen", "direction", "card_balance_fen"}


def luhn_complete(prefix: str) -> str:
    """``prefix`` with the Luhn check digit appended (computed here, independently of the sandbox)."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        digit = int(ch)
        if i % 2 == 0:  # doubled once the check digit is appended
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return prefix + str((10 - total % 10) % 10)


def new_card_number() -> str:
    return luhn_complete("622202" + "".join(secrets.choice("0123456789") for _ in range(12)))


def new_request_id() -> str:
    return "tr-" + secrets.token_hex(8)


@pytest.fixture(autouse=True)
def clear_faults(sb):
    assert sb.control("DELETE", "faults").status_code == 200
    yield
    sb.control("DELETE", "faults")


@pytest.fixture
def card(sb):
    """A fresh card (its own number, so tests do not share balances) holding 100.00 yuan."""
    number = new_card_number()
    r = sb.control("POST", "bank-cards", json={**HOLDER, "card_number": number, "balance_fen": 100_00})
    assert r.status_code == 201, r.text
    return number


def post(sb, body: dict, *, headers: dict | None = AUTH, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{sb.sb.cardnet}/v1/transfers", json=body, headers=headers, timeout=timeout)


def query(sb, request_id: str, *, headers: dict | None = AUTH) -> httpx.Response:
    return httpx.get(f"{sb.sb.cardnet}/v1/transfers/{request_id}", headers=headers, timeout=30)


def transfer(card_number: str, direction: str = "debit", amount_fen: int = 30_00, **extra) -> dict:
    return {"request_id": new_request_id(), "card_number": card_number, "direction": direction,
            "amount_fen": amount_fen, **extra}


def balance(sb, card_number: str) -> int:
    r = sb.control("GET", f"bank-cards/{card_number}")
    assert r.status_code == 200, r.text
    return r.json()["balance_fen"]


def moved(sb, card_number: str) -> list[dict]:
    """The transfers of this card that really moved money."""
    r = sb.control("GET", "transfers", params={"card_number": card_number})
    assert r.status_code == 200, r.text
    return [t for t in r.json()["transfers"] if t["status"] == "SUCCEEDED"]


def fault(sb, **body) -> dict:
    r = sb.control("POST", "faults", json=body)
    assert r.status_code == 201, r.text
    return r.json()


# -- the transfer itself ---------------------------------------------------------------------------


def test_debit_and_credit_move_money(sb, card):
    debit = transfer(card, "debit", 30_00, memo="充值 top-up")
    r = post(sb, debit)
    assert r.status_code == 200
    assert r.json() == {"request_id": debit["request_id"], "status": "SUCCEEDED", "reason": None,
                        "amount_fen": 30_00, "direction": "debit", "card_balance_fen": 70_00}
    assert balance(sb, card) == 70_00
    credit = transfer(card, "credit", 12_34)
    assert post(sb, credit).json() == {"request_id": credit["request_id"], "status": "SUCCEEDED", "reason": None,
                                       "amount_fen": 12_34, "direction": "credit", "card_balance_fen": 82_34}
    # the whole balance may be taken
    assert post(sb, transfer(card, "debit", 82_34)).json()["card_balance_fen"] == 0
    log = sb.control("GET", "transfers", params={"card_number": card}).json()["transfers"]
    assert [(t["request_id"], t["direction"], t["amount_fen"], t["status"], t["reason"]) for t in log[:2]] == [
        (debit["request_id"], "debit", 30_00, "SUCCEEDED", None), (credit["request_id"], "credit", 12_34, "SUCCEEDED", None)]
    assert log[0]["memo"] == "充值 top-up" and log[1]["memo"] is None and log[0]["at"] <= log[1]["at"]
    assert len(log) == 3


def test_repeat_returns_the_first_answer_and_moves_money_once(sb, card):
    body = transfer(card, "debit", 10_00, memo="first")
    first = post(sb, body).json()
    assert first["status"] == "SUCCEEDED" and first["card_balance_fen"] == 90_00
    post(sb, transfer(card, "credit", 5_00))  # the balance changes meanwhile
    # the same body (a different memo is not a different request) gets the stored answer, unchanged
    for repeat in (body, {**body, "memo": "second"}, {k: v for k, v in body.items() if k != "memo"}):
        r = post(sb, repeat)
        assert r.status_code == 200 and r.json() == first
    assert query(sb, body["request_id"]).json() == first
    assert balance(sb, card) == 95_00
    assert [t["request_id"] for t in moved(sb, card)].count(body["request_id"]) == 1


@pytest.mark.parametrize("change", [{"direction": "credit"}, {"amount_fen": 10_01}, {"card_number": "other"}])
def test_reused_request_id_with_another_body_is_refused(sb, card, change):
    body = transfer(card, "debit", 10_00)
    first = post(sb, body).json()
    if change.get("card_number") == "other":
        other = new_card_number()
        sb.control("POST", "bank-cards", json={**HOLDER, "card_number": other, "balance_fen": 100_00})
        change = {"card_number": other}
    r = post(sb, {**body, **change})
    assert r.status_code == 409
    assert r.json()["code"] == "REQUEST_ID_REUSED" and r.json()["message"] and set(r.json()) == {"code", "message"}
    # nothing moved and the stored answer stays the first one
    assert balance(sb, card) == 90_00 and len(moved(sb, card)) == 1
    assert query(sb, body["request_id"]).json() == first
    assert post(sb, body).json() == first


async def test_concurrent_duplicates_move_money_once(sb, card):
    body = transfer(card, "debit", 40_00)
    async with httpx.AsyncClient(timeout=30, headers=AUTH) as http:
        responses = await asyncio.gather(*(http.post(f"{sb.sb.cardnet}/v1/transfers", json=body) for _ in range(20)))
    answers = [r.json() for r in responses]
    assert all(r.status_code == 200 for r in responses), answers
    assert all(a == answers[0] for a in answers), answers
    assert answers[0]["status"] == "SUCCEEDED" and answers[0]["card_balance_fen"] == 60_00
    assert balance(sb, card) == 60_00
    assert len(moved(sb, card)) == 1


async def test_concurrent_debits_never_overdraw(sb, card):
    bodies = [transfer(card, "debit", 15_00) for _ in range(12)]  # 180.00 asked of 100.00
    async with httpx.AsyncClient(timeout=30, headers=AUTH) as http:
        responses = await asyncio.gather(*(http.post(f"{sb.sb.cardnet}/v1/transfers", json=b) for b in bodies))
    answers = [r.json() for r in responses]
    assert sum(a["status"] == "SUCCEEDED" for a in answers) == 6
    assert {a["reason"] for a in answers if a["status"] == "DECLINED"} == {"INSUFFICIENT_FUNDS"}
    assert balance(sb, card) == 10_00
    assert sorted(a["card_balance_fen"] for a in answers if a["status"] == "SUCCEEDED") == \
        [10_00, 25_00, 40_00, 55_00, 70_00, 85_00]


def test_debit_beyond_balance_declines_and_changes_nothing(sb, card):
    body = transfer(card, "debit", 100_01)
    r = post(sb, body)
    assert r.status_code == 200
    assert r.json() == {"request_id": body["request_id"], "status": "DECLINED", "reason": "INSUFFICIENT_FUNDS",
                        "amount_fen": 100_01, "direction": "debit", "card_balance_fen": 100_00}
    assert balance(sb, card) == 100_00 and moved(sb, card) == []
    # a declined request_id stays declined (its answer is stored); a new request_id goes through
    sb.control("POST", f"bank-cards/{card}/balance", json={"balance_fen": 200_00})
    assert post(sb, body).json()["reason"] == "INSUFFICIENT_FUNDS"
    assert post(sb, {**body, "request_id": new_request_id()}).json()["card_balance_fen"] == 99_99
    # a credit is never short of funds
    assert post(sb, transfer(card, "credit", 10**12)).json()["status"] == "SUCCEEDED"


def test_blocked_card_declines_every_transfer(sb, card):
    r = sb.control("POST", f"bank-cards/{card}/block", json={"blocked": True})
    assert r.status_code == 200 and r.json()["blocked"] is True
    for direction in ("debit", "credit"):
        answer = post(sb, transfer(card, direction, 1)).json()
        assert (answer["status"], answer["reason"]) == ("DECLINED", "CARD_BLOCKED"), answer
    assert balance(sb, card) == 100_00 and moved(sb, card) == []
    assert sb.control("POST", f"bank-cards/{card}/block", json={"blocked": False}).json()["blocked"] is False
    assert post(sb, transfer(card, "debit", 1)).json()["status"] == "SUCCEEDED"
    # re-registering a card replaces it: unblocked, balance as given
    sb.control("POST", f"bank-cards/{card}/block", json={"blocked": True})
    sb.control("POST", "bank-cards", json={**HOLDER, "card_number": card, "balance_fen": 7})
    assert sb.control("GET", f"bank-cards/{card}").json() == {
        "card_number": card, "name": HOLDER["name"], "card_class": "I", "balance_fen": 7, "blocked": False}


def test_unknown_card_declines(sb):
    body = transfer(new_card_number(), "credit", 5)
    assert post(sb, body).json() == {"request_id": body["request_id"], "status": "DECLINED",
                                     "reason": "CARD_NOT_FOUND", "amount_fen": 5, "direction": "credit",
                                     "card_balance_fen": None}
    assert query(sb, body["request_id"]).json()["reason"] == "CARD_NOT_FOUND"


@pytest.mark.parametrize(
    "change,field",
    [
        ({"request_id": None}, "request_id"),
        ({"request_id": ""}, "request_id"),
        ({"request_id": 12}, "request_id"),
        ({"request_id": "x" * 65}, "request_id"),
        ({"card_number": None}, "card_number"),
        ({"card_number": 6222020200112233446}, "card_number"),
        ({"card_number": "6222020200112233445"}, "card_number"),  # fails the Luhn check
        ({"card_number": "62220202001122334a6"}, "card_number"),
        ({"card_number": "12345678901"}, "card_number"),
        ({"direction": None}, "direction"),
        ({"direction": "DEBIT"}, "direction"),
        ({"direction": "refund"}, "direction"),
        ({"amount_fen": None}, "amount_fen"),
        ({"amount_fen": 0}, "amount_fen"),
        ({"amount_fen": -1}, "amount_fen"),
        ({"amount_fen": True}, "amount_fen"),
        ({"amount_fen": 1.5}, "amount_fen"),
        ({"amount_fen": 100.0}, "amount_fen"),
        ({"amount_fen": "100"}, "amount_fen"),
        ({"amount_fen": 10**12 + 1}, "amount_fen"),
        ({"memo": "x" * 65}, "memo"),
        ({"memo": 5}, "memo"),
    ],
)
def test_malformed_transfer_is_refused(sb, card, change, field):
    body = {k: v for k, v in {**transfer(card), **change}.items() if v is not None}
    r = post(sb, body)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["code"] == "INVALID_REQUEST" and answer["field"] == field and answer["message"]
    assert set(answer) == {"code", "message", "field"}
    assert balance(sb, card) == 100_00
    assert sb.control("GET", "transfers", params={"card_number": card}).json()["transfers"] == []


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"request_id": " "}, "request_id", "request_id is required and must be a string"),
        ({"request_id": "x" * 65}, "request_id", "request_id is at most 64 characters"),
        ({"card_number": 6222020200112233446}, "card_number", "card_number is required and must be a string"),
        ({"card_number": "6222020200112233445"}, "card_number", "card_number must be 12-19 digits passing the Luhn check"),
        ({"direction": "DEBIT"}, "direction", "direction must be 'debit' or 'credit'"),
        ({"amount_fen": True}, "amount_fen", "amount_fen must be an integer in [1, 1000000000000]"),
        ({"memo": ["top-up"]}, "memo", "memo must be a string of at most 64 characters"),
    ],
)
def test_a_refused_transfer_says_why(sb, card, change, field, message):
    r = post(sb, {**transfer(card), **change})
    assert r.status_code == 400 and r.json() == {"code": "INVALID_REQUEST", "message": message, "field": field}


def test_unknown_fields_and_a_padded_card_number_are_accepted(sb, card):
    """As a network would: fields it does not know are ignored, and the card number is trimmed (the
    transfer is recorded under the card's own number)."""
    body = transfer(f" {card} ", "credit", 1, channel="mobile", memo=None)
    r = post(sb, body)
    assert r.status_code == 200 and r.json()["status"] == "SUCCEEDED", r.text
    assert [t["request_id"] for t in moved(sb, card)] == [body["request_id"]]


def test_body_that_is_not_a_json_object_is_refused(sb):
    for content in (b"", b"[1,2]", b"{nope", "金额".encode()):
        r = httpx.post(f"{sb.sb.cardnet}/v1/transfers", content=content, headers=AUTH, timeout=30)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST" and r.json()["message"], content


def test_bearer_key_is_required(sb, card):
    body = transfer(card)
    for headers in (None, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {CARDNET_KEY}"}):
        for r in (post(sb, body, headers=headers), query(sb, body["request_id"], headers=headers)):
            assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED" and r.json()["message"]
    assert balance(sb, card) == 100_00
    assert post(sb, body, headers={"Authorization": "Bearer second-cardnet-key"}).json()["status"] == "SUCCEEDED"


# -- the query -------------------------------------------------------------------------------------


def test_query(sb, card):
    r = query(sb, new_request_id())
    assert r.status_code == 404
    assert r.json()["code"] == "NOT_FOUND" and r.json()["message"] and set(r.json()) == {"code", "message"}
    # a request_id with characters that need escaping in the URL reads back all the same
    body = transfer(card, "credit", 1, request_id="充值/2024 #1?")
    answer = post(sb, body).json()
    r = httpx.get(f"{sb.sb.cardnet}/v1/transfers/{quote(body['request_id'], safe='')}", headers=AUTH, timeout=30)
    assert r.status_code == 200 and r.json() == answer
    # verify-elements has its own request_id space
    assert query(sb, "req-never-a-transfer").status_code == 404


# -- faults ----------------------------------------------------------------------------------------


def test_reply_dropped_after_the_money_moved(sb, card):
    created = fault(sb, path="cardnet/v1/transfers", when="after", drop=True)
    assert created["path"] == "cardnet/v1/transfers"
    body = transfer(card, "debit", 25_00)
    with pytest.raises(httpx.RemoteProtocolError):
        post(sb, body)
    # the backend saw nothing, but the money moved: the query says so
    r = query(sb, body["request_id"])
    assert r.status_code == 200
    assert r.json() == {"request_id": body["request_id"], "status": "SUCCEEDED", "reason": None,
                        "amount_fen": 25_00, "direction": "debit", "card_balance_fen": 75_00}
    # a repeat of the request gets the same answer without pulling twice
    assert post(sb, body).json() == r.json()
    assert balance(sb, card) == 75_00 and len(moved(sb, card)) == 1
    assert [c["http_status"] for c in sb.calls("cardnet/v1/transfers")[-2:]] == [0, 200]


def test_late_reply_after_the_money_moved(sb, card):
    fault(sb, path="cardnet/v1/transfers", when="after", delay_s=1.5)
    body = transfer(card, "credit", 1_00)
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post(sb, body, timeout=0.4)
    assert time.monotonic() - t0 < 1.4
    assert query(sb, body["request_id"]).json()["status"] == "SUCCEEDED"
    assert balance(sb, card) == 101_00


def test_error_status_after_the_money_moved(sb, card):
    fault(sb, path="cardnet/v1/transfers", when="after", http_status=504)
    body = transfer(card, "debit", 1_00)
    r = post(sb, body)
    assert r.status_code == 504 and r.headers["content-type"].startswith("text/plain")
    assert query(sb, body["request_id"]).json()["card_balance_fen"] == 99_00
    assert balance(sb, card) == 99_00


def test_error_status_before_moves_nothing(sb, card):
    fault(sb, path="/sandbox/cardnet/v1/transfers", http_status=503, count=2)
    body = transfer(card, "debit", 1_00)
    for _ in range(2):
        assert post(sb, body).status_code == 503
    assert query(sb, body["request_id"]).status_code == 404
    assert balance(sb, card) == 100_00
    # the network is back: the same request_id is done once
    assert post(sb, body).json()["status"] == "SUCCEEDED"
    assert post(sb, body).json()["card_balance_fen"] == 99_00
    assert balance(sb, card) == 99_00
    assert [c["http_status"] for c in sb.calls("cardnet/v1/transfers")[-4:]] == [503, 503, 200, 200]


def test_client_gone_during_a_delay_before_moves_nothing(sb, card):
    fault(sb, path="cardnet/v1/transfers", delay_s=1.0)
    body = transfer(card, "debit", 1_00)
    with pytest.raises(httpx.ReadTimeout):
        post(sb, body, timeout=0.3)
    time.sleep(1.3)  # past the delay: a handler that was not cancelled would have moved the money by now
    assert query(sb, body["request_id"]).status_code == 404
    assert balance(sb, card) == 100_00 and moved(sb, card) == []


def test_delay_before_with_a_patient_client_is_just_slow(sb, card):
    fault(sb, path="cardnet/v1/transfers", delay_s=0.8)
    t0 = time.monotonic()
    assert post(sb, transfer(card, "debit", 1_00)).json()["status"] == "SUCCEEDED"
    assert time.monotonic() - t0 >= 0.75
    assert balance(sb, card) == 99_00


def test_dropped_before_moves_nothing(sb, card):
    fault(sb, path="cardnet/v1/transfers", drop=True)
    body = transfer(card, "debit", 1_00)
    with pytest.raises(httpx.RemoteProtocolError):
        post(sb, body)
    assert query(sb, body["request_id"]).status_code == 404 and balance(sb, card) == 100_00


def test_faults_on_the_query(sb, card):
    body = transfer(card, "debit", 1_00)
    answer = post(sb, body).json()
    key = "cardnet/v1/transfers/{request_id}"
    assert fault(sb, path="/sandbox/" + key, http_status=503)["path"] == key
    assert query(sb, body["request_id"]).status_code == 503
    fault(sb, path=key, when="after", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        query(sb, body["request_id"])
    fault(sb, path=key, body={"request_id": body["request_id"], "status": "PROCESSING"})
    assert query(sb, body["request_id"]).json() == {"request_id": body["request_id"], "status": "PROCESSING"}
    assert query(sb, body["request_id"]).json() == answer
    # the POST path's faults do not touch the query and the other way round
    fault(sb, path="cardnet/v1/transfers", http_status=500)
    assert query(sb, body["request_id"]).status_code == 200
    assert post(sb, transfer(card)).status_code == 500
    assert [c["http_status"] for c in sb.calls(key)[-5:]] == [503, 0, 200, 200, 200]
    assert balance(sb, card) == 99_00


@pytest.mark.parametrize("path", ["cardnet/v1/transfers", "cardnet/v1/transfers/{request_id}"])
def test_card_network_faults_take_no_errcode(sb, path):
    r = sb.control("POST", "faults", json={"path": path, "errcode": -1, "when": "after"})
    assert r.status_code == 400 and r.json()["field"] == "errcode"
    r = sb.control("POST", "faults", json={"path": "cardnet/v1/transfers/some-request-id", "http_status": 503})
    assert r.status_code == 400 and r.json()["field"] == "path"
    assert sb.control("GET", "faults").json()["faults"] == []


# -- control routes --------------------------------------------------------------------------------


def test_card_balance_and_block_routes(sb, card):
    card_schema = schema_validator(DOC["components"]["schemas"]["BankCardState"])
    r = sb.control("GET", f"bank-cards/{card}")
    assert r.status_code == 200
    assert r.json() == {"card_number": card, "name": HOLDER["name"], "card_class": "I", "balance_fen": 100_00,
                        "blocked": False}
    card_schema.validate(r.json())
    r = sb.control("POST", f"bank-cards/{card}/balance", json={"balance_fen": 0})
    assert r.status_code == 200 and r.json()["balance_fen"] == 0
    card_schema.validate(r.json())
    assert post(sb, transfer(card, "debit", 1)).json()["reason"] == "INSUFFICIENT_FUNDS"
    r = sb.control("POST", f"bank-cards/{card}/block", json={"blocked": True})
    assert r.status_code == 200 and r.json()["blocked"] is True and r.json()["balance_fen"] == 0
    card_schema.validate(r.json())


@pytest.mark.parametrize(
    "route,body,field",
    [
        ("balance", {}, "balance_fen"),
        ("balance", {"balance_fen": None}, "balance_fen"),
        ("balance", {"balance_fen": -1}, "balance_fen"),
        ("balance", {"balance_fen": 1.5}, "balance_fen"),
        ("balance", {"balance_fen": True}, "balance_fen"),
        ("balance", {"balance_fen": "100"}, "balance_fen"),
        ("balance", {"balance_fen": 10**15 + 1}, "balance_fen"),
        ("balance", {"balance_fen": 1, "blocked": True}, "blocked"),
        ("block", {}, "blocked"),
        ("block", {"blocked": 1}, "blocked"),
        ("block", {"blocked": "true"}, "blocked"),
        ("block", {"blocked": True, "balance": 1}, "balance"),
    ],
)
def test_card_route_validation(sb, card, route, body, field):
    request = DOC["paths"][f"/bank-cards/{{card_number}}/{route}"]["post"]["requestBody"]
    assert not schema_validator(request["content"]["application/json"]["schema"]).is_valid(body)
    r = sb.control("POST", f"bank-cards/{card}/{route}", json=body)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST" and r.json()["field"] == field, r.text
    assert sb.control("GET", f"bank-cards/{card}").json()["balance_fen"] == 100_00


def test_unknown_card_routes_answer_404(sb):
    error = schema_validator(DOC["components"]["schemas"]["Error"])
    unknown = new_card_number()
    for method, path, body in (("GET", f"bank-cards/{unknown}", None),
                               ("POST", f"bank-cards/{unknown}/balance", {"balance_fen": 1}),
                               ("POST", f"bank-cards/{unknown}/block", {"blocked": True})):
        r = sb.control(method, path, json=body)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", (path, r.text)
        error.validate(r.json())


def test_transfer_log(sb, card):
    other = new_card_number()
    sb.control("POST", "bank-cards", json={**HOLDER, "card_number": other, "balance_fen": 0})
    ids = []
    for number, direction in ((card, "debit"), (other, "credit"), (card, "debit"), (other, "debit")):
        body = transfer(number, direction, 10_00)
        ids.append(body["request_id"])
        post(sb, body)
    schema = schema_validator(DOC["paths"]["/transfers"]["get"]["responses"]["200"]["content"]["application/json"]
                              ["schema"])
    everything = sb.control("GET", "transfers").json()
    schema.validate(everything)
    assert [t["request_id"] for t in everything["transfers"]][-4:] == ids  # oldest first
    mine = sb.control("GET", "transfers", params={"card_number": other}).json()["transfers"]
    assert [(t["request_id"], t["direction"], t["status"], t["reason"]) for t in mine] == [
        (ids[1], "credit", "SUCCEEDED", None), (ids[3], "debit", "SUCCEEDED", None)]
    assert [t["request_id"] for t in moved(sb, card)] == [ids[0], ids[2]]
    assert sb.control("GET", "transfers", params={"card_number": new_card_number()}).json() == {"transfers": []}


# -- state -----------------------------------------------------------------------------------------


async def test_state_file_of_an_older_sandbox_gets_the_blocked_column(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # bank_cards as the first release created it
        db.execute("CREATE TABLE bank_cards (card_number TEXT PRIMARY KEY, name TEXT NOT NULL, id_number TEXT NOT NULL, "
                   "phone TEXT NOT NULL, card_class TEXT NOT NULL, balance_fen INTEGER NOT NULL DEFAULT 0, "
                   "updated_at REAL NOT NULL)")
        db.execute("INSERT INTO bank_cards VALUES ('6222020200112233446', '张三', '11010119900307123X', "
                   "'13812345678', 'I', 500, 0)")
    state = State(str(path))
    await state.open()
    try:
        row = await state.fetchone("SELECT balance_fen, blocked FROM bank_cards")
        assert (row["balance_fen"], row["blocked"]) == (500, 0)
        assert await state.fetchone("SELECT COUNT(*) AS n FROM cardnet_transfers") is not None
    finally:
        await state.close()


async def test_cancelled_transaction_leaves_no_open_transaction(tmp_path):
    """Sanic cancels a handler whose client hung up; aiosqlite still runs the statement the handler was
    waiting on. A transaction cancelled at any point is rolled back whole (or, past COMMIT, committed
    whole), and the connection can start the next one."""
    path = str(tmp_path / "s.sqlite3")
    state = State(path)
    await state.open()
    try:
        await state.execute("INSERT INTO settings (key, value) VALUES ('n', '0')")

        async def bump() -> None:
            async with state.tx() as tx:
                await tx.execute("UPDATE settings SET value = value + 1 WHERE key = 'n'")
                await tx.execute("UPDATE settings SET value = value + 1 WHERE key = 'n'")

        for steps in range(6):  # cancel at BEGIN, at each statement, at COMMIT, after it
            task = asyncio.create_task(bump())
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            async with state.tx() as tx:  # would fail "cannot start a transaction within a transaction"
                value = int((await tx.fetchone("SELECT value FROM settings WHERE key = 'n'"))["value"])
            assert value % 2 == 0, (steps, value)  # never half a transaction
        with sqlite3.connect(path, timeout=5) as other:  # and no write lock is left behind
            other.execute("UPDATE settings SET value = value WHERE key = 'n'")
    finally:
        await state.close()


# -- the element check's body ----------------------------------------------------------------------


def verify(sb, body: dict, headers: dict | None = AUTH) -> httpx.Response:
    return httpx.post(f"{sb.sb.cardnet}/v1/verify-elements", json=body, headers=headers, timeout=30)


def elements(card_number: str, /, **change) -> dict:
    body = {"request_id": "ve-" + secrets.token_hex(8), "name": HOLDER["name"], "id_number": HOLDER["id_number"],
            "card_number": card_number, "phone": HOLDER["phone"], **change}
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize("field", ["request_id", "name", "id_number", "card_number", "phone"])
@pytest.mark.parametrize("value", [None, "", "  ", 5, ["x"]])
def test_a_malformed_element_check_is_refused(sb, card, field, value):
    r = verify(sb, elements(card, **{field: value}))
    assert r.status_code == 400, r.text
    assert r.json() == {"code": "INVALID_REQUEST", "message": f"{field} is required and must be a string", "field": field}


def test_the_element_check_reads_its_body_as_before(sb, card):
    long_id = verify(sb, elements(card, request_id="x" * 65))
    assert long_id.json() == {"code": "INVALID_REQUEST", "message": "request_id is at most 64 characters",
                              "field": "request_id"}
    luhn = verify(sb, elements(card[:-1] + str((int(card[-1]) + 1) % 10)))
    assert luhn.status_code == 400 and luhn.json()["field"] == "card_number"
    for content in (b"", b"[1]", b"{nope"):
        r = httpx.post(f"{sb.sb.cardnet}/v1/verify-elements", content=content, headers=AUTH, timeout=30)
        assert r.status_code == 400 and r.json() == {"code": "INVALID_REQUEST", "message": "body must be a JSON object"}
    # the key is checked before the body
    assert verify(sb, {}, headers=None).status_code == 401
    # unknown fields ignored; the card number, names and phone compared trimmed, the X in any case
    r = verify(sb, elements(f" {card} ", name=f" {HOLDER['name']} ", id_number=HOLDER["id_number"].lower(),
                            phone=f"{HOLDER['phone']} ", channel="mobile"))
    assert r.status_code == 200 and r.json()["result"] == "MATCH", r.text
    mismatch = verify(sb, elements(card, phone="13900000000")).json()
    assert mismatch["result"] == "MISMATCH" and mismatch["mismatched_fields"] == ["phone"]
