"""Partner debits, refunds and statements over the signed open API: booked through the ledger under the
class limits, idempotent on out_trade_no and out_refund_no (also under 20 concurrent retries), refusals
recorded as arrears, scopes per category, refunds never above the debit, the day's CSV statement.
``ledger check`` runs after each test (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, time, timedelta

import pytest

from core.clock import CHINA_TZ
from models.accounts import Account, LedgerEntry
from models.etc import EtcBinding
from models.partners import PartnerDebit, PartnerRefund
from services.accounts import rules
from tests.account_helpers import set_card_balance, top_up
from tests.helpers import assert_error
from tests.partner_helpers import bound_car, call, debit_body, new_partner, response_signature_ok

DEBITS = "/open/v1/debits"


async def balance(account_id: int) -> int:
    return (await Account.get(id=account_id)).balance_fen


async def test_a_toll_debit_is_booked_on_the_bound_account(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 1_500)
    raw = json.dumps(body).encode()
    headers = partner.headers("POST", DEBITS, raw)
    resp = await client.post(DEBITS, content=raw, headers={**headers, "Content-Type": "application/json"})
    assert resp.status_code == 201, resp.text
    assert response_signature_ok(partner, resp, headers["X-Nonce"])
    debit = resp.json()
    assert (debit["status"], debit["amount_fen"], debit["refunded_fen"], debit["refusal_code"]) == (
        "succeeded", 1_500, 0, None)
    assert debit["binding_id"] == car.binding["id"] and debit["card_number_masked"] == car.binding["card_number_masked"]
    assert await balance(car.account["id"]) == 8_500
    account = (await client.get(f"/api/v1/accounts/{car.account['id']}", headers=car.user.headers)).json()
    assert account["limits"]["daily_outflow_used_fen"] == 1_500  # a toll is consumption: counted
    entry = await LedgerEntry.filter(account_id=car.account["id"], kind="toll").first()
    assert entry.amount_fen == 1_500 and entry.counterparty == body["merchant"] and entry.counts_as_outflow
    # the user sees it on the binding
    seen = (await client.get(f"/api/v1/etc-bindings/{car.binding['id']}/debits", headers=car.user.headers)).json()
    assert [(d["out_trade_no"], d["status"]) for d in seen["debits"]] == [(body["out_trade_no"], "succeeded")]


async def test_a_debit_by_plate_and_colour(client, sandbox, ctx):
    partner = await new_partner(ctx, scopes=["parking:debit"])
    car = await bound_car(client, sandbox, balance_fen=5_000)
    resp = await call(client, partner, "POST", DEBITS, debit_body(car, 800, category="parking", by="plate"))
    assert resp.status_code == 201, resp.text
    assert resp.json()["plate_number"] == car.vehicle["plate_number"] and await balance(car.account["id"]) == 4_200


async def test_each_category_is_booked_as_its_own_kind_and_its_refund_as_that_categorys(client, sandbox, ctx):
    """Parking, fuel and car washes are not ETC tolls: the ledger, and the user's transactions, say which."""
    partner = await new_partner(ctx, scopes=["etc:debit", "parking:debit", "fuel:debit", "carwash:debit"])
    car = await bound_car(client, sandbox, balance_fen=10_000)
    for category in ("toll", "parking", "fuel", "carwash"):
        body = debit_body(car, 100, category=category)
        assert (await call(client, partner, "POST", DEBITS, body)).status_code == 201
        refunded = await call(client, partner, "POST", f"{DEBITS}/{body['out_trade_no']}/refund",
                              {"out_refund_no": "R" + body["out_trade_no"], "amount_fen": 40})
        assert refunded.status_code == 201, refunded.text
    shown = (await client.get(f"/api/v1/accounts/{car.account['id']}/transactions", headers=car.user.headers)).json()
    assert [(e["kind"], e["direction"], e["amount_fen"]) for e in reversed(shown["entries"])
            if e["kind"] != "top_up"] == [
        ("toll", "debit", 100), ("toll_refund", "credit", 40), ("parking", "debit", 100),
        ("parking_refund", "credit", 40), ("fuel", "debit", 100), ("fuel_refund", "credit", 40),
        ("carwash", "debit", 100), ("carwash_refund", "credit", 40)]


async def test_the_migration_carries_the_etc_kinds_to_the_categories(client, sandbox, ctx):
    """Migration 19: entries booked as ``etc_<category>`` and ``etc_refund`` before it are rewritten to
    the category and the refund of the debit's category; its own SQL, on this dialect, on rows the API made."""
    import importlib.util
    from pathlib import Path

    from tortoise import Tortoise

    from services.db import placeholder

    partner = await new_partner(ctx, scopes=["parking:debit"])
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 300, category="parking")
    debit = (await call(client, partner, "POST", DEBITS, body)).json()
    assert (await call(client, partner, "POST", f"{DEBITS}/{body['out_trade_no']}/refund",
                       {"out_refund_no": "R" + body["out_trade_no"], "amount_fen": 100})).status_code == 201
    conn = Tortoise.get_connection("default")
    mark = placeholder(conn)

    async def kinds() -> list[str]:
        rows = await conn.execute_query_dict(
            f"SELECT kind FROM ledger_entries WHERE account_id = {mark} AND kind NOT IN ('top_up') ORDER BY id",
            [car.account["id"]])
        return [r["kind"] for r in rows]

    [path] = Path("migrations/models").glob("19_*_entry_kinds.py")
    spec = importlib.util.spec_from_file_location("migration_19", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert debit["status"] == "succeeded" and await kinds() == ["parking", "parking_refund"]
    await conn.execute_script(await migration.downgrade(conn))  # as they were booked before it
    assert await kinds() == ["etc_parking", "etc_refund"]
    await conn.execute_script(await migration.upgrade(conn))
    assert await kinds() == ["parking", "parking_refund"]


async def test_a_retry_answers_the_first_answer_and_another_body_conflicts(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 2_000)
    first = await call(client, partner, "POST", DEBITS, body)
    again = await call(client, partner, "POST", DEBITS, body)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert_error(await call(client, partner, "POST", DEBITS, {**body, "amount_fen": 2_001}), 409,
                 "OUT_TRADE_NO_CONFLICT", "out_trade_no")
    assert await balance(car.account["id"]) == 8_000
    # numbers are the partner's own: another partner may use the same one
    other = await new_partner(ctx)
    assert (await call(client, other, "POST", DEBITS, body)).status_code == 201
    assert await balance(car.account["id"]) == 6_000


async def test_twenty_identical_requests_at_once_debit_once(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 700)
    answers = await asyncio.gather(*(call(client, partner, "POST", DEBITS, body) for _ in range(20)))
    assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers if a.status_code != 201]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") != "true" for a in answers) == 1
    assert await PartnerDebit.filter(out_trade_no=body["out_trade_no"]).count() == 1
    assert await balance(car.account["id"]) == 9_300


async def test_insufficient_funds_is_refused_and_recorded_as_arrears(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=1_000)
    body = debit_body(car, 1_200)
    assert_error(await call(client, partner, "POST", DEBITS, body), 422, "INSUFFICIENT_FUNDS")
    assert await balance(car.account["id"]) == 1_000
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 1_200
    looked = await call(client, partner, "GET", f"{DEBITS}/{body['out_trade_no']}")
    assert (looked.json()["status"], looked.json()["refusal_code"]) == ("arrears", "INSUFFICIENT_FUNDS")
    # money arrives; a retry of the same debit still answers the refusal it had (its arrears are owed)
    await set_card_balance(sandbox, car.person.card_number, 5_000)
    assert (await top_up(client, car.user, car.account["id"], 5_000)).status_code == 201
    assert_error(await call(client, partner, "POST", DEBITS, body), 422, "INSUFFICIENT_FUNDS")
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 1_200  # counted once
    assert await balance(car.account["id"]) == 6_000
    shown = (await client.get(f"/api/v1/etc-bindings/{car.binding['id']}", headers=car.user.headers)).json()
    assert shown["arrears_fen"] == 1_200


async def test_a_debit_past_the_daily_limit_is_refused_as_arrears(client, sandbox, ctx):
    partner = await new_partner(ctx)
    ii = rules.RULES["II"]
    car = await bound_car(client, sandbox, balance_fen=ii.daily_outflow_fen + 50_000)
    assert (await call(client, partner, "POST", DEBITS, debit_body(car, ii.daily_outflow_fen - 100))).status_code == 201
    body = debit_body(car, 101)
    assert_error(await call(client, partner, "POST", DEBITS, body), 422, "LIMIT_EXCEEDED")
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 101
    assert (await call(client, partner, "POST", DEBITS, debit_body(car, 100))).status_code == 201  # exactly fits


async def test_concurrent_debits_never_pass_the_daily_limit(client, sandbox, ctx):
    partner = await new_partner(ctx)
    ii = rules.RULES["II"]
    car = await bound_car(client, sandbox, balance_fen=2 * ii.daily_outflow_fen)
    # most are refused: each refusal writes the binding's arrears, which concurrent debits must not deadlock on
    answers = await asyncio.gather(*(call(client, partner, "POST", DEBITS, debit_body(car, 300_000))
                                     for _ in range(60)))
    fits = ii.daily_outflow_fen // 300_000
    assert sorted(a.status_code for a in answers) == [201] * fits + [422] * (60 - fits), [
        a.text for a in answers if a.status_code not in (201, 422)][:3]
    account = await Account.get(id=car.account["id"])
    assert account.outflow_day_fen == fits * 300_000 <= ii.daily_outflow_fen
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == (60 - fits) * 300_000


async def test_each_category_needs_its_scope(client, sandbox, ctx):
    car = await bound_car(client, sandbox, balance_fen=10_000)
    fuel_only = await new_partner(ctx, scopes=["fuel:debit"])
    for category in ("toll", "parking", "carwash"):
        assert_error(await call(client, fuel_only, "POST", DEBITS, debit_body(car, 100, category=category)), 403,
                     "SCOPE_MISSING")
    assert (await call(client, fuel_only, "POST", DEBITS, debit_body(car, 100, category="fuel"))).status_code == 201


async def test_a_suspended_or_unknown_card_is_not_debited(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    await client.post(f"/api/v1/etc-bindings/{car.binding['id']}/suspend", headers=car.user.headers)
    assert_error(await call(client, partner, "POST", DEBITS, debit_body(car)), 409, "BINDING_NOT_ACTIVE")
    body = {**debit_body(car), "card_number": "9" * 20}
    assert_error(await call(client, partner, "POST", DEBITS, body), 404, "BINDING_NOT_FOUND")
    assert await balance(car.account["id"]) == 10_000
    assert not await PartnerDebit.filter(binding_id=car.binding["id"]).exists()  # nothing stored for either


@pytest.mark.parametrize("change", [
    {"amount_fen": 0}, {"amount_fen": "100"}, {"amount_fen": 1.5},
    {"occurred_at": 1764460800}, {"occurred_at": "2026-11-30 08:00:00"}, {"occurred_at": "2026-02-30T08:00:00+08:00"},
    {"merchant": "=HYPERLINK(\"x\")"}, {"merchant": ""}, {"category": "coffee"}, {"out_trade_no": "abc"},
])
async def test_malformed_debits_are_refused_and_store_nothing(client, sandbox, ctx, change):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = {k: v for k, v in {**debit_body(car), **change}.items() if v is not None}
    assert_error(await call(client, partner, "POST", DEBITS, body), 422, "VALIDATION_ERROR")
    assert await balance(car.account["id"]) == 10_000


@pytest.mark.parametrize("change", [{"card_number": None}, {"plate_number": "京A12345"},
                                    {"card_number": None, "plate_number": "京A12345"}])
async def test_a_debit_names_the_car_one_way(client, sandbox, ctx, change):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = {k: v for k, v in {**debit_body(car), **change}.items() if v is not None}
    assert_error(await call(client, partner, "POST", DEBITS, body), 422, "VEHICLE_REFERENCE_INVALID")
    assert await balance(car.account["id"]) == 10_000


async def test_a_debit_in_the_future_is_refused(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    later = (datetime.now(CHINA_TZ) + timedelta(hours=1)).isoformat(timespec="seconds")
    assert_error(await call(client, partner, "POST", DEBITS, {**debit_body(car), "occurred_at": later}), 422,
                 "OCCURRED_AT_INVALID", "occurred_at")


async def test_refunds_are_idempotent_and_never_exceed_the_debit(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 3_000)
    assert (await call(client, partner, "POST", DEBITS, body)).status_code == 201
    path = f"{DEBITS}/{body['out_trade_no']}/refund"
    first = await call(client, partner, "POST", path, {"out_refund_no": "R-000001", "amount_fen": 1_000})
    assert first.status_code == 201, first.text
    assert first.json()["debit"]["refunded_fen"] == 1_000 and await balance(car.account["id"]) == 8_000
    again = await call(client, partner, "POST", path, {"out_refund_no": "R-000001", "amount_fen": 1_000})
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert_error(await call(client, partner, "POST", path, {"out_refund_no": "R-000001", "amount_fen": 900}), 409,
                 "OUT_REFUND_NO_CONFLICT", "out_refund_no")
    # the number's first name is refused, not read as a missing number
    old_name = await call(client, partner, "POST", path, {"refund_no": "R-000001", "amount_fen": 1_000})
    assert old_name.status_code == 422 and old_name.json()["error"]["field"] in ("refund_no", "out_refund_no")
    assert_error(await call(client, partner, "POST", path, {"out_refund_no": "R-000002", "amount_fen": 2_001}), 422,
                 "REFUND_EXCEEDS_DEBIT", "amount_fen")
    # concurrent refunds of what is left: together never more than the debit
    answers = await asyncio.gather(*(call(client, partner, "POST", path,
                                          {"out_refund_no": f"R-1000{i}", "amount_fen": 700}) for i in range(6)))
    assert sorted(a.status_code for a in answers) == [201] * 2 + [422] * 4
    looked = (await call(client, partner, "GET", f"{DEBITS}/{body['out_trade_no']}")).json()
    assert looked["refunded_fen"] == 2_400 <= looked["amount_fen"]
    assert await balance(car.account["id"]) == 10_000 - 3_000 + 2_400
    assert_error(await call(client, partner, "POST", f"{DEBITS}/nope-000/refund",
                            {"out_refund_no": "R-000009", "amount_fen": 1}), 404, "DEBIT_NOT_FOUND")


async def test_twenty_identical_refund_requests_at_once_refund_once(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 3_000)
    assert (await call(client, partner, "POST", DEBITS, body)).status_code == 201
    path = f"{DEBITS}/{body['out_trade_no']}/refund"
    answers = await asyncio.gather(*(call(client, partner, "POST", path,
                                          {"out_refund_no": "R-same-001", "amount_fen": 1_200}) for _ in range(20)))
    assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers if a.status_code != 201][:2]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    assert await PartnerRefund.filter(out_refund_no="R-same-001").count() == 1
    assert await balance(car.account["id"]) == 10_000 - 3_000 + 1_200


async def test_arrears_cannot_be_refunded_and_other_partners_debits_are_not_found(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=100)
    owed = debit_body(car, 500)
    await call(client, partner, "POST", DEBITS, owed)
    assert_error(await call(client, partner, "POST", f"{DEBITS}/{owed['out_trade_no']}/refund",
                            {"out_refund_no": "R-owed-01", "amount_fen": 100}), 409, "DEBIT_NOT_REFUNDABLE")
    stranger = await new_partner(ctx)
    assert_error(await call(client, stranger, "GET", f"{DEBITS}/{owed['out_trade_no']}"), 404, "DEBIT_NOT_FOUND")


async def test_the_statement_lists_the_days_debits_and_refunds(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    paid, owed = debit_body(car, 2_000), debit_body(car, 50_000)
    await call(client, partner, "POST", DEBITS, paid)
    await call(client, partner, "POST", DEBITS, owed)
    await call(client, partner, "POST", f"{DEBITS}/{paid['out_trade_no']}/refund", {"out_refund_no": "R-stmt-01",
                                                                                    "amount_fen": 500})
    today = datetime.now(CHINA_TZ).date().isoformat()
    url = f"/open/v1/statements?date={today}"
    headers = partner.headers("GET", url)
    resp = await client.get(url, headers=headers)
    assert resp.status_code == 200 and response_signature_ok(partner, resp, headers["X-Nonce"])
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [(r["type"], r["out_trade_no"], r["out_refund_no"], r["status"], r["amount_fen"]) for r in rows] == [
        ("debit", paid["out_trade_no"], "", "succeeded", "2000"),
        ("debit", owed["out_trade_no"], "", "arrears", "50000"),
        ("refund", paid["out_trade_no"], "R-stmt-01", "succeeded", "500"),
    ]
    assert rows[0]["card_number_masked"] == car.binding["card_number_masked"] and car.card_number not in resp.text
    # another partner's statement does not show them; a day to come has none
    other = await new_partner(ctx)
    theirs = await client.get(url, headers=other.headers("GET", url))
    assert theirs.text.strip().splitlines() == [",".join(("type", "out_trade_no", "out_refund_no", "category", "status",
                                                          "amount_fen", "occurred_at", "booked_at",
                                                          "card_number_masked", "plate_number", "plate_color",
                                                          "merchant"))]
    tomorrow = (datetime.now(CHINA_TZ).date() + timedelta(days=1)).isoformat()
    later = f"/open/v1/statements?date={tomorrow}"
    assert_error(await client.get(later, headers=partner.headers("GET", later)), 422, "STATEMENT_DATE_INVALID", "date")
    assert await PartnerRefund.filter(out_refund_no="R-stmt-01").count() == 1


# bidi controls reorder what a statement shows; full-width ASCII passes for formula starts and for other names
LOOKALIKES = {"LRE": "\u202a", "RLO": "\u202e", "LRI": "\u2066", "PDI": "\u2069", "LRM": "\u200e", "RLM": "\u200f",
              "ALM": "\u061c", "fullwidth =": "\uff1d", "fullwidth +": "\uff0b", "fullwidth -": "\uff0d",
              "fullwidth @": "\uff20", "fullwidth A": "\uff21", "fullwidth z": "\uff5a", "fullwidth 0": "\uff10"}


@pytest.mark.parametrize("field", ["merchant", "detail"])
async def test_bidi_controls_and_fullwidth_lookalikes_are_refused_in_statement_texts(client, sandbox, ctx, field):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    for name, char in LOOKALIKES.items():
        for text in (f"{char}加油站", f"中石化{char}加油站"):  # first, and anywhere after
            body = {**debit_body(car, 100), field: text}
            resp = await call(client, partner, "POST", DEBITS, body)
            assert resp.status_code == 422, (name, text, resp.text)
            assert_error(resp, 422, "VALIDATION_ERROR", field)
    assert not await PartnerDebit.filter(binding_id=car.binding["id"]).exists()
    assert await balance(car.account["id"]) == 10_000
    for text in ("中石化(北京)加油站 No.1", "中石化（北京）加油站！第一站，洗车：精洗；"):  # Chinese punctuation is text
        fine = await call(client, partner, "POST", DEBITS, {**debit_body(car, 100), field: text})
        assert fine.status_code == 201, (text, fine.text)


async def test_a_partner_that_lost_a_categorys_scope_cannot_refund_its_debits(client, sandbox, ctx):
    from models.partners import Partner

    partner = await new_partner(ctx, scopes=["etc:debit", "parking:debit"])
    car = await bound_car(client, sandbox, balance_fen=10_000)
    toll = debit_body(car, 2_000)
    assert (await call(client, partner, "POST", DEBITS, toll)).status_code == 201
    await Partner.filter(app_id=partner.app_id).update(scopes=["parking:debit"])  # tolls taken away
    resp = await call(client, partner, "POST", f"{DEBITS}/{toll['out_trade_no']}/refund",
                      {"out_refund_no": "R-scope-01", "amount_fen": 500})
    assert_error(resp, 403, "SCOPE_MISSING")
    assert not await PartnerRefund.filter(out_refund_no="R-scope-01").exists()
    assert await balance(car.account["id"]) == 8_000


def a_morning_seven() -> datetime:
    """07:00 China time (23:00 UTC the day before) on the latest day whose 07:30 has passed."""
    now = datetime.now(CHINA_TZ)
    day = now.date() if now.hour >= 8 else now.date() - timedelta(days=1)
    return datetime.combine(day, time(7), tzinfo=CHINA_TZ)


async def test_statements_are_by_the_china_day_at_seven_in_the_morning(client, sandbox, ctx, monkeypatch):
    from services.accounts import ledger
    from services.partners import debits as partner_debits

    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    seven = a_morning_seven()
    day, utc_day = seven.date(), seven.astimezone(UTC).date()
    assert utc_day == day - timedelta(days=1)
    for module in (partner_debits, ledger):  # the clock moved, not waited for
        monkeypatch.setattr(module, "utcnow", lambda: seven.astimezone(UTC))
    body = {**debit_body(car, 1_000), "occurred_at": (seven - timedelta(minutes=20)).isoformat()}
    assert (await call(client, partner, "POST", DEBITS, body)).status_code == 201
    assert (await call(client, partner, "POST", f"{DEBITS}/{body['out_trade_no']}/refund",
                       {"out_refund_no": "R-seven-01", "amount_fen": 400})).status_code == 201

    def statement_of(d):
        url = f"/open/v1/statements?date={d.isoformat()}"
        return call(client, partner, "GET", url)

    ours = await statement_of(day)  # the China day has begun at 07:00, though UTC's has not
    assert ours.status_code == 200, ours.text
    rows = list(csv.DictReader(io.StringIO(ours.text)))
    assert [(r["type"], r["out_trade_no"], r["amount_fen"], r["booked_at"]) for r in rows] == [
        ("debit", body["out_trade_no"], "1000", seven.isoformat()),
        ("refund", body["out_trade_no"], "400", seven.isoformat())]
    before = await statement_of(utc_day)
    assert before.status_code == 200 and len(before.text.strip().splitlines()) == 1  # the header alone
