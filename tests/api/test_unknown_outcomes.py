"""What a 503 means: "outcome unknown, retry the same request", never "nothing was done" (issue 20).

A Galera node killed during ``COMMIT`` can keep a write set it had replicated while its client sees the
connection drop, so a 503 may follow a commit. Simulated without a cluster (``tests/db_faults.py``): the
transaction commits, then ``atomic`` sees "lost connection". The retry under the same ``out_trade_no``
or ``Idempotency-Key`` finds what the first run did: a debit is answered as a replay, and a top-up whose
transfer was committed but never sent is sent by its own retry. Also: 1180 from a node out of the
Primary Component and a conflict that outlasts ``atomic``'s tries are 503s with ``Retry-After``, not 500s.
``ledger check`` runs after each test (tests/conftest.py).
"""

from __future__ import annotations

from datetime import timedelta

import pymysql
from tortoise.exceptions import OperationalError

from core.clock import utcnow
from models.accounts import Account, CardTransfer, LedgerEntry
from models.infra import IdempotencyRecord
from models.partners import PartnerDebit
from services.accounts import funding, ledger
from tests.account_helpers import card_balance, new_key, open_account, top_up
from tests.db_faults import lose_the_answer_after_commit
from tests.helpers import assert_error
from tests.partner_helpers import bound_car, call, debit_body, new_partner

DEBITS = "/open/v1/debits"
PULL_PATH = "cardnet/v1/transfers"
UNKNOWN = "结果未知"


def assert_unknown_503(resp, code: str) -> None:
    error = assert_error(resp, 503, code)
    assert UNKNOWN in error["message"], error  # never "nothing was done"
    assert int(resp.headers["retry-after"]) >= 1


async def network_transfers(client, card_number: str) -> list[dict]:
    return (await client.get("/sandbox/control/transfers", params={"card_number": card_number})).json()["transfers"]


async def test_a_debit_whose_commit_survived_a_503_is_answered_as_a_replay(client, sandbox, ctx, monkeypatch):
    # Given a bound car and a partner
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 1_200)
    # When the debit commits and the answer to its COMMIT is lost
    fired = lose_the_answer_after_commit(
        monkeypatch, lambda: PartnerDebit.filter(out_trade_no=body["out_trade_no"]).exists())
    first = await call(client, partner, "POST", DEBITS, body)
    assert fired
    # Then the partner is told the outcome is unknown, not that nothing was done
    assert_unknown_503(first, "DB_UNAVAILABLE")
    assert (await Account.get(id=car.account["id"])).balance_fen == 8_800  # it was booked
    # And its retry with the same out_trade_no gets the booked debit, marked as a replay, booked once
    again = await call(client, partner, "POST", DEBITS, body)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["status"] == "succeeded" and again.json()["out_trade_no"] == body["out_trade_no"]
    assert await LedgerEntry.filter(account_id=car.account["id"], kind="toll").count() == 1
    assert (await Account.get(id=car.account["id"])).balance_fen == 8_800


async def test_a_top_up_committed_but_never_sent_is_sent_by_its_retry(client, sandbox, monkeypatch):
    # Given an account, and a top-up whose pending transfer commits while the answer to COMMIT is lost
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    key = new_key()
    fired = lose_the_answer_after_commit(monkeypatch, lambda: CardTransfer.filter(account_id=account["id"]).exists())
    first = await top_up(client, user, account["id"], 30_000, key=key)
    assert fired
    assert_unknown_503(first, "DB_UNAVAILABLE")
    transfer = await CardTransfer.get(account_id=account["id"])
    assert transfer.status == "pending"  # committed, with its room reserved
    assert await network_transfers(client, person.card_number) == []  # and the pull never sent
    # When the user retries with the same key
    second = await top_up(client, user, account["id"], 30_000, key=key)
    # Then the retry sends that transfer, under its own request id, and the top-up is done
    assert second.status_code == 201, second.text
    assert second.json()["status"] == "succeeded" and second.json()["id"] == transfer.id
    sent = await network_transfers(client, person.card_number)
    assert [t["request_id"] for t in sent] == [transfer.request_id]
    assert await card_balance(client, person.card_number) == 70_000
    after = await Account.get(id=account["id"])
    assert (after.balance_fen, after.pending_in_fen) == (30_000, 0)
    # And a further retry is a replay that pulls nothing more
    third = await top_up(client, user, account["id"], 30_000, key=key)
    assert third.json() == second.json() and third.headers["idempotent-replayed"] == "true"
    assert len(await network_transfers(client, person.card_number)) == 1


async def test_reconciliation_does_not_give_up_on_a_transfer_a_retry_just_sent_again(client, sandbox, ctx, monkeypatch):
    # Given a top-up committed and never sent, created longer ago than the network is waited for
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    key = new_key()
    lose_the_answer_after_commit(monkeypatch, lambda: CardTransfer.filter(account_id=account["id"]).exists())
    assert (await top_up(client, user, account["id"], 20_000, key=key)).status_code == 503
    monkeypatch.undo()
    long_ago = utcnow() - timedelta(seconds=funding.UNKNOWN_AFTER_S + 1)
    await CardTransfer.filter(account_id=account["id"]).update(created_at=long_ago)
    stale = await CardTransfer.get(account_id=account["id"])  # what a reconciliation read before the retry
    # When the user's retry sends it again, and that answer is lost too
    await sandbox.fault(PULL_PATH, http_status=500)  # once: refused before anything moved
    retried = await top_up(client, user, account["id"], 20_000, key=key)
    assert retried.status_code == 202 and retried.json()["status"] == "pending", retried.text
    # Then a reconciliation deciding on its earlier read does not close it (the network may still take it)
    assert (await funding.settle(ctx, stale, give_up_unknown=True)).status == "pending"
    assert (await funding.reconcile(ctx, older_than_s=0))["pending"] >= 1
    assert (await CardTransfer.get(id=stale.id)).status == "pending"
    assert (await Account.get(id=account["id"])).pending_in_fen == 20_000
    # And the next retry completes it
    done = await top_up(client, user, account["id"], 20_000, key=key)
    assert done.status_code == 201 and done.json()["status"] == "succeeded", done.text
    assert await card_balance(client, person.card_number) == 80_000
    assert (await Account.get(id=account["id"])).balance_fen == 20_000


async def test_a_node_out_of_the_primary_component_is_a_503_not_a_500(client, sandbox, user, monkeypatch):
    # 1180 hits the statements in flight as a node drops out: here the Idempotency-Key's insert
    async def not_primary(*args, **kwargs):
        raise OperationalError(pymysql.err.OperationalError(1180, "Not connected to Primary Component"))

    user, person, account = await open_account(client, sandbox, card_balance_fen=10_000)
    monkeypatch.setattr(IdempotencyRecord, "create", not_primary)
    assert_unknown_503(await top_up(client, user, account["id"], 1_000), "DB_UNAVAILABLE")
    assert await CardTransfer.filter(account_id=account["id"]).count() == 0


async def test_a_conflict_that_outlasts_the_tries_is_a_503_with_retry_after(client, sandbox, ctx, monkeypatch):
    # Given a hot account on which every try of a debit's transaction is aborted for a conflict
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 700)
    tries = 0
    real_lock = ledger.locked_account

    async def conflicted(conn, account_id):
        nonlocal tries
        tries += 1
        raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")

    monkeypatch.setattr(ledger, "locked_account", conflicted)
    # When the partner debits
    resp = await call(client, partner, "POST", DEBITS, body)
    # Then it is told to come back (its own code: contention, not an outage), and nothing was booked
    assert_unknown_503(resp, "CONFLICT_RETRY")
    assert tries == 5
    assert not await PartnerDebit.filter(out_trade_no=body["out_trade_no"]).exists()
    # And the same request, once the contention is over, is booked once
    monkeypatch.setattr(ledger, "locked_account", real_lock)
    again = await call(client, partner, "POST", DEBITS, body)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers, again.text
    assert (await Account.get(id=car.account["id"])).balance_fen == 9_300


async def test_the_published_contract_says_a_503_is_unknown(client):
    doc = (await client.get("/docs/openapi.json")).json()
    assert "outcome is unknown" in doc["info"]["description"]
    debit = doc["paths"]["/open/v1/debits"]["post"]["responses"]["503"]
    assert "Outcome unknown" in debit["description"] and "out_trade_no" in debit["description"]
    assert "DB_UNAVAILABLE" in debit["description"] and "CONFLICT_RETRY" in debit["description"]
    assert "Retry-After" in debit["headers"]
    top_up_503 = doc["paths"]["/api/v1/accounts/{account_id}/top-ups"]["post"]["responses"]["503"]
    assert "Outcome unknown" in top_up_503["description"]
