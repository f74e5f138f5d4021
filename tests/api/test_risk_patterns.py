"""The seeded fraud patterns, each caught through the real path (HTTP, the database, the emulators) by
the rule of the baseline rule set (``risk/baseline.json``) meant for it, with the reason recorded; held
top-ups and withdrawals waiting for an operator; every other sensitive step screened; and ``rules test``
reporting what a candidate rule set would have decided differently."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from core.clock import utcnow
from handlers.open.debits import RefundBody
from models.accounts import Account, CardTransfer
from models.audit import AuditEvent
from models.risk import RiskEvent
from services.risk import engine, lists
from tests.account_helpers import (card_balance, ledger_is_consistent, new_key, open_account, signed_application,
                                   submit, top_up, withdraw)
from tests.helpers import assert_error, rules_in_force
from tests.partner_helpers import (bound_car, call, debit_body, etc_card, new_partner, register_vehicle,
                                   start_binding)
from tests.payment_helpers import run_cli
from tests.staff_helpers import new_staff

BASELINE = Path(__file__).resolve().parents[2] / "risk" / "baseline.json"
BEIJING, HEFEI = (39.9042, 116.4074), (31.8206, 117.2272)  # about 900 km apart


async def load(source: dict) -> int:
    return await rules_in_force(source["rules"], **{k: v for k, v in source.items() if k not in ("rules", "version")})


@pytest.fixture
async def baseline():
    """The baseline rule set in force for one test; afterwards an empty one (nothing fires)."""
    version = await load(json.loads(BASELINE.read_text()))
    yield version
    await load({"rules": []})


async def event_for(reference: str) -> RiskEvent:
    return await RiskEvent.filter(reference=reference).order_by("-id").first()


def fired(event: RiskEvent) -> list[str]:
    return [r["rule"] for r in event.reasons or [] if not r["shadow"]]


async def test_card_testing_is_held_and_an_operator_rejects_it(client, sandbox, ctx, settings, baseline):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    answers = [await top_up(client, user, account["id"], 100) for _ in range(6)]  # many small top-ups, one card
    assert [a.status_code for a in answers] == [201] * 5 + [202], [a.text for a in answers]
    held = answers[-1].json()
    assert held["status"] == "held" and held["balance_fen"] == 500
    transfer = await CardTransfer.get(id=held["id"])
    event = await event_for(transfer.request_id)
    assert (event.subject, event.decision, event.rule_version, fired(event)) == ("top_up", "review", baseline,
                                                                              ["card-testing"])
    assert event.reasons[0]["key"] == "bank_card" and event.reasons[0]["count"] == 6
    assert event.bank_card and person.card_number not in json.dumps(event.reasons)  # the card by blind index only
    assert (await Account.get(id=account["id"])).pending_in_fen == 100  # room reserved, nothing pulled
    assert await card_balance(client, person.card_number) == 100_000 - 500

    listed = await run_cli(settings, "risk", "review", "list")
    assert listed.returncode == 0 and f"#{transfer.id}" in listed.stdout and "card-testing" in listed.stdout, listed
    reviewer = await new_staff(ctx, "reviewer")
    rejected = await run_cli(settings, "risk", "review", "reject", str(transfer.id), "--note", "card testing",
                             "--as", reviewer.username)
    assert rejected.returncode == 0 and "declined (RISK_REJECTED)" in rejected.stdout, rejected
    assert await AuditEvent.filter(action="staff.transfer_rejected", actor=f"staff:{reviewer.id}").exists()
    again = await run_cli(settings, "risk", "review", "approve", str(transfer.id), "--note", "called the customer",
                          "--as", reviewer.username)  # no longer held: refused
    assert again.returncode == 1 and "TRANSFER_NOT_HELD" in again.stderr
    after = await Account.get(id=account["id"])
    assert (after.balance_fen, after.pending_in_fen) == (500, 0)
    assert await card_balance(client, person.card_number) == 100_000 - 500  # never pulled
    assert await ledger_is_consistent() == []


async def test_a_new_device_draining_the_balance_is_held_until_an_operator_lets_it_go(client, sandbox, ctx, settings,
                                                                                     baseline):
    user, person, account = await open_account(client, sandbox, card_balance_fen=80_000)
    assert (await top_up(client, user, account["id"], 50_000)).status_code == 201
    phone = {**user.headers, "X-Device": "new-phone-" + secrets.token_hex(6)}
    path = f"/api/v1/accounts/{account['id']}/withdrawals"
    part = await client.post(path, json={"amount_fen": 10_000}, headers={**phone, "Idempotency-Key": new_key()})
    assert part.status_code == 201, part.text  # a part of it from the new phone: fine
    drain = await client.post(path, json={"amount_fen": 40_000}, headers={**phone, "Idempotency-Key": new_key()})
    assert drain.status_code == 202 and drain.json()["status"] == "held", drain.text
    transfer = await CardTransfer.get(id=drain.json()["id"])
    event = await event_for(transfer.request_id)
    assert fired(event) == ["new-device-drain"] and event.reasons[0]["balance_share"] == 1.0
    assert (await Account.get(id=account["id"])).balance_fen == 0  # debited while held
    assert await card_balance(client, person.card_number) == 30_000 + 10_000  # the held part not on the card yet

    reviewer = await new_staff(ctx, "reviewer")
    approved = await run_cli(settings, "risk", "review", "approve", str(transfer.id), "--note", "called the customer",
                             "--as", reviewer.username)  # ¥400: below the four-eyes threshold, one reviewer
    assert approved.returncode == 0 and "succeeded" in approved.stdout, approved
    assert await card_balance(client, person.card_number) == 80_000
    assert await ledger_is_consistent() == []


async def test_a_cloned_plate_is_blocked_at_the_second_place(client, sandbox, ctx, baseline):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=100_000)
    here = await call(client, partner, "POST", "/open/v1/debits",
                      {**debit_body(car, 2_000), "location": {"lat": BEIJING[0], "lng": BEIJING[1]}})
    assert here.status_code == 201, here.text
    near = await call(client, partner, "POST", "/open/v1/debits",  # the same gantry again: not travel
                      {**debit_body(car, 2_000), "location": {"lat": BEIJING[0] + 0.01, "lng": BEIJING[1]}})
    assert near.status_code == 201, near.text
    far_body = {**debit_body(car, 2_000, by="plate"), "location": {"lat": HEFEI[0], "lng": HEFEI[1]}}
    far = await call(client, partner, "POST", "/open/v1/debits", far_body)
    assert_error(far, 403, "RISK_BLOCKED")
    event = await event_for(f"{partner.app_id}:{far_body['out_trade_no']}")
    assert fired(event) == ["cloned-plate"]
    reason = event.reasons[0]
    assert reason["km"] >= 800 and reason["minutes"] < 10 and reason["kmh"] > 300
    assert (event.lat, event.lng) == HEFEI
    shown = await call(client, partner, "GET", f"/open/v1/debits/{far_body['out_trade_no']}")
    assert shown.json()["status"] == "refused" and shown.json()["refusal_code"] == "RISK_BLOCKED"


async def test_a_burst_of_partner_debits_is_held_from_the_sixth(client, sandbox, ctx, baseline):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=100_000)
    answers = [await call(client, partner, "POST", "/open/v1/debits", debit_body(car, 500, category="parking"))
               for _ in range(6)]
    assert [a.status_code for a in answers] == [201] * 5 + [403]
    assert_error(answers[-1], 403, "RISK_REVIEW")
    event = await event_for(f"{partner.app_id}:{json.loads(answers[-1].request.content)['out_trade_no']}")
    assert fired(event) == ["debit-burst"] and event.counted is False
    # the holder sees the held one on the binding, newest first, as refused: neither booked nor owed
    listed = await client.get(f"/api/v1/etc-bindings/{car.binding['id']}/debits", headers=car.user.headers)
    assert listed.status_code == 200, listed.text
    assert [(d["status"], d["refusal_code"]) for d in listed.json()["debits"]] == [("refused", "RISK_REVIEW")] + [
        ("succeeded", None)] * 5


async def test_a_debit_risk_control_held_cannot_be_refunded(client, sandbox, ctx, baseline):
    # Given a debit held by the burst rule: recorded as refused, nothing taken from the account
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=100_000)
    answers = [await call(client, partner, "POST", "/open/v1/debits", debit_body(car, 500, category="parking"))
               for _ in range(6)]
    assert_error(answers[-1], 403, "RISK_REVIEW")
    held = json.loads(answers[-1].request.content)["out_trade_no"]
    balance = (await Account.get(id=car.account["id"])).balance_fen
    # When the partner refunds it (the body's number field as the document names it)
    number = next(name for name in RefundBody.model_fields if name.endswith("refund_no"))
    refund = await call(client, partner, "POST", f"/open/v1/debits/{held}/refund", {number: "R-HELD-01", "amount_fen": 500})
    # Then it is refused, and no money is returned that was never taken
    assert_error(refund, 409, "DEBIT_NOT_REFUNDABLE")
    assert (await Account.get(id=car.account["id"])).balance_fen == balance
    assert await ledger_is_consistent() == []


async def test_a_listed_id_cannot_open_an_account(client, sandbox, ctx, baseline):
    user, person, app = await signed_application(client, sandbox)
    await lists.put(ctx, "id", person.id_number, action="block", note="reported stolen")
    refused = await submit(client, user, app["id"])
    assert_error(refused, 403, "RISK_BLOCKED")
    shown = (await client.get(f"/api/v1/account-applications/{app['id']}", headers=user.headers)).json()
    assert (shown["status"], shown["rejection_code"]) == ("rejected", "RISK_BLOCKED")
    event = await event_for(f"application:{app['id']}")
    assert (event.subject, event.decision, fired(event)) == ("account_opening", "block", ["listed"])
    assert event.reasons[0]["lists"] == ["id"] and event.id_index and person.id_number not in (event.id_index or "")
    assert not await Account.filter(user_id=event.user_id).exists()


async def test_every_sensitive_step_is_screened(client, sandbox, ctx, baseline):
    """ETC binding and payment orders ask the same decision point: a listed plate or device is refused."""
    user, _, account = await open_account(client, sandbox)
    vehicle = await register_vehicle(client, user)
    await lists.put(ctx, "plate", vehicle["plate_number"], plate_color=vehicle["plate_color"], action="block",
                    expires_in_s=600)
    assert_error(await start_binding(client, user, vehicle["id"], account["id"], etc_card()), 403, "RISK_BLOCKED")

    device = "listed-device-" + secrets.token_hex(4)
    await lists.put(ctx, "device", device, action="block", expires_in_s=600)
    refused = await withdraw(client, user, account["id"], 1)  # no device header: not this rule's business
    assert refused.status_code != 403
    blocked = await client.post(f"/api/v1/accounts/{account['id']}/top-ups", json={"amount_fen": 100},
                                headers={**user.headers, "X-Device": device, "Idempotency-Key": new_key()})
    assert_error(blocked, 403, "RISK_BLOCKED")
    assert (await Account.get(id=account["id"])).pending_in_fen == 0  # nothing reserved for a blocked one


async def test_rules_test_replays_recent_decisions_and_shows_what_a_candidate_changes(client, sandbox, ctx, settings,
                                                                                      baseline, tmp_path):
    since = utcnow().isoformat()  # what this test decides (under the baseline), not what others did before
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=100_000)
    bodies = [debit_body(car, 700) for _ in range(3)]
    for body in bodies:
        assert (await call(client, partner, "POST", "/open/v1/debits", body)).status_code == 201
    candidate = json.loads(BASELINE.read_text())
    for rule in candidate["rules"]:
        if rule["id"] == "debit-burst":
            rule["max_count"] = 2  # stricter: the third debit in a minute would have been held
    candidate["rules"].append({"id": "watch-tolls", "type": "amount", "status": "shadow", "action": "block",
                               "applies_to": ["partner_debit"], "max_amount_fen": 600})  # watched, never enforced
    path = tmp_path / "candidate.json"
    path.write_text(json.dumps({**candidate, "version": 999_999}))
    out = await run_cli(settings, "risk", "rules", "test", str(path), "--since", since)
    assert out.returncode == 0, out.stderr
    third = f"{partner.app_id}:{bodies[2]['out_trade_no']}"
    line = next((line for line in out.stdout.splitlines() if third in line), None)
    assert line is not None and "allow -> review (debit-burst)" in line, out.stdout
    assert f"{partner.app_id}:{bodies[1]['out_trade_no']}" not in out.stdout  # the second was within it
    assert "shadow watch-tolls: would have acted on 3" in out.stdout, out.stdout
    # the same rule set as in force changes nothing
    path.write_text(BASELINE.read_text())
    same = await run_cli(settings, "risk", "rules", "test", str(path), "--since", since)
    assert same.returncode == 0 and "\n0 decided differently" in same.stdout, same.stdout


async def test_decisions_are_recorded_whatever_the_rules(client, sandbox, ctx):
    """The history a new rule set will read is recorded even when no rule fires (or none is loaded)."""
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 300)
    assert (await call(client, partner, "POST", "/open/v1/debits", body)).status_code == 201
    event = await event_for(f"{partner.app_id}:{body['out_trade_no']}")
    assert event.subject == "partner_debit" and event.counted and event.amount_fen == 300
    assert event.plate and event.etc_card and event.partner == partner.app_id
    assert engine.counted("partner_debit", "review") is False and engine.counted("top_up", "review") is True


async def test_a_malformed_device_id_is_refused_and_moves_nothing(client, sandbox):
    user, _, account = await open_account(client, sandbox, card_balance_fen=10_000)
    for bad in ("short", "has space in it", "x" * 65, "dev/ice/0001"):
        resp = await client.post(f"/api/v1/accounts/{account['id']}/top-ups", json={"amount_fen": 100},
                                 headers={**user.headers, "X-Device": bad,
                                          "Idempotency-Key": new_key()})
        assert_error(resp, 422, "DEVICE_ID_INVALID")
    assert not await CardTransfer.filter(account_id=account["id"]).exists()
