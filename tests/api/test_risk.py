"""Risk control on partner debits: one decision under the account lock before any fen moves, rules as
versioned data, shadow rules that change nothing, block and allow lists with expiry, and velocity that
stays exact under concurrency."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from core.clock import utcnow
from models.audit import AuditEvent
from models.etc import EtcBinding
from models.partners import PartnerDebit
from models.risk import RiskListEntry, RiskRuleSet
from services.risk import lists, rules
from tests.helpers import assert_error, rules_in_force
from tests.partner_helpers import bound_car, call, debit_body, new_partner
from tests.staff_helpers import new_staff


async def put_in_force(*rule_list: dict) -> int:
    return await rules_in_force(list(rule_list))


@pytest.fixture
async def in_force():
    """Put rules in force for one test; afterwards an empty rule set is in force (nothing fires)."""
    yield put_in_force
    await put_in_force()


def velocity(rule_id: str = "debit-burst", *, max_count: int, action: str = "review", status: str = "active") -> dict:
    return {"id": rule_id, "type": "velocity", "status": status, "action": action, "applies_to": ["partner_debit"],
            "key": "account", "window": "1m", "max_count": max_count}


async def balance(client, car) -> int:
    return (await client.get(f"/api/v1/accounts/{car.account['id']}", headers=car.user.headers)).json()["balance_fen"]


async def test_a_burst_on_one_account_is_held_with_its_reasons_and_nothing_moves(client, sandbox, ctx, in_force):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=100_000)
    version = await in_force(velocity(max_count=3))
    answers = [await call(client, partner, "POST", "/open/v1/debits", debit_body(car, 1_000)) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201], [a.text for a in answers]
    held_body = debit_body(car, 1_000)
    held = await call(client, partner, "POST", "/open/v1/debits", held_body)
    assert_error(held, 403, "RISK_REVIEW")
    row = await PartnerDebit.get(out_trade_no=held_body["out_trade_no"])
    assert (row.status, row.refusal_code, row.risk_decision, row.risk_version) == ("refused", "RISK_REVIEW", "review",
                                                                                  version)
    assert row.risk_reasons == [{"rule": "debit-burst", "type": "velocity", "action": "review", "shadow": False,
                                 "key": "account", "window": "1m", "count": 4, "amount_fen": 4_000, "max_count": 3,
                                 "max_amount_fen": None}]
    booked = await PartnerDebit.filter(out_trade_no__in=[json.loads(a.text)["out_trade_no"] for a in answers])
    assert {(d.risk_decision, d.risk_version) for d in booked} == {("allow", version)}
    assert await balance(client, car) == 100_000 - 3_000  # the held one moved nothing
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0  # and is not owed
    again = await call(client, partner, "POST", "/open/v1/debits", held_body)  # the same answer on a retry
    assert_error(again, 403, "RISK_REVIEW")
    assert again.headers.get("idempotent-replayed") == "true"
    shown = await call(client, partner, "GET", f"/open/v1/debits/{held_body['out_trade_no']}")
    assert shown.json()["status"] == "refused" and shown.json()["refusal_code"] == "RISK_REVIEW"


async def test_fifty_parallel_debits_against_a_limit_of_n_let_exactly_n_through(client, sandbox, ctx, in_force):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=500_000)
    await in_force(velocity(max_count=7, action="block"))
    answers = await asyncio.gather(*(call(client, partner, "POST", "/open/v1/debits", debit_body(car, 100))
                                     for _ in range(50)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 7 + [403] * 43, [a.text for a in answers if a.status_code not in (201, 403)]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 403} == {"RISK_BLOCKED"}
    assert await balance(client, car) == 500_000 - 700


async def test_a_limit_on_a_key_shared_by_several_accounts_holds_exactly_under_concurrency(client, sandbox, ctx,
                                                                                          in_force):
    """Debits of three accounts (three account locks) share one partner: its lock row counts them in turn."""
    partner = await new_partner(ctx)
    cars = [await bound_car(client, sandbox, balance_fen=100_000) for _ in range(3)]
    await in_force({**velocity("partner-burst", max_count=7, action="block"), "key": "partner"})
    answers = await asyncio.gather(*(call(client, partner, "POST", "/open/v1/debits", debit_body(cars[i % 3], 100))
                                     for i in range(50)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 7 + [403] * 43, [a.text for a in answers if a.status_code not in (201, 403)]
    assert sum([await balance(client, car) for car in cars]) == 3 * 100_000 - 700


async def test_listed_values_are_blocked_until_they_expire_and_the_allow_list_wins(client, sandbox, ctx, in_force):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=100_000)
    await in_force({"id": "listed", "type": "list", "status": "active", "action": "block",
                    "applies_to": ["partner_debit"], "lists": ["plate", "etc_card"]}, velocity(max_count=2))
    plate = car.vehicle
    entry = await lists.put(ctx, "plate", plate["plate_number"], plate_color=plate["plate_color"], action="block",
                            note="cloned plate reported")
    body = debit_body(car, 500)
    assert_error(await call(client, partner, "POST", "/open/v1/debits", body), 403, "RISK_BLOCKED")
    row = await PartnerDebit.get(out_trade_no=body["out_trade_no"])
    assert [(r["rule"], r["lists"]) for r in row.risk_reasons] == [("listed", ["plate"])]
    await RiskListEntry.filter(id=entry.id).update(expires_at=utcnow() - timedelta(seconds=1))
    assert (await call(client, partner, "POST", "/open/v1/debits", debit_body(car, 500))).status_code == 201
    # the card on the allow list: the velocity rule (3rd debit in a minute) does not hold it
    await lists.put(ctx, "etc_card", car.card_number, action="allow", expires_in_s=600)
    allowed = debit_body(car, 500)
    assert (await call(client, partner, "POST", "/open/v1/debits", allowed)).status_code == 201
    row = await PartnerDebit.get(out_trade_no=allowed["out_trade_no"])
    assert row.risk_decision == "allow" and row.risk_reasons[0]["rule"] == "allow-list"
    assert await lists.remove(ctx, "etc_card", car.card_number)
    assert_error(await call(client, partner, "POST", "/open/v1/debits", debit_body(car, 500)), 403, "RISK_REVIEW")
    # the card is listed by its blind index, never in clear; every change is audited
    assert not await RiskListEntry.filter(value=car.card_number).exists()
    assert await AuditEvent.filter(action="risk.list.removed", entity_type="risk_list_entry").exists()


async def test_shadow_rules_change_nothing_and_record_what_they_would_have_done(client, sandbox, ctx, in_force):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=100_000)
    await in_force({"id": "big-toll", "type": "amount", "status": "shadow", "action": "block",
                    "applies_to": ["partner_debit"], "max_amount_fen": 1_000, "categories": ["toll"]},
                   velocity("burst-shadow", max_count=0, status="shadow"))
    body = debit_body(car, 5_000)
    assert (await call(client, partner, "POST", "/open/v1/debits", body)).status_code == 201
    row = await PartnerDebit.get(out_trade_no=body["out_trade_no"])
    assert row.status == "succeeded" and row.risk_decision == "allow"
    assert sorted((r["rule"], r["action"], r["shadow"]) for r in row.risk_reasons) == [
        ("big-toll", "block", True), ("burst-shadow", "review", True)]
    parking = debit_body(car, 5_000, category="parking")  # the amount rule is for tolls only
    assert (await call(client, partner, "POST", "/open/v1/debits", parking)).status_code == 201
    assert [r["rule"] for r in (await PartnerDebit.get(out_trade_no=parking["out_trade_no"])).risk_reasons] == [
        "burst-shadow"]


@pytest.mark.parametrize("bad", [
    {"version": 1, "rules": [{"id": "x", "type": "velocity", "status": "active", "action": "review",
                              "applies_to": ["partner_debit"], "key": "account", "window": "1m"}]},  # no limit
    {"version": "2", "rules": []},  # strict types: a number, not a string
    {"version": 1, "rules": [{"id": "x", "type": "amount", "status": "on", "action": "review",
                              "applies_to": ["partner_debit"], "max_amount_fen": 1}]},  # unknown status
    {"version": 1, "rules": [{"id": "a", "type": "amount", "status": "active", "action": "review",
                              "applies_to": ["partner_debit"], "max_amount_fen": 1}] * 2},  # duplicate ids
    {"version": 1, "rules": [], "extra": True},
    {"version": 1, "rules": [{"id": "x", "type": "teleport", "status": "active", "action": "block",
                              "applies_to": ["partner_debit"]}]},
])
def test_a_rule_set_that_does_not_fit_the_schema_is_refused(bad):
    with pytest.raises(rules.RuleSetInvalid):
        rules.parse(json.dumps(bad))


async def test_rule_sets_only_move_forward_and_each_load_is_audited(client, ctx, in_force, settings):
    from tests.payment_helpers import run_cli

    version = await in_force()
    with pytest.raises(rules.RuleSetStale):
        await rules.load(rules.parse(json.dumps({"version": version, "rules": []})), actor="test")
    event = await AuditEvent.filter(action="risk.rules.loaded", entity_id=str(version)).first()
    assert event.data["digest"] == (await RiskRuleSet.get(version=version)).digest
    done = await run_cli(settings, "risk", "rules", "schema")
    assert done.returncode == 0 and json.loads(done.stdout)["title"] == "RuleSetFile"
    path = Path(settings.var_dir) / f"rules-{version + 1}.json"
    text = json.dumps({"version": version + 1, "rules": [velocity(max_count=100, status="shadow")]})
    await asyncio.to_thread(path.write_text, text, encoding="utf-8")
    analyst, checker = await new_staff(ctx, "risk"), await new_staff(ctx, "risk")
    done = await run_cli(settings, "risk", "rules", "load", str(path), "--as", analyst.username, "--reason", "放宽阈值")
    assert done.returncode == 0, done.stderr
    proposal = re.search(r"proposal #([0-9]+): 启用风控规则集第 ([0-9]+) 版（1 条规则，其中影子规则 1 条）", done.stdout)
    assert proposal and int(proposal[2]) == version + 1, done.stdout
    assert await rules.newest_version() == version  # not before a second analyst approves
    approved = await run_cli(settings, "proposal", "approve", proposal[1], "--as", checker.username)
    assert approved.returncode == 0 and json.loads(approved.stdout)["result"]["version"] == version + 1, approved
    stale = await run_cli(settings, "risk", "rules", "load", str(path), "--as", analyst.username, "--reason", "再次加载")
    assert stale.returncode == 1 and "RISK_RULES_STALE" in stale.stderr
