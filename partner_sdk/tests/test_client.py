"""The client over httpx.MockTransport: signing on the wire, safe retries, response verification."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest
from fakebank import APP_ID, SECRET, FakeBank, Reply, debit_json, error_json

import openbank_partner.client as client_module
from openbank_partner import (
    AsyncPartnerClient,
    Debit,
    NetworkError,
    OpenApiError,
    ProtocolError,
    SignatureError,
)

CST = timezone(timedelta(hours=8))
DEBIT_ARGS = {"card_number": "32010123456789012345", "category": "toll", "amount_fen": 3500,
              "occurred_at": datetime(2026, 11, 30, 8, 0, tzinfo=CST), "merchant": "G2 Beijing-Shanghai Expwy"}
STATEMENT = (b"type,out_trade_no,out_refund_no,category,status,amount_fen,occurred_at,booked_at,card_number_masked,"
             b"plate_number,plate_color,merchant\r\n"
             b"debit,ETC20261130000001,,toll,succeeded,3500,2026-11-30T08:00:00+08:00,2026-11-30T08:00:01+08:00,"
             b"3201****2345,,,G2 Beijing-Shanghai Expwy\r\n")


def test_debit_sends_the_documented_body_and_parses_the_answer(make_client) -> None:
    bank = FakeBank(Reply(201, debit_json()))
    debit = make_client(bank).debit("ETC20261130000001", detail="Wuxi East to Suzhou", **DEBIT_ARGS)

    [seen] = bank.seen
    assert (seen.method, seen.target) == ("POST", "/open/v1/debits")
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json == {"out_trade_no": "ETC20261130000001", "card_number": "32010123456789012345",
                         "category": "toll", "amount_fen": 3500, "occurred_at": "2026-11-30T08:00:00+08:00",
                         "merchant": "G2 Beijing-Shanghai Expwy", "detail": "Wuxi East to Suzhou"}
    assert b" " not in seen.body.replace(b"G2 Beijing-Shanghai Expwy", b"").replace(b"Wuxi East to Suzhou", b"")
    assert isinstance(debit, Debit)
    assert (debit.status, debit.amount_fen, debit.refunded_fen, debit.binding_id) == ("succeeded", 3500, 0, 42)
    assert debit.replayed is False
    assert debit.raw == debit_json()


def test_debit_by_plate_sends_utf8(make_client) -> None:
    bank = FakeBank(Reply(201, debit_json("PARK-0001", category="parking")))
    args = dict(DEBIT_ARGS, card_number=None, plate_number="京A12345", plate_color="blue", category="parking")
    make_client(bank).debit("PARK-0001", **args)
    assert "京A12345".encode() in bank.seen[0].body
    assert list(bank.seen[0].json)[:3] == ["out_trade_no", "plate_number", "plate_color"]


def test_debit_sends_its_location_in_degrees(make_client) -> None:
    bank = FakeBank(Reply(201, debit_json()))
    make_client(bank).debit("ETC20261130000001", location=(31.4912, 120.3119), **DEBIT_ARGS)
    assert bank.seen[0].json["location"] == {"lat": 31.4912, "lng": 120.3119}
    with pytest.raises(ValueError):
        make_client(bank).debit("ETC20261130000002", location=(120.3, 31.4), **DEBIT_ARGS)  # swapped: no latitude 120
    assert len(bank.seen) == 1  # nothing sent for a bad location


def test_replayed_answer_is_flagged(make_client) -> None:
    bank = FakeBank(Reply(201, debit_json(), headers={"Idempotent-Replayed": "true"}))
    assert make_client(bank).debit("ETC20261130000001", **DEBIT_ARGS).replayed is True


def test_503_then_success_resends_the_same_body_with_a_new_nonce(make_client) -> None:
    bank = FakeBank(Reply(503, error_json("UNAVAILABLE")),
                    Reply(201, debit_json(), headers={"Idempotent-Replayed": "true"}))
    debit = make_client(bank).debit("ETC20261130000001", **DEBIT_ARGS)

    first, second = bank.seen
    assert first.body == second.body and first.json["out_trade_no"] == "ETC20261130000001"
    assert first.target == second.target
    assert first.headers["X-Nonce"] != second.headers["X-Nonce"]
    assert first.headers["X-Signature"] != second.headers["X-Signature"]  # each attempt signed afresh
    assert debit.replayed is True


def test_503s_that_outlast_the_retries_say_the_outcome_is_unknown(make_client) -> None:
    # a 503 may follow a commit (the bank's answer lost): every attempt carries the same out_trade_no
    bank = FakeBank(*[Reply(503, error_json("DB_UNAVAILABLE"), headers={"Retry-After": "2"})] * 4)
    with pytest.raises(OpenApiError) as raised:
        make_client(bank, retries=3).debit("ETC20261130000001", **DEBIT_ARGS)
    assert raised.value.status == 503 and raised.value.code == "DB_UNAVAILABLE"
    assert raised.value.outcome_unknown is True
    assert len(bank.seen) == 4 and {s.json["out_trade_no"] for s in bank.seen} == {"ETC20261130000001"}
    assert len({s.body for s in bank.seen}) == 1


def test_a_refusal_is_a_known_outcome(make_client) -> None:
    bank = FakeBank(Reply(422, error_json("INSUFFICIENT_FUNDS")))
    with pytest.raises(OpenApiError) as raised:
        make_client(bank).debit("ETC20261130000001", **DEBIT_ARGS)
    assert raised.value.outcome_unknown is False and len(bank.seen) == 1


def test_timeout_is_retried_with_the_same_out_refund_no(make_client) -> None:
    refund = {"out_refund_no": "RF20261130000001", "out_trade_no": "ETC20261130000001", "amount_fen": 1000,
              "status": "succeeded", "refunded_at": "2026-11-30T09:00:00+08:00",
              "debit": debit_json(refunded_fen=1000)}
    bank = FakeBank(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), Reply(201, refund))
    result = make_client(bank).refund("ETC20261130000001", "RF20261130000001", 1000, reason="overcharge")

    assert len(bank.seen) == 3
    assert {s.body for s in bank.seen} == {b'{"out_refund_no":"RF20261130000001","amount_fen":1000,"reason":"overcharge"}'}
    assert {s.target for s in bank.seen} == {"/open/v1/debits/ETC20261130000001/refund"}
    assert len({s.headers["X-Nonce"] for s in bank.seen}) == 3
    assert (result.out_refund_no, result.amount_fen, result.debit.refunded_fen) == ("RF20261130000001", 1000, 1000)


@pytest.mark.parametrize(("status", "code"), [(409, "OUT_TRADE_NO_CONFLICT"), (422, "INSUFFICIENT_FUNDS"),
                                              (403, "SCOPE_MISSING"), (401, "NONCE_REUSED")])
def test_4xx_is_not_retried(make_client, status: int, code: str) -> None:
    bank = FakeBank(Reply(status, error_json(code, "no", "amount_fen")), Reply(201, debit_json()))
    with pytest.raises(OpenApiError) as info:
        make_client(bank).debit("ETC20261130000001", **DEBIT_ARGS)
    assert len(bank.seen) == 1
    err = info.value
    assert (err.status, err.code, err.message, err.field, err.verified) == (status, code, "no", "amount_fen", True)
    assert str(err) == f"{status} {code}: no (field: amount_fen)"


def test_a_replayed_refusal_stays_a_refusal(make_client) -> None:
    bank = FakeBank(Reply(422, error_json("LIMIT_EXCEEDED"), headers={"Idempotent-Replayed": "true"}))
    with pytest.raises(OpenApiError) as info:
        make_client(bank).debit("ETC20261130000001", **DEBIT_ARGS)
    assert info.value.replayed and info.value.code == "LIMIT_EXCEEDED"


def test_unsigned_401_for_a_request_that_failed_authentication_is_surfaced(make_client) -> None:
    bank = FakeBank(Reply(401, error_json("SIGNATURE_INVALID", "bad signature"), signed=False))
    with pytest.raises(OpenApiError) as info:
        make_client(bank).get_debit("ETC20261130000001")
    assert (info.value.status, info.value.code, info.value.verified) == (401, "SIGNATURE_INVALID", False)


def test_5xx_retries_run_out(make_client) -> None:
    bank = FakeBank(*[Reply(502, b"<html>Bad Gateway</html>", signed=False)] * 3)
    with pytest.raises(OpenApiError) as info:
        make_client(bank, retries=2).get_debit("ETC20261130000001")
    assert len(bank.seen) == 3
    assert (info.value.status, info.value.code, info.value.verified) == (502, "HTTP_502", False)
    assert "Bad Gateway" in info.value.message


def test_network_retries_run_out(make_client) -> None:
    bank = FakeBank(*[httpx.ConnectError("refused")] * 4)
    with pytest.raises(NetworkError, match="same business key") as info:
        make_client(bank).debit("ETC20261130000001", **DEBIT_ARGS)
    assert len(bank.seen) == 4  # the first attempt and 3 retries
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_retries_zero(make_client) -> None:
    bank = FakeBank(httpx.ReadTimeout("slow"))
    with pytest.raises(NetworkError):
        make_client(bank, retries=0).get_debit("ETC20261130000001")
    assert len(bank.seen) == 1


def test_backoff_grows(make_client, monkeypatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", sleeps.append)
    bank = FakeBank(*[Reply(503, error_json("UNAVAILABLE"))] * 3, Reply(200, debit_json()))
    make_client(bank, backoff=1.0, max_backoff=3.0).get_debit("ETC20261130000001")
    assert len(sleeps) == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0 and 1.5 <= sleeps[2] <= 3.0


@pytest.mark.parametrize("reply", [
    Reply(201, debit_json(), signed=False),                       # unsigned success
    Reply(201, debit_json(), secret="sk_someone-else"),           # signed with another key
    Reply(201, debit_json(), sign_for_nonce="another-request-nonce-01"),  # answers another request
    Reply(201, debit_json(), tamper=True),                        # body altered after signing
    Reply(422, error_json("INSUFFICIENT_FUNDS"), secret="sk_someone-else"),  # badly signed refusal
])
def test_unsigned_or_badly_signed_answers_raise(make_client, reply: Reply) -> None:
    bank = FakeBank(reply)
    with pytest.raises(SignatureError):
        make_client(bank).debit("ETC20261130000001", **DEBIT_ARGS)
    assert len(bank.seen) == 1


def test_verification_can_be_turned_off(make_client) -> None:
    bank = FakeBank(Reply(200, debit_json(), signed=False))
    assert make_client(bank, verify_responses=False).get_debit("ETC20261130000001").amount_fen == 3500


def test_answers_signed_with_the_previous_secret_during_a_rotation(make_client) -> None:
    bank = FakeBank(Reply(200, debit_json(), secret="sk_old-secret"))
    # The fake bank checks the request against SECRET: the first secret signs.
    assert make_client(bank, secret=[SECRET, "sk_old-secret"]).get_debit("ETC20261130000001").status == "succeeded"


def test_get_debit_and_404(make_client) -> None:
    bank = FakeBank(Reply(200, debit_json(refunded_fen=1000)), Reply(404, error_json("DEBIT_NOT_FOUND")))
    client = make_client(bank)
    assert client.get_debit("ETC20261130000001").refunded_fen == 1000
    with pytest.raises(OpenApiError, match="DEBIT_NOT_FOUND"):
        client.get_debit("ETC20261130000002")
    assert [(s.method, s.target, s.body) for s in bank.seen] == [
        ("GET", "/open/v1/debits/ETC20261130000001", b""), ("GET", "/open/v1/debits/ETC20261130000002", b"")]
    assert "Content-Type" not in bank.seen[0].headers


def test_statement(make_client) -> None:
    bank = FakeBank(Reply(200, STATEMENT, headers={"Content-Type": "text/csv; charset=utf-8"}),
                    Reply(200, STATEMENT))
    client = make_client(bank)
    [row] = client.statement(date(2026, 11, 30))
    client.statement("2026-12-01")
    assert [s.target for s in bank.seen] == ["/open/v1/statements?date=2026-11-30",
                                             "/open/v1/statements?date=2026-12-01"]
    assert (row.type, row.out_trade_no, row.out_refund_no, row.amount_fen) == ("debit", "ETC20261130000001", None, 3500)


def test_base_url_with_a_path_prefix_is_signed_as_sent(make_client) -> None:
    bank = FakeBank(Reply(200, debit_json()))
    make_client(bank, base_url="https://gw.test/bank/").get_debit("ETC20261130000001")
    assert bank.seen[0].target == "/bank/open/v1/debits/ETC20261130000001"  # FakeBank checked its signature


def test_success_that_is_not_json(make_client) -> None:
    bank = FakeBank(Reply(200, b"<html>"))
    with pytest.raises(ProtocolError):
        make_client(bank).get_debit("ETC20261130000001")


@pytest.mark.parametrize(("out_trade_no", "changes"), [
    ("ETC/../x", {}),                          # would change the path
    ("short", {}),
    ("ETC20261130000001\n", {}),
    ("ETC20261130000001", {"plate_number": "京A12345", "plate_color": "blue"}),  # card and plate
    ("ETC20261130000001", {"card_number": None}),                                # neither
    ("ETC20261130000001", {"card_number": None, "plate_number": "京A12345"}),      # plate without colour
    ("ETC20261130000001", {"occurred_at": datetime(2026, 11, 30, 8, 0)}),          # naive
    ("ETC20261130000001", {"amount_fen": 35.0}),
    ("ETC20261130000001", {"amount_fen": 0}),
    ("ETC20261130000001", {"amount_fen": True}),
])
def test_invalid_arguments_send_nothing(make_client, out_trade_no: str, changes: dict) -> None:
    bank = FakeBank()
    with pytest.raises(ValueError):
        make_client(bank).debit(out_trade_no, **(DEBIT_ARGS | changes))
    assert bank.seen == []


def test_invalid_refund_and_statement_arguments(make_client) -> None:
    client = make_client(FakeBank())
    with pytest.raises(ValueError):
        client.refund("ETC20261130000001", "RF 1", 100)
    with pytest.raises(ValueError):
        client.get_debit("a/b/c/d/e")
    with pytest.raises(ValueError):
        client.statement("2026-11-30&x=1")
    with pytest.raises(TypeError):
        client.statement(datetime(2026, 11, 30, tzinfo=CST))


def test_occurred_at_as_a_string_is_sent_as_is(make_client) -> None:
    bank = FakeBank(Reply(201, debit_json()))
    make_client(bank).debit("ETC20261130000001", **(DEBIT_ARGS | {"occurred_at": "2026-11-30T00:00:00Z"}))
    assert bank.seen[0].json["occurred_at"] == "2026-11-30T00:00:00Z"


def test_async_client_retries_the_same_body() -> None:
    bank = FakeBank(httpx.ReadTimeout("slow"), Reply(503, error_json("UNAVAILABLE")),
                    Reply(201, debit_json(), headers={"Idempotent-Replayed": "true"}), Reply(200, STATEMENT))

    async def handler(request: httpx.Request) -> httpx.Response:
        await request.aread()
        return bank(request)

    async def run() -> tuple[Debit, list]:
        async with AsyncPartnerClient("https://bank.test", APP_ID, SECRET, backoff=0,
                                      transport=httpx.MockTransport(handler)) as client:
            return (await client.debit("ETC20261130000001", **DEBIT_ARGS),
                    await client.statement(date(2026, 11, 30)))

    debit, rows = asyncio.run(run())
    assert debit.replayed and len(bank.seen) == 4 and rows[0].amount_fen == 3500
    assert len({s.body for s in bank.seen[:3]}) == 1
    assert len({s.headers["X-Nonce"] for s in bank.seen}) == 4


def test_async_client_unsigned_success_raises() -> None:
    bank = FakeBank(Reply(200, debit_json(), signed=False))

    async def run() -> None:
        async with AsyncPartnerClient("https://bank.test", APP_ID, SECRET,
                                      transport=httpx.MockTransport(bank)) as client:
            await client.get_debit("ETC20261130000001")

    with pytest.raises(SignatureError):
        asyncio.run(run())


def test_json_bodies_are_compact() -> None:
    body = client_module._Base._refund_body("ETC20261130000001", "RF20261130000001", 5, None)
    assert body == json.dumps({"out_refund_no": "RF20261130000001", "amount_fen": 5}, separators=(",", ":")).encode()
