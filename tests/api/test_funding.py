"""Top-ups and withdrawals over the API, through the card-network emulator: idempotency keys, lost
answers settled by asking the network (never by pulling twice), declines, the Class III cap before any
money moves, and the reconciliation job. ``ledger check`` runs after each test (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from core.clock import utcnow
from models.accounts import Account, CardTransfer, LedgerEntry
from models.audit import AuditEvent
from services.accounts import funding, rules
from tests.account_helpers import card_balance, new_key, open_account, top_up, withdraw
from tests.helpers import assert_error, audited_moves, rules_in_force

PULL_PATH, QUERY_PATH = "cardnet/v1/transfers", "cardnet/v1/transfers/{request_id}"


@pytest.fixture(scope="module")
async def opened(server):
    """One Class II account shared by the read-only checks of this module."""
    import httpx

    from tests.helpers import Sandbox

    async with httpx.AsyncClient(base_url=server.url, timeout=15, trust_env=False) as client:
        return await open_account(client, Sandbox(client), card_balance_fen=10_000_000)


async def network_transfers(client, card_number: str) -> list[dict]:
    resp = await client.get("/sandbox/control/transfers", params={"card_number": card_number})
    assert resp.status_code == 200, resp.text
    return resp.json()["transfers"]


async def balance(account_id: int) -> int:
    return (await Account.get(id=account_id)).balance_fen


async def test_a_top_up_pulls_from_the_card_and_credits_the_account(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    resp = await top_up(client, user, account["id"], 30_000)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "succeeded" and body["direction"] == "pull" and body["amount_fen"] == 30_000
    assert body["balance_fen"] == 30_000 and body["finished_at"] and body["decline_reason"] is None
    assert "idempotent-replayed" not in resp.headers
    assert await card_balance(client, person.card_number) == 70_000
    got = (await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
    assert got["balance_fen"] == 30_000 and got["pending_in_fen"] == 0
    assert got["limits"]["daily_outflow_used_fen"] == 0  # money in is no outflow
    entries = (await client.get(f"/api/v1/accounts/{account['id']}/transactions", headers=user.headers)).json()["entries"]
    assert [(e["kind"], e["direction"], e["amount_fen"], e["balance_after_fen"]) for e in entries] == [
        ("top_up", "credit", 30_000, 30_000)]
    assert entries[0]["counterparty"] == account["bound_card_masked"]
    sent = await network_transfers(client, person.card_number)
    assert [(t["direction"], t["amount_fen"], t["status"]) for t in sent] == [("debit", 30_000, "SUCCEEDED")]
    assert sent[0]["request_id"] == entries[0]["reference"]


async def test_the_same_key_and_body_answer_the_first_answer_again(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    key = new_key()
    first = await top_up(client, user, account["id"], 12_300, key=key)
    assert first.status_code == 201
    again = await top_up(client, user, account["id"], 12_300, key=key)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await network_transfers(client, person.card_number)) == 1
    assert await card_balance(client, person.card_number) == 100_000 - 12_300
    assert await balance(account["id"]) == 12_300


async def test_the_same_key_with_another_request_is_refused(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    key = new_key()
    assert (await top_up(client, user, account["id"], 1_000, key=key)).status_code == 201
    assert_error(await top_up(client, user, account["id"], 2_000, key=key), 422, "IDEMPOTENCY_KEY_REUSED",
                 "Idempotency-Key")
    # the key belongs to this user: another user's request with the same key is theirs alone
    other, other_person, other_account = await open_account(client, sandbox, card_balance_fen=100_000)
    assert (await top_up(client, other, other_account["id"], 2_000, key=key)).status_code == 201
    # spacing and key order are not "another request"
    same = await client.post(f"/api/v1/accounts/{account['id']}/top-ups", content=b'{ "amount_fen" : 1000 }',
                             headers={**user.headers, "Idempotency-Key": key, "Content-Type": "application/json"})
    assert same.status_code == 201 and same.headers["idempotent-replayed"] == "true"
    assert await balance(account["id"]) == 1_000 and await card_balance(client, person.card_number) == 99_000


async def test_a_key_is_kept_at_least_a_day_then_freed(client, sandbox):
    from models.infra import IdempotencyRecord
    from services import idempotency

    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    key = new_key()
    assert (await top_up(client, user, account["id"], 1_000, key=key)).status_code == 201
    record = await IdempotencyRecord.get(key=key)
    assert record.expires_at - record.created_at >= timedelta(hours=24)
    # the sweep a minute short of a day later leaves it: a retry then still finds the first answer
    await idempotency.sweep(now=record.created_at + timedelta(hours=23, minutes=59))
    assert await IdempotencyRecord.exists(id=record.id)
    replay = await top_up(client, user, account["id"], 1_000, key=key)
    assert replay.headers["idempotent-replayed"] == "true"
    # past its time the key is free again (the sweep, or the next request under it, forgets it)
    await IdempotencyRecord.filter(id=record.id).update(expires_at=utcnow() - timedelta(seconds=1))
    assert (await top_up(client, user, account["id"], 2_000, key=key)).status_code == 201
    assert await balance(account["id"]) == 3_000 and await card_balance(client, person.card_number) == 97_000
    await IdempotencyRecord.filter(key=key).update(expires_at=utcnow() - timedelta(seconds=1))
    assert await idempotency.sweep() >= 1 and not await IdempotencyRecord.exists(key=key)


def test_keys_cannot_be_configured_to_last_less_than_a_day(tmp_path):
    from app.config import load_settings
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="IDEMPOTENCY_TTL_S"):
        load_settings({"VAR_DIR": str(tmp_path), "IDEMPOTENCY_TTL_S": "3600"}, dotenv=False)
    assert load_settings({"VAR_DIR": str(tmp_path), "IDEMPOTENCY_TTL_S": "86400"}, dotenv=False).idempotency_ttl_s == 86400


async def test_a_key_is_required_and_shaped(client, opened):
    user, _, account = opened
    path = f"/api/v1/accounts/{account['id']}/top-ups"
    assert_error(await client.post(path, json={"amount_fen": 100}, headers=user.headers), 400,
                 "IDEMPOTENCY_KEY_REQUIRED", "Idempotency-Key")
    for bad in ("short", "x" * 65, "has space-12345", "引号引号引号引号引号".encode()):
        resp = await client.post(path, json={"amount_fen": 100}, headers={**user.headers, "Idempotency-Key": bad})
        assert_error(resp, 422, "IDEMPOTENCY_KEY_INVALID", "Idempotency-Key")
    assert await balance(account["id"]) == 0


async def test_concurrent_requests_under_one_key_pull_once(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    key = new_key()
    answers = await asyncio.gather(*(top_up(client, user, account["id"], 5_000, key=key) for _ in range(5)))
    statuses = sorted(a.status_code for a in answers)
    assert 201 in statuses and set(statuses) <= {201, 409}, [a.text for a in answers]
    for a in answers:
        if a.status_code == 409:
            assert_error(a, 409, "IDEMPOTENCY_KEY_IN_USE")
    assert len(await network_transfers(client, person.card_number)) == 1
    assert await balance(account["id"]) == 5_000


async def test_a_lost_answer_is_settled_by_asking_the_network(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    # the network pulls the money, and the reply never arrives
    await sandbox.fault(PULL_PATH, when="after", drop=True)
    resp = await top_up(client, user, account["id"], 40_000)
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "succeeded" and resp.json()["balance_fen"] == 40_000
    assert await card_balance(client, person.card_number) == 60_000
    assert len(await network_transfers(client, person.card_number)) == 1  # asked, not pulled again
    assert [c["path"] for c in await sandbox.calls(QUERY_PATH)]  # the query was made


async def test_a_timeout_that_debited_the_card_credits_the_account_once(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    key = new_key()
    # the pull is done but its reply comes after our timeout, and the network cannot be asked either
    await sandbox.fault(PULL_PATH, when="after", delay_s=3)
    await sandbox.fault(QUERY_PATH, http_status=503, count=3)
    first = await top_up(client, user, account["id"], 25_000, key=key)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "pending" and first.json()["balance_fen"] == 0
    got = (await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
    assert got["pending_in_fen"] == 25_000 and got["balance_fen"] == 0
    assert await card_balance(client, person.card_number) == 75_000  # the money left the card
    # the user retries with the same key: the transfer is asked about, not sent again
    second = await top_up(client, user, account["id"], 25_000, key=key)
    assert second.status_code == 201, second.text
    assert second.json()["status"] == "succeeded" and second.json()["id"] == first.json()["id"]
    assert "idempotent-replayed" not in second.headers
    third = await top_up(client, user, account["id"], 25_000, key=key)
    assert third.json() == second.json() and third.headers["idempotent-replayed"] == "true"
    assert len(await network_transfers(client, person.card_number)) == 1
    assert await card_balance(client, person.card_number) == 75_000
    assert await balance(account["id"]) == 25_000
    assert await LedgerEntry.filter(account_id=account["id"], kind="top_up").count() == 1
    assert (await Account.get(id=account["id"])).pending_in_fen == 0


async def test_the_reconciliation_job_settles_what_nobody_asked_about(client, sandbox, ctx):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    await sandbox.fault(PULL_PATH, when="after", drop=True)
    await sandbox.fault(QUERY_PATH, http_status=503, count=3)
    assert (await top_up(client, user, account["id"], 8_000)).status_code == 202
    result = await funding.reconcile(ctx, older_than_s=0)
    assert result["succeeded"] >= 1
    assert await balance(account["id"]) == 8_000
    transfer = await CardTransfer.filter(account_id=account["id"]).first()
    assert transfer.status == "succeeded" and transfer.finished_at is not None
    # settling again changes nothing
    await funding.reconcile(ctx, older_than_s=0)
    assert await balance(account["id"]) == 8_000


async def test_a_transfer_the_network_never_received_is_closed_and_its_room_given_back(client, sandbox, ctx):
    user, person, account = await open_account(client, sandbox, "III", card_balance_fen=500_000)
    key = new_key()
    await sandbox.fault(PULL_PATH, http_status=500)  # refused before anything moved
    resp = await top_up(client, user, account["id"], 150_000, key=key)
    assert resp.status_code == 202
    assert (await Account.get(id=account["id"])).pending_in_fen == 150_000
    # within UNKNOWN_AFTER_S it stays pending; after, the job closes it
    assert (await funding.reconcile(ctx, older_than_s=0))["pending"] >= 1
    await CardTransfer.filter(account_id=account["id"]).update(
        created_at=utcnow() - timedelta(seconds=funding.UNKNOWN_AFTER_S + 1))
    await funding.reconcile(ctx, older_than_s=0)
    transfer = await CardTransfer.get(account_id=account["id"])
    assert (transfer.status, transfer.decline_reason) == ("declined", "NOT_RECEIVED")
    after = await Account.get(id=account["id"])
    assert (after.balance_fen, after.pending_in_fen) == (0, 0)
    assert await card_balance(client, person.card_number) == 500_000
    assert_error(await top_up(client, user, account["id"], 150_000, key=key), 422, "CARD_DECLINED")
    assert (await top_up(client, user, account["id"], 150_000)).status_code == 201  # a new key tries afresh


async def test_an_unreachable_network_moves_nothing_and_the_same_key_tries_again(client, sandbox, ctx, monkeypatch):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    key = new_key()
    monkeypatch.setattr(ctx.cardnet, "base_url", "http://127.0.0.1:9")  # nothing listens: the pull is never sent
    assert_error(await top_up(client, user, account["id"], 7_000, key=key), 503, "CARD_NETWORK_UNAVAILABLE")
    assert (await Account.get(id=account["id"])).pending_in_fen == 0
    monkeypatch.undo()
    again = await top_up(client, user, account["id"], 7_000, key=key)
    assert again.status_code == 201, again.text
    assert await balance(account["id"]) == 7_000 and await card_balance(client, person.card_number) == 93_000
    assert await CardTransfer.filter(account_id=account["id"]).count() == 2  # the unsent one, closed


async def test_a_declined_pull_moves_nothing_and_is_answered_again(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=1_000)
    key = new_key()
    err = assert_error(await top_up(client, user, account["id"], 5_000, key=key), 422, "CARD_DECLINED")
    assert "余额不足" in err["message"]
    replay = await top_up(client, user, account["id"], 5_000, key=key)
    assert replay.status_code == 422 and replay.headers["idempotent-replayed"] == "true"
    after = await Account.get(id=account["id"])
    assert (after.balance_fen, after.pending_in_fen) == (0, 0)
    assert not await LedgerEntry.filter(account_id=account["id"]).exists()
    await sandbox._post(f"bank-cards/{person.card_number}/block", {"blocked": True})
    err = assert_error(await top_up(client, user, account["id"], 500), 422, "CARD_DECLINED")
    assert "状态异常" in err["message"]


async def test_class_iii_top_ups_past_the_cap_are_refused_before_money_moves(client, sandbox):
    user, person, account = await open_account(client, sandbox, "III", card_balance_fen=1_000_000)
    cap = rules.RULES["III"].balance_cap_fen
    assert account["limits"]["balance_cap_fen"] == cap and account["limits"]["balance_room_fen"] == cap
    assert_error(await top_up(client, user, account["id"], cap + 1), 422, "BALANCE_CAP_EXCEEDED")
    assert await network_transfers(client, person.card_number) == []
    # concurrent top-ups: exactly those that fit under the cap go through, and only they touch the card
    answers = await asyncio.gather(*(top_up(client, user, account["id"], 15_000) for _ in range(20)))
    fits = cap // 15_000
    assert sorted(a.status_code for a in answers) == [201] * fits + [422] * (20 - fits)
    for a in answers:
        if a.status_code == 422:
            assert_error(a, 422, "BALANCE_CAP_EXCEEDED")
    assert await balance(account["id"]) == fits * 15_000
    assert await card_balance(client, person.card_number) == 1_000_000 - fits * 15_000
    assert len(await network_transfers(client, person.card_number)) == fits
    got = (await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
    assert got["limits"]["balance_room_fen"] == cap - fits * 15_000


async def test_a_withdrawal_pushes_to_the_card_outside_the_limits(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    assert (await top_up(client, user, account["id"], 60_000)).status_code == 201
    resp = await withdraw(client, user, account["id"], 20_000)
    assert resp.status_code == 201, resp.text
    assert resp.json()["direction"] == "push" and resp.json()["balance_fen"] == 40_000
    assert await card_balance(client, person.card_number) == 60_000
    got = (await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
    assert got["limits"]["daily_outflow_used_fen"] == 0  # to the bound card: outside the outflow limits
    entry = await LedgerEntry.get(account_id=account["id"], kind="withdrawal")
    assert entry.direction == "debit" and entry.counts_as_outflow is False
    assert_error(await withdraw(client, user, account["id"], 40_001), 422, "INSUFFICIENT_FUNDS")
    assert len(await network_transfers(client, person.card_number)) == 2


async def test_a_declined_withdrawal_is_reversed(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    assert (await top_up(client, user, account["id"], 50_000)).status_code == 201
    await sandbox._post(f"bank-cards/{person.card_number}/block", {"blocked": True})
    assert_error(await withdraw(client, user, account["id"], 30_000), 422, "CARD_DECLINED")
    assert await balance(account["id"]) == 50_000
    kinds = [(e.kind, e.amount_fen) for e in await LedgerEntry.filter(account_id=account["id"]).order_by("id")]
    assert kinds == [("top_up", 50_000), ("withdrawal", 30_000), ("withdrawal_reversal", 30_000)]


async def test_a_closed_account_takes_no_top_up(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    await Account.filter(id=account["id"]).update(status="closed")
    assert_error(await top_up(client, user, account["id"], 1_000), 409, "ACCOUNT_CLOSED")
    assert await network_transfers(client, person.card_number) == []


@pytest.mark.parametrize("amount", ["100", 1.5, 0, -1, True, None, 10**12 + 1, [1]])
async def test_amounts_are_strict_integer_fen(client, opened, amount):
    user, _, account = opened
    resp = await top_up(client, user, account["id"], amount)
    assert_error(resp, 422, "VALIDATION_ERROR", "amount_fen")
    assert await balance(account["id"]) == 0


async def test_a_refused_request_does_not_use_up_its_key(client, sandbox):
    user, _, account = await open_account(client, sandbox, card_balance_fen=100_000)
    key = new_key()
    assert_error(await top_up(client, user, account["id"], "100", key=key), 422, "VALIDATION_ERROR", "amount_fen")
    # nothing was stored under the key: the corrected request is a first request, not a reuse
    resp = await top_up(client, user, account["id"], 100, key=key)
    assert resp.status_code == 201 and "idempotent-replayed" not in resp.headers
    assert await balance(account["id"]) == 100


async def test_someone_elses_account_is_not_found(client, opened, user):
    _, _, account = opened
    assert_error(await top_up(client, user, account["id"], 100), 404, "ACCOUNT_NOT_FOUND")
    assert_error(await withdraw(client, user, account["id"], 100), 404, "ACCOUNT_NOT_FOUND")
    assert_error(await top_up(client, user, 2**63, 100), 404, "ACCOUNT_NOT_FOUND")


async def test_transactions_page_newest_first_with_a_cursor(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    for amount in (100, 200, 300, 400, 500):
        assert (await top_up(client, user, account["id"], amount)).status_code == 201
    path = f"/api/v1/accounts/{account['id']}/transactions"
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(path, params=params, headers=user.headers)).json()
        assert len(page["entries"]) <= 2
        seen += [e["amount_fen"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [500, 400, 300, 200, 100]
    for bad in ("abc", "-1", "0", "99999999999999999999"):
        assert_error(await client.get(path, params={"cursor": bad}, headers=user.headers), 422, "CURSOR_INVALID", "cursor")
    for bad in ("0", "101", "x"):
        assert_error(await client.get(path, params={"limit": bad}, headers=user.headers), 422, "VALIDATION_ERROR")


@contextlib.asynccontextmanager
async def risk_held_withdrawals():
    """Withdrawals above 1,000 yuan held for an operator while inside; an empty rule set in force after."""
    await rules_in_force([{"id": "big-withdrawal", "type": "amount", "status": "active", "action": "review",
                 "applies_to": ["withdrawal"], "max_amount_fen": 100_000}])
    try:
        yield
    finally:
        await rules_in_force([])


async def _age_transfers(account_id: int) -> None:
    await CardTransfer.filter(account_id=account_id).update(
        created_at=utcnow() - timedelta(seconds=funding.UNKNOWN_AFTER_S + 1))


async def test_a_class_iii_withdrawal_not_yet_final_keeps_its_room_under_the_cap(client, sandbox, ctx):
    user, person, account = await open_account(client, sandbox, "III", card_balance_fen=1_000_000)
    cap = rules.RULES["III"].balance_cap_fen
    assert (await top_up(client, user, account["id"], cap)).status_code == 201
    await sandbox.fault(PULL_PATH, http_status=500)  # the push never reaches the network: its answer unknown
    pending = await withdraw(client, user, account["id"], 100_000)
    assert pending.status_code == 202 and pending.json()["status"] == "pending", pending.text
    got = (await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
    assert (got["balance_fen"], got["pending_in_fen"], got["limits"]["balance_room_fen"]) == (cap - 100_000, 100_000, 0)
    # the room the withdrawal freed is not the top-up's to take while the withdrawal may still come back
    assert_error(await top_up(client, user, account["id"], 100_000), 422, "BALANCE_CAP_EXCEEDED")
    assert_error(await top_up(client, user, account["id"], 1), 422, "BALANCE_CAP_EXCEEDED")
    # the network never got it: declined, and the money comes back within the cap
    await _age_transfers(account["id"])
    await funding.reconcile(ctx, older_than_s=0)
    after = await Account.get(id=account["id"])
    assert (after.balance_fen, after.pending_in_fen) == (cap, 0)
    kinds = [e.kind for e in await LedgerEntry.filter(account_id=account["id"]).order_by("id")]
    assert kinds == ["top_up", "withdrawal", "withdrawal_reversal"]
    # a withdrawal that succeeds gives its room back at once
    assert (await withdraw(client, user, account["id"], 50_000)).status_code == 201
    assert (await Account.get(id=account["id"])).pending_in_fen == 0
    assert (await top_up(client, user, account["id"], 50_000)).status_code == 201
    assert await balance(account["id"]) == cap


async def test_a_class_iii_withdrawal_rejected_by_an_operator_returns_within_the_cap(client, sandbox, ctx):
    user, person, account = await open_account(client, sandbox, "III", card_balance_fen=1_000_000)
    cap = rules.RULES["III"].balance_cap_fen
    assert (await top_up(client, user, account["id"], cap)).status_code == 201
    # held for an operator: debited and unsent
    async with risk_held_withdrawals():
        held = await withdraw(client, user, account["id"], 120_000)
    assert held.status_code == 202 and held.json()["status"] == "held", held.text
    assert_error(await top_up(client, user, account["id"], 120_000), 422, "BALANCE_CAP_EXCEEDED")
    await funding.review_held(ctx, held.json()["id"], approve=False, actor="test", note="not the customer")
    after = await Account.get(id=account["id"])
    assert (after.balance_fen, after.pending_in_fen) == (cap, 0)
    assert await card_balance(client, person.card_number) == 1_000_000 - cap  # nothing was sent


async def test_every_move_of_a_transfer_is_an_audit_event_in_the_chain(client, sandbox):
    """Issue 21: a top-up that succeeds and a withdrawal the network declines each move once, through the
    state machine, as the card network's answer, in the verified hash chain."""
    # Given an account with money in it from a top-up
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    up = await top_up(client, user, account["id"], 50_000)
    assert up.status_code == 201, up.text
    assert await audited_moves("card_transfer", up.json()["id"]) == [
        ("card_transfer.succeeded", "cardnet", "pending", "succeeded")]
    # When a withdrawal is declined by the network
    await sandbox._post(f"bank-cards/{person.card_number}/block", {"blocked": True})
    assert_error(await withdraw(client, user, account["id"], 30_000), 422, "CARD_DECLINED")
    # Then its move is in the chain, with the network's reason
    declined = await CardTransfer.get(account_id=account["id"], direction="push")
    assert await audited_moves("card_transfer", declined.id) == [
        ("card_transfer.declined", "cardnet", "pending", "declined")]
    event = await AuditEvent.get(entity_type="card_transfer", entity_id=str(declined.id))
    assert event.data["reason"] == declined.decline_reason and event.data["request_id"] == declined.request_id


async def test_an_operators_verdicts_on_held_transfers_are_audited_as_theirs(client, sandbox, ctx):
    """Issue 21: releasing or rejecting a held transfer is a move made by the operator, with the note."""
    # Given two withdrawals held by risk control
    user, person, account = await open_account(client, sandbox, card_balance_fen=1_000_000)
    assert (await top_up(client, user, account["id"], 500_000)).status_code == 201
    async with risk_held_withdrawals():
        rejected = (await withdraw(client, user, account["id"], 120_000)).json()
        approved = (await withdraw(client, user, account["id"], 130_000)).json()
    assert (rejected["status"], approved["status"]) == ("held", "held")
    # When an operator rejects one and approves the other
    await funding.review_held(ctx, rejected["id"], approve=False, actor="operator:li", note="not the customer")
    await funding.review_held(ctx, approved["id"], approve=True, actor="operator:li", note="called the customer")
    # Then the rejection, the release and the network's answer are each in the chain, by who made them
    assert await audited_moves("card_transfer", rejected["id"]) == [
        ("card_transfer.declined", "operator:li", "held", "declined")]
    assert await audited_moves("card_transfer", approved["id"]) == [
        ("card_transfer.pending", "operator:li", "held", "pending"),
        ("card_transfer.succeeded", "cardnet", "pending", "succeeded")]
    verdict = await AuditEvent.get(entity_type="card_transfer", entity_id=str(rejected["id"]))
    assert (verdict.data["review"], verdict.data["note"], verdict.data["reason"]) == (
        "rejected", "not the customer", "RISK_REJECTED")
    assert await balance(account["id"]) == 500_000 - 130_000


async def test_settled_class_iii_top_ups_count_toward_id_collection_from_the_threshold_itself(client, sandbox):
    from models.accounts import AccountHolder

    user, _, account = await open_account(client, sandbox, "III", card_balance_fen=1_000_000)
    holder_index = (await Account.get(id=account["id"])).holder_index
    threshold = rules.CLASS_III_ID_COLLECTION_FEN
    # as if the person's Class III accounts had already moved all but ¥100.00 and 1 fen of it in and out
    await AccountHolder.filter(holder_index=holder_index).update(class_iii_flow_fen=threshold - 10_001)
    assert (await top_up(client, user, account["id"], 10_000)).status_code == 201  # settled by the network
    holder = await AccountHolder.get(holder_index=holder_index)
    assert (holder.class_iii_flow_fen, holder.id_collection_required_at) == (threshold - 1, None)
    assert (await top_up(client, user, account["id"], 1)).status_code == 201
    holder = await AccountHolder.get(holder_index=holder_index)
    assert holder.class_iii_flow_fen == threshold and holder.id_collection_required_at is not None  # reached: >=


async def test_a_network_answer_for_another_amount_is_left_pending_and_never_booked(client, sandbox, ctx):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    # the network pulls 20,000 and answers (and, asked, says again) that it moved 2,000
    wrong = {"request_id": "TU-any", "status": "SUCCEEDED", "reason": None, "amount_fen": 2_000, "direction": "debit"}
    await sandbox.fault(PULL_PATH, when="after", body=wrong)
    await sandbox.fault(QUERY_PATH, body=wrong, count=10)
    resp = await top_up(client, user, account["id"], 20_000)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "pending" and resp.json()["balance_fen"] == 0
    await funding.reconcile(ctx, older_than_s=0)
    transfer = await CardTransfer.get(account_id=account["id"])
    assert transfer.status == "pending" and transfer.finished_at is None
    assert not await LedgerEntry.filter(account_id=account["id"]).exists()
    assert (await Account.get(id=account["id"])).balance_fen == 0
    # once the network tells the truth, the transfer is booked for what it moved
    await client.delete("/sandbox/control/faults")
    await funding.reconcile(ctx, older_than_s=0)
    assert (await CardTransfer.get(account_id=account["id"])).status == "succeeded"
    assert await balance(account["id"]) == 20_000 and await card_balance(client, person.card_number) == 80_000


async def test_the_migration_gives_withdrawals_made_before_it_their_room(client, sandbox, ctx):
    """Migration 18: a withdrawal still pending from before ``hold_return`` gets its room, so its
    reversal finds it; the migration's own SQL, on this dialect, on rows the API made."""
    import importlib.util
    from pathlib import Path

    from tortoise import Tortoise

    user, person, account = await open_account(client, sandbox, "III", card_balance_fen=1_000_000)
    assert (await top_up(client, user, account["id"], 150_000)).status_code == 201
    await sandbox.fault(PULL_PATH, http_status=500)
    assert (await withdraw(client, user, account["id"], 40_000)).status_code == 202
    await Account.filter(id=account["id"]).update(pending_in_fen=0)  # as a withdrawal made before the change left it
    [path] = Path("migrations/models").glob("18_*_withdrawals_hold_return.py")
    spec = importlib.util.spec_from_file_location("migration_18", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    conn = Tortoise.get_connection("default")
    # the SQL runs over every account: others' withdrawals left open by earlier tests are put back after
    open_pushes = CardTransfer.filter(direction="push", status__in=["pending", "held"]).exclude(account_id=account["id"])
    others = {a.id: a.pending_in_fen for a in await Account.filter(
        id__in=await open_pushes.values_list("account_id", flat=True))}
    await conn.execute_script(await migration.upgrade(conn))
    assert (await Account.get(id=account["id"])).pending_in_fen == 40_000
    await conn.execute_script(await migration.downgrade(conn))
    assert (await Account.get(id=account["id"])).pending_in_fen == 0
    await conn.execute_script(await migration.upgrade(conn))
    for account_id, pending in others.items():
        await Account.filter(id=account_id).update(pending_in_fen=pending)
    # and the reversal it was made for goes through
    await _age_transfers(account["id"])
    await funding.reconcile(ctx, older_than_s=0)
    after = await Account.get(id=account["id"])
    assert (after.balance_fen, after.pending_in_fen) == (150_000, 0)
