"""Restrictions of an account (issue 22): the holder's loss report, lifted only with a fresh face check; the
bank's fraud and judicial freezes (``python -m app account freeze|unfreeze``, audited with the operator);
every outflow refused while one is in force, under the account lock, and inflows still booked; a judicial
freeze of an amount lets out only the balance above it, also under 50 concurrent partner debits; the full
account number for its holder after a face check. ``ledger check`` runs after each test (conftest)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from models.accounts import Account, AccountRestriction, LedgerEntry
from models.audit import AuditEvent
from models.etc import EtcBinding
from models.identity import AttemptCounter
from models.partners import PartnerDebit
from services.accounts import restrictions
from tests.account_helpers import set_card_balance, top_up, withdraw
from tests.api.test_funding import network_transfers
from tests.contract_helpers import fresh_face
from tests.helpers import assert_error, pass_face
from tests.partner_helpers import bound_car, call, debit_body, new_partner
from tests.staff_helpers import new_staff

ROOT = Path(__file__).resolve().parents[2]
DEBITS = "/open/v1/debits"


def loss_report(account_id: int) -> str:
    return f"/api/v1/accounts/{account_id}/loss-report"


async def state(account_id: int) -> tuple[int, int]:
    """(balance, number of ledger entries): what a refused outflow must leave as it was."""
    return (await Account.get(id=account_id)).balance_fen, await LedgerEntry.filter(account_id=account_id).count()


async def more_face_attempts() -> None:
    """Opening the account and binding the car took three of the day's five face attempts: give the
    test its own (the daily limit is not what these tests are about)."""
    await AttemptCounter.all().delete()


async def lift(client, user, account_id: int, verify_id):
    return await client.request("DELETE", loss_report(account_id), headers=user.headers, json={"verify_id": verify_id})


def account_cli(settings, *args, command: str = "account") -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "VAR_DIR": settings.var_dir, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app", command, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


async def test_a_debit_during_a_loss_report_is_refused_and_books_nothing(client, sandbox, ctx):
    # Given a bound car on an account with ¥100, reported lost by its holder
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    account_id = car.account["id"]
    reported = await client.post(loss_report(account_id), headers=car.user.headers)
    assert reported.status_code == 201, reported.text
    assert reported.json()["status"] == "restricted"
    assert [(r["code"], r["by"]) for r in reported.json()["restrictions"]] == [("LOSS_REPORTED", "holder")]
    again = await client.post(loss_report(account_id), headers=car.user.headers)
    assert again.status_code == 200 and len(again.json()["restrictions"]) == 1  # a repeat changes nothing
    before = await state(account_id)
    # When a partner debits it
    body = debit_body(car, 1_500)
    refused = await call(client, partner, "POST", DEBITS, body)
    # Then it is refused, nothing booked and nothing owed, and a retry is answered the same
    assert_error(refused, 409, "ACCOUNT_RESTRICTED")
    assert await state(account_id) == before
    row = await PartnerDebit.get(out_trade_no=body["out_trade_no"])
    assert (row.status, row.refusal_code) == ("refused", "ACCOUNT_RESTRICTED")
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0
    retried = await call(client, partner, "POST", DEBITS, body)
    assert_error(retried, 409, "ACCOUNT_RESTRICTED")
    assert retried.headers.get("Idempotent-Replayed") == "true"
    # and the account page says so
    shown = (await client.get(f"/api/v1/accounts/{account_id}", headers=car.user.headers)).json()
    assert shown["status"] == "restricted" and shown["restrictions"][0]["code"] == "LOSS_REPORTED"
    # the moves are audit events: the restriction set, and the account's status
    actions = [e.action for e in await AuditEvent.filter(entity_type="account", entity_id=str(account_id))]
    assert actions == ["account.restriction.set", "account.restricted"]


async def test_a_withdrawal_during_a_loss_report_is_refused_and_sends_nothing(client, sandbox):
    car = await bound_car(client, sandbox, balance_fen=10_000)
    account_id = car.account["id"]
    assert (await client.post(loss_report(account_id), headers=car.user.headers)).status_code == 201
    sent = await network_transfers(client, car.person.card_number)
    before = await state(account_id)
    assert_error(await withdraw(client, car.user, account_id, 1_000), 409, "ACCOUNT_RESTRICTED")
    assert await state(account_id) == before
    assert await network_transfers(client, car.person.card_number) == sent


async def test_an_inflow_books_on_a_restricted_account(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    account_id = car.account["id"]
    body = debit_body(car, 2_000)
    assert (await call(client, partner, "POST", DEBITS, body)).status_code == 201
    assert (await client.post(loss_report(account_id), headers=car.user.headers)).status_code == 201
    # a top-up from the bound card, and a partner's refund, still come in
    await set_card_balance(sandbox, car.person.card_number, 100_000)
    assert (await top_up(client, car.user, account_id, 3_000)).status_code == 201
    refunded = await call(client, partner, "POST", f"{DEBITS}/{body['out_trade_no']}/refund",
                          {"out_refund_no": "R" + body["out_trade_no"], "amount_fen": 500})
    assert refunded.status_code == 201, refunded.text
    assert (await Account.get(id=account_id)).balance_fen == 10_000 - 2_000 + 3_000 + 500


async def test_lifting_a_loss_report_needs_a_fresh_face_verification(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    account_id = car.account["id"]
    assert (await client.post(loss_report(account_id), headers=car.user.headers)).status_code == 201
    # no verification, one that failed, one never fetched, one already used: refused, the report stays
    assert_error(await client.request("DELETE", loss_report(account_id), headers=car.user.headers, json={}),
                 422, "VALIDATION_ERROR", "verify_id")
    assert_error(await lift(client, car.user, account_id, "no-such-verification"), 422, "FACE_VERIFICATION_INVALID")
    await more_face_attempts()
    failed = (await pass_face(client, sandbox, car.user, result="fail")).json()["verify_id"]
    assert_error(await lift(client, car.user, account_id, failed), 422, "FACE_VERIFICATION_STALE")
    pending = (await client.post("/api/v1/identity/face", headers=car.user.headers)).json()["verify_id"]
    assert_error(await lift(client, car.user, account_id, pending), 422, "FACE_VERIFICATION_PENDING")
    used = await fresh_face(client, sandbox, car.user)
    shown = await client.post(f"/api/v1/accounts/{account_id}/reveal-number", headers=car.user.headers,
                              json={"verify_id": used})
    assert shown.status_code == 200, shown.text
    assert_error(await lift(client, car.user, account_id, used), 422, "FACE_VERIFICATION_USED")
    assert (await Account.get(id=account_id)).status == "restricted"
    await more_face_attempts()
    assert_error(await call(client, partner, "POST", DEBITS, debit_body(car, 100)), 409, "ACCOUNT_RESTRICTED")
    # a fresh one lifts it, is used up by it, and the next debit books
    verify_id = await fresh_face(client, sandbox, car.user)
    lifted = await lift(client, car.user, account_id, verify_id)
    assert lifted.status_code == 200, lifted.text
    assert (lifted.json()["status"], lifted.json()["restrictions"]) == ("active", [])
    row = await AccountRestriction.get(account_id=account_id)
    assert row.lifted_at is not None and row.lifted_by == "holder"
    assert (await call(client, partner, "POST", DEBITS, debit_body(car, 100))).status_code == 201
    assert (await Account.get(id=account_id)).balance_fen == 9_900
    # nothing left to lift
    assert (await client.post(loss_report(account_id), headers=car.user.headers)).status_code == 201
    assert_error(await lift(client, car.user, account_id, verify_id), 422, "FACE_VERIFICATION_USED")


async def test_lifting_what_is_not_reported_is_refused_and_keeps_the_face_check(client, sandbox):
    car = await bound_car(client, sandbox, balance_fen=100)
    verify_id = await fresh_face(client, sandbox, car.user)
    assert_error(await lift(client, car.user, car.account["id"], verify_id), 409, "LOSS_REPORT_NOT_IN_FORCE")
    shown = await client.post(f"/api/v1/accounts/{car.account['id']}/reveal-number", headers=car.user.headers,
                              json={"verify_id": verify_id})
    assert shown.status_code == 200  # the refused lifting did not use it up


async def test_a_loss_report_does_not_lift_a_bank_freeze(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    account_id = car.account["id"]
    await restrictions.freeze(account_id, kind="fraud", reason="可疑交易", operator_name="王五")
    assert (await client.post(loss_report(account_id), headers=car.user.headers)).status_code == 201
    assert (await lift(client, car.user, account_id, await fresh_face(client, sandbox, car.user))).status_code == 200
    shown = (await client.get(f"/api/v1/accounts/{account_id}", headers=car.user.headers)).json()
    assert shown["status"] == "restricted"
    assert [(r["code"], r["by"]) for r in shown["restrictions"]] == [("FRAUD_FREEZE", "bank")]  # not the name
    assert_error(await call(client, partner, "POST", DEBITS, debit_body(car, 100)), 409, "ACCOUNT_RESTRICTED")


async def test_a_judicial_freeze_of_300_on_500_lets_200_out_and_no_more(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=50_000)
    account_id = car.account["id"]
    await restrictions.freeze(account_id, kind="judicial", reason="法院协助冻结", operator_name="李四",
                              held_fen=30_000, document_ref="(2026)京0105执123号")
    shown = (await client.get(f"/api/v1/accounts/{account_id}", headers=car.user.headers)).json()
    assert shown["restrictions"] == [{"code": "JUDICIAL_FREEZE", "since": shown["restrictions"][0]["since"],
                                      "by": "bank", "held_fen": 30_000}]
    assert_error(await call(client, partner, "POST", DEBITS, debit_body(car, 20_001)), 409, "ACCOUNT_RESTRICTED")
    assert (await call(client, partner, "POST", DEBITS, debit_body(car, 20_000))).status_code == 201
    assert_error(await call(client, partner, "POST", DEBITS, debit_body(car, 1)), 409, "ACCOUNT_RESTRICTED")
    assert_error(await withdraw(client, car.user, account_id, 1), 409, "ACCOUNT_RESTRICTED")
    assert (await Account.get(id=account_id)).balance_fen == 30_000
    # money still comes in, and what comes in above the held amount may leave again
    await set_card_balance(sandbox, car.person.card_number, 100_000)
    assert (await top_up(client, car.user, account_id, 1_000)).status_code == 201
    assert (await call(client, partner, "POST", DEBITS, debit_body(car, 1_000))).status_code == 201
    assert (await Account.get(id=account_id)).balance_fen == 30_000


async def test_a_judicial_freeze_holds_under_fifty_concurrent_debits(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=50_000)
    account_id = car.account["id"]
    await restrictions.freeze(account_id, kind="judicial", reason="法院协助冻结", operator_name="李四",
                              held_fen=30_000)
    answers = await asyncio.gather(*(call(client, partner, "POST", DEBITS, debit_body(car, 1_000))
                                     for _ in range(50)))
    assert sorted(a.status_code for a in answers) == [201] * 20 + [409] * 30, [
        a.text for a in answers if a.status_code not in (201, 409)][:3]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"ACCOUNT_RESTRICTED"}
    assert (await Account.get(id=account_id)).balance_fen == 30_000
    assert await LedgerEntry.filter(account_id=account_id, kind="toll").count() == 20
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0


async def test_the_freeze_commands_are_audited_with_the_operator_and_reason(client, sandbox, ctx, settings):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    account_id = str(car.account["id"])
    frozen = await asyncio.to_thread(account_cli, settings, "freeze", account_id, "--kind", "fraud",
                                     "--reason", "疑似电信诈骗", "--operator", "张三")
    assert frozen.returncode == 0, frozen.stderr
    assert json.loads(frozen.stdout)["status"] == "restricted"
    assert_error(await call(client, partner, "POST", DEBITS, debit_body(car, 100)), 409, "ACCOUNT_RESTRICTED")
    # the holder's loss-report lifting cannot lift it; only the bank's command does
    maker, checker = await new_staff(ctx, "operator"), await new_staff(ctx, "risk")
    refused = await asyncio.to_thread(account_cli, settings, "unfreeze", account_id, "--kind", "judicial",
                                      "--reason", "没有司法冻结", "--as", maker.username)
    assert refused.returncode == 1 and "RESTRICTION_NOT_IN_FORCE" in refused.stderr
    # unfreezing is maker-checker: proposed by one member, lifted when a different one approves
    proposed = await asyncio.to_thread(account_cli, settings, "unfreeze", account_id, "--kind", "fraud",
                                       "--reason", "核实为本人交易", "--as", maker.username)
    assert proposed.returncode == 0 and json.loads(proposed.stdout)["status"] == "pending", proposed.stderr
    assert (await Account.get(id=int(account_id))).status == "restricted"
    lifted = await asyncio.to_thread(account_cli, settings, "approve", str(json.loads(proposed.stdout)["proposal_id"]),
                                     "--as", checker.username, command="proposal")
    assert lifted.returncode == 0, lifted.stderr
    assert json.loads(lifted.stdout)["result"]["status"] == "active"
    events = await AuditEvent.filter(entity_type="account", entity_id=account_id).order_by("seq")
    assert [(e.action, e.actor) for e in events] == [
        ("account.restriction.set", "operator:张三"), ("account.restricted", "operator:张三"),
        ("account.restriction.lifted", f"staff:{checker.id}"), ("account.active", f"staff:{checker.id}")]
    assert events[0].data["reason"] == "疑似电信诈骗" and events[0].data["code"] == "FRAUD_FREEZE"
    assert events[2].data["lift_reason"] == "核实为本人交易"
    assert (await call(client, partner, "POST", DEBITS, debit_body(car, 100))).status_code == 201
    # bad input: no operator, a held amount on a fraud freeze, an unknown account
    for args in (["freeze", account_id, "--kind", "fraud", "--reason", "r", "--operator", " "],
                 ["freeze", account_id, "--kind", "fraud", "--reason", "r", "--operator", "张三", "--held-fen", "5"],
                 ["freeze", "999999999", "--kind", "fraud", "--reason", "r", "--operator", "张三"]):
        done = await asyncio.to_thread(account_cli, settings, *args)
        assert done.returncode in (1, 2) and done.stderr.startswith("error:"), done.stdout + done.stderr
    assert (await Account.get(id=int(account_id))).status == "active"


async def test_the_full_number_after_a_face_check_audited_masked(client, sandbox):
    car = await bound_car(client, sandbox, balance_fen=100)
    account_id = car.account["id"]
    path = f"/api/v1/accounts/{account_id}/reveal-number"
    assert_error(await client.post(path, headers=car.user.headers, json={"verify_id": "nope"}), 422,
                 "FACE_VERIFICATION_INVALID")
    verify_id = await fresh_face(client, sandbox, car.user)
    shown = await client.post(path, headers=car.user.headers, json={"verify_id": verify_id})
    assert shown.status_code == 200, shown.text
    number = (await Account.get(id=account_id)).number
    assert shown.json() == {"account_number": number}
    assert_error(await client.post(path, headers=car.user.headers, json={"verify_id": verify_id}), 422,
                 "FACE_VERIFICATION_USED")
    event = await AuditEvent.filter(action="account.number.revealed", entity_id=str(account_id)).first()
    assert event is not None and number not in json.dumps(event.data, ensure_ascii=False)


async def test_nothing_books_on_a_closed_account(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    account_id = car.account["id"]
    body = debit_body(car, 1_000)
    assert (await call(client, partner, "POST", DEBITS, body)).status_code == 201
    await Account.filter(id=account_id).update(status="closed")  # closing itself is later work
    before = await state(account_id)
    assert_error(await call(client, partner, "POST", DEBITS, debit_body(car, 100)), 409, "ACCOUNT_CLOSED")
    refund = await call(client, partner, "POST", f"{DEBITS}/{body['out_trade_no']}/refund",
                        {"out_refund_no": "R" + body["out_trade_no"], "amount_fen": 100})
    assert_error(refund, 409, "ACCOUNT_CLOSED")
    assert_error(await client.post(loss_report(account_id), headers=car.user.headers), 409, "ACCOUNT_CLOSED")
    assert await state(account_id) == before
