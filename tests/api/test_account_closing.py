"""Closing an account (issue 22): refused while an ETC binding is not unbound, arrears are owed, a transfer
is held or pending, or a restriction is in force; otherwise the whole balance goes to the bound card through
the card network, exactly once even when its answer is lost (a retry under the same key, or the
reconciliation job, settles it), and the account ends ``closed``: nothing books on it, partner debits are
refused, it counts no more toward the per-person limit, and its number is never drawn again. The closing
notice is written once. ``ledger check`` runs after each test (conftest)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tortoise.exceptions import IntegrityError

from core.clock import utcnow
from models.accounts import Account, CardTransfer, LedgerEntry
from models.etc import EtcBinding
from models.identity import AttemptCounter, Identity
from models.infra import OutboxMessage
from models.partners import PartnerDebit
from services.accounts import funding, restrictions, rules
from tests.account_helpers import (
    card_balance, new_key, open_account, set_card_balance, signed_application, submit, top_up, withdraw,
)
from tests.api.test_funding import PULL_PATH, QUERY_PATH, network_transfers
from tests.contract_helpers import fresh_face
from tests.helpers import assert_error, audited_moves
from tests.partner_helpers import bound_car, call, debit_body, new_partner

DEBITS = "/open/v1/debits"


async def more_face_attempts() -> None:
    await AttemptCounter.all().delete()  # the daily face limit is not what these tests are about


async def close(client, sandbox, user, account_id: int, *, key: str | None = None, verify_id: str | None = None):
    if verify_id is None:
        await more_face_attempts()
        verify_id = await fresh_face(client, sandbox, user)
    return await client.post(f"/api/v1/accounts/{account_id}/close", json={"verify_id": verify_id},
                             headers={**user.headers, "Idempotency-Key": key or new_key()})


async def funded(client, sandbox, balance_fen: int, account_class: str = "II", **kw):
    user, person, account = await open_account(client, sandbox, account_class, card_balance_fen=balance_fen, **kw)
    if balance_fen:
        assert (await top_up(client, user, account["id"], balance_fen)).status_code == 201
    return user, person, account


async def unbind(client, car) -> None:
    resp = await client.delete(f"/api/v1/etc-bindings/{car.binding['id']}", headers=car.user.headers)
    assert resp.status_code == 200, resp.text


async def notices(ctx, account_id: int) -> list[OutboxMessage]:
    return [m for m in await OutboxMessage.filter(kind="subscribe_message").order_by("id")
            if m.payload["template_id"] == ctx.settings.account_closed_template_id
            and m.payload["page"].endswith(f"id={account_id}")]


async def test_closing_pays_the_whole_balance_to_the_card_and_closes(client, sandbox, ctx):
    user, person, account = await funded(client, sandbox, 12_345)
    assert await card_balance(client, person.card_number) == 0
    resp = await close(client, sandbox, user, account["id"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["account"]["status"] == "closed" and body["account"]["balance_fen"] == 0
    assert body["account"]["closed_at"] is not None
    assert (body["payout"]["purpose"], body["payout"]["status"], body["payout"]["amount_fen"]) == (
        "closing", "succeeded", 12_345)
    assert await card_balance(client, person.card_number) == 12_345
    entries = await LedgerEntry.filter(account_id=account["id"]).order_by("id")
    kinds = [(e.kind, e.direction, e.amount_fen) for e in entries]
    assert kinds == [("top_up", "credit", 12_345), ("closing_payout", "debit", 12_345)]
    assert (await Account.get(id=account["id"])).pending_in_fen == 0
    # the list and the account page show it closed
    listed = (await client.get("/api/v1/accounts", headers=user.headers)).json()["accounts"]
    assert [(a["id"], a["status"]) for a in listed] == [(account["id"], "closed")]
    assert (await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()["status"] == "closed"
    # each move is an audit event
    moves = await audited_moves("account", account["id"])
    assert [(m[0], m[2], m[3]) for m in moves] == [("account.closing", "active", "closing"),
                                                   ("account.closed", "closing", "closed")]
    # the closing notice, once
    [notice] = await notices(ctx, account["id"])
    assert notice.payload["data"]["amount2"]["value"] == "123.45元"
    # a repeat answers how it stands, sends nothing, uses no face check
    again = await close(client, sandbox, user, account["id"], verify_id="whatever")
    assert again.status_code == 200 and again.json()["account"]["status"] == "closed"
    assert len(await network_transfers(client, person.card_number)) == 2
    assert len(await notices(ctx, account["id"])) == 1


async def test_a_zero_balance_closes_at_once_without_a_transfer(client, sandbox, ctx):
    user, person, account = await open_account(client, sandbox)
    resp = await close(client, sandbox, user, account["id"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["account"]["status"] == "closed" and resp.json()["payout"] is None
    assert await CardTransfer.filter(account_id=account["id"]).count() == 0
    assert await network_transfers(client, person.card_number) == []
    assert len(await notices(ctx, account["id"])) == 1
    # the closing used the face verification up
    await more_face_attempts()
    verify_id = await fresh_face(client, sandbox, user)
    resp = await close(client, sandbox, user, (await open_account(client, sandbox, user=user, person=person))[2]["id"],
                       verify_id=verify_id)
    assert resp.status_code == 200
    shown = await client.post(f"/api/v1/accounts/{account['id']}/reveal-number", headers=user.headers,
                              json={"verify_id": verify_id})
    assert_error(shown, 422, "FACE_VERIFICATION_USED")


async def test_closing_needs_a_fresh_face_verification_used_once(client, sandbox):
    user, person, account = await funded(client, sandbox, 1_000)
    assert_error(await close(client, sandbox, user, account["id"], verify_id="no-such"), 422,
                 "FACE_VERIFICATION_INVALID")
    await more_face_attempts()
    used = await fresh_face(client, sandbox, user)
    shown = await client.post(f"/api/v1/accounts/{account['id']}/reveal-number", headers=user.headers,
                              json={"verify_id": used})
    assert shown.status_code == 200
    assert_error(await close(client, sandbox, user, account["id"], verify_id=used), 422, "FACE_VERIFICATION_USED")
    assert (await Account.get(id=account["id"])).status == "active"
    assert await card_balance(client, person.card_number) == 0


async def test_closing_with_a_binding_not_unbound_is_refused(client, sandbox):
    car = await bound_car(client, sandbox, balance_fen=5_000)
    verify_id = await fresh_face(client, sandbox, car.user)
    assert_error(await close(client, sandbox, car.user, car.account["id"], verify_id=verify_id), 409,
                 "ACCOUNT_HAS_BINDINGS")
    account = await Account.get(id=car.account["id"])
    assert (account.status, account.balance_fen) == ("active", 5_000)
    # the refusal did not use the face check up; unbound, the same one closes it
    await unbind(client, car)
    resp = await close(client, sandbox, car.user, car.account["id"], verify_id=verify_id)
    assert resp.status_code == 200, resp.text
    assert resp.json()["account"]["status"] == "closed"


async def test_closing_with_arrears_is_refused_even_on_an_unbound_binding(client, sandbox):
    car = await bound_car(client, sandbox, balance_fen=5_000)
    await unbind(client, car)
    await EtcBinding.filter(id=car.binding["id"]).update(arrears_fen=700)  # owed before the unbinding
    assert_error(await close(client, sandbox, car.user, car.account["id"]), 409, "ARREARS_OUTSTANDING")
    assert (await Account.get(id=car.account["id"])).balance_fen == 5_000
    await EtcBinding.filter(id=car.binding["id"]).update(arrears_fen=0)
    assert (await close(client, sandbox, car.user, car.account["id"])).status_code == 200


async def test_closing_with_a_transfer_pending_is_refused(client, sandbox, ctx):
    user, person, account = await funded(client, sandbox, 5_000)
    await set_card_balance(sandbox, person.card_number, 10_000)
    await sandbox.fault(PULL_PATH, when="after", drop=True)
    await sandbox.fault(QUERY_PATH, http_status=503, count=3)
    assert (await top_up(client, user, account["id"], 2_000)).status_code == 202
    assert_error(await close(client, sandbox, user, account["id"]), 409, "TRANSFER_PENDING")
    await funding.reconcile(ctx, older_than_s=0)
    resp = await close(client, sandbox, user, account["id"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["payout"]["amount_fen"] == 7_000


async def test_closing_with_a_held_transfer_is_refused(client, sandbox):
    user, person, account = await funded(client, sandbox, 5_000)
    await CardTransfer.create(request_id="WDHELD" + new_key(), account_id=account["id"], user_id=1,
                              direction="push", amount_fen=1, status="held")
    assert_error(await close(client, sandbox, user, account["id"]), 409, "TRANSFER_PENDING")
    await CardTransfer.filter(account_id=account["id"], status="held").update(status="declined")


@pytest.mark.parametrize("kind", ["fraud", "judicial"])
async def test_closing_under_a_bank_freeze_is_refused(client, sandbox, kind):
    user, person, account = await funded(client, sandbox, 5_000)
    await restrictions.freeze(account["id"], kind=kind, reason="调查", operator_name="王五",
                              held_fen=100 if kind == "judicial" else None)
    assert_error(await close(client, sandbox, user, account["id"]), 409, "ACCOUNT_RESTRICTED")
    assert (await Account.get(id=account["id"])).balance_fen == 5_000
    assert await card_balance(client, person.card_number) == 0


async def test_closing_a_frozen_account_without_money_is_refused(client, sandbox):
    user, person, account = await open_account(client, sandbox)  # no balance: the ledger is not asked
    await restrictions.freeze(account["id"], kind="fraud", reason="调查", operator_name="王五")
    refused = assert_error(await close(client, sandbox, user, account["id"]), 409, "ACCOUNT_RESTRICTED")
    assert "冻结" in refused["message"]
    assert (await Account.get(id=account["id"])).status == "restricted"


async def test_closing_during_a_loss_report_is_refused_until_lifted(client, sandbox):
    user, person, account = await funded(client, sandbox, 5_000)
    assert (await client.post(f"/api/v1/accounts/{account['id']}/loss-report", headers=user.headers)).status_code == 201
    refused = assert_error(await close(client, sandbox, user, account["id"]), 409, "ACCOUNT_RESTRICTED")
    assert "挂失" in refused["message"]
    await more_face_attempts()
    lifted = await client.request("DELETE", f"/api/v1/accounts/{account['id']}/loss-report", headers=user.headers,
                                  json={"verify_id": await fresh_face(client, sandbox, user)})
    assert lifted.status_code == 200
    assert (await close(client, sandbox, user, account["id"])).status_code == 200


async def test_a_lost_answer_and_a_retry_pay_the_card_exactly_once(client, sandbox, ctx):
    user, person, account = await funded(client, sandbox, 30_000)
    key = new_key()
    # the network credits the card, and neither its reply nor its answer to a query arrives
    await sandbox.fault(PULL_PATH, when="after", drop=True)
    await sandbox.fault(QUERY_PATH, http_status=503, count=10)
    first = await close(client, sandbox, user, account["id"], key=key)
    assert first.status_code == 202, first.text
    assert first.json()["account"]["status"] == "closing" and first.json()["payout"]["status"] == "pending"
    assert await card_balance(client, person.card_number) == 30_000
    # nothing moves on a closing account: no withdrawal, no top-up, no freeze
    assert_error(await withdraw(client, user, account["id"], 100), 409, "ACCOUNT_CLOSED")
    assert_error(await top_up(client, user, account["id"], 100), 409, "ACCOUNT_CLOSED")
    assert_error(await client.post(f"/api/v1/accounts/{account['id']}/loss-report", headers=user.headers), 409,
                 "ACCOUNT_CLOSED")
    # another close under a new key is answered how the payout stands, and sends nothing
    other = await close(client, sandbox, user, account["id"])
    assert other.status_code == 202 and other.json()["payout"]["id"] == first.json()["payout"]["id"]
    await client.delete("/sandbox/control/faults")  # the network answers again
    # the retry under the same key asks the network, and closes
    assert_error(await close(client, sandbox, user, account["id"], key=key, verify_id="another"), 422,
                 "IDEMPOTENCY_KEY_REUSED")  # a key names one request
    second = await client.post(f"/api/v1/accounts/{account['id']}/close", json={"verify_id": _verify(first)},
                               headers={**user.headers, "Idempotency-Key": key})
    assert second.status_code == 200, second.text
    assert second.json()["account"]["status"] == "closed"
    assert second.json()["payout"]["id"] == first.json()["payout"]["id"]
    assert len([t for t in await network_transfers(client, person.card_number) if t["direction"] == "credit"]) == 1
    assert await card_balance(client, person.card_number) == 30_000
    assert await LedgerEntry.filter(account_id=account["id"], kind="closing_payout").count() == 1
    assert len(await notices(ctx, account["id"])) == 1


def _verify(resp) -> str:
    import json

    return json.loads(resp.request.content)["verify_id"]


async def test_a_payout_committed_but_never_sent_is_sent_by_the_retry(client, sandbox, ctx):
    user, person, account = await funded(client, sandbox, 8_000)
    key = new_key()
    await sandbox.fault(PULL_PATH, http_status=500)  # never reached the network: its answer unknown
    first = await close(client, sandbox, user, account["id"], key=key)
    assert first.status_code == 202, first.text
    assert await card_balance(client, person.card_number) == 0
    second = await client.post(f"/api/v1/accounts/{account['id']}/close", json={"verify_id": _verify(first)},
                               headers={**user.headers, "Idempotency-Key": key})
    assert second.status_code == 200, second.text
    assert await card_balance(client, person.card_number) == 8_000
    assert (await Account.get(id=account["id"])).status == "closed"


async def test_the_reconciliation_job_settles_and_closes(client, sandbox, ctx):
    user, person, account = await funded(client, sandbox, 9_000)
    await sandbox.fault(PULL_PATH, when="after", drop=True)
    await sandbox.fault(QUERY_PATH, http_status=503, count=3)
    assert (await close(client, sandbox, user, account["id"])).status_code == 202
    assert (await funding.reconcile(ctx, older_than_s=0))["succeeded"] >= 1
    closed = await Account.get(id=account["id"])
    assert (closed.status, closed.balance_fen, closed.pending_in_fen) == ("closed", 0, 0)
    assert await card_balance(client, person.card_number) == 9_000
    await funding.reconcile(ctx, older_than_s=0)  # again: nothing
    assert len(await notices(ctx, account["id"])) == 1
    assert len(await network_transfers(client, person.card_number)) == 2


async def test_a_payout_never_received_reopens_the_account_with_its_balance(client, sandbox, ctx):
    user, person, account = await funded(client, sandbox, 9_000)
    await sandbox.fault(PULL_PATH, http_status=500)
    assert (await close(client, sandbox, user, account["id"])).status_code == 202
    await CardTransfer.filter(account_id=account["id"], purpose="closing").update(
        created_at=utcnow() - timedelta(seconds=funding.UNKNOWN_AFTER_S + 1))
    await funding.reconcile(ctx, older_than_s=0)
    after = await Account.get(id=account["id"])
    assert (after.status, after.balance_fen, after.pending_in_fen) == ("active", 9_000, 0)
    assert await card_balance(client, person.card_number) == 0
    assert await notices(ctx, account["id"]) == []


async def test_a_declined_payout_leaves_the_account_active_with_its_balance(client, sandbox, ctx):
    user, person, account = await funded(client, sandbox, 6_000)
    await sandbox._post(f"bank-cards/{person.card_number}/block", {"blocked": True})
    assert_error(await close(client, sandbox, user, account["id"]), 422, "CARD_DECLINED")
    after = await Account.get(id=account["id"])
    assert (after.status, after.balance_fen, after.pending_in_fen) == ("active", 6_000, 0)
    kinds = [e.kind for e in await LedgerEntry.filter(account_id=account["id"]).order_by("id")]
    assert kinds == ["top_up", "closing_payout", "closing_reversal"]
    assert await notices(ctx, account["id"]) == []
    moves = await audited_moves("account", account["id"])
    assert [(m[2], m[3]) for m in moves] == [("active", "closing"), ("closing", "active")]
    # the card unblocked, a new closing pays it
    await sandbox._post(f"bank-cards/{person.card_number}/block", {"blocked": False})
    assert (await close(client, sandbox, user, account["id"])).status_code == 200
    assert await card_balance(client, person.card_number) == 6_000


async def test_partner_debits_are_refused_on_a_closing_and_a_closed_account(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=5_000)
    account_id = car.account["id"]
    # a closing account (its payout's answer lost) refuses a debit through a binding still active
    await sandbox.fault(PULL_PATH, when="after", drop=True)
    await sandbox.fault(QUERY_PATH, http_status=503, count=3)
    await EtcBinding.filter(id=car.binding["id"]).update(status="unbound")  # the check passes...
    first = await close(client, sandbox, car.user, account_id)
    assert first.status_code == 202, first.text
    await EtcBinding.filter(id=car.binding["id"]).update(status="active")  # ...and the binding is back
    body = debit_body(car, 1_000)
    assert_error(await call(client, partner, "POST", DEBITS, body), 409, "ACCOUNT_CLOSED")
    row = await PartnerDebit.get(out_trade_no=body["out_trade_no"])
    assert (row.status, row.refusal_code) == ("refused", "ACCOUNT_CLOSED")
    await funding.reconcile(ctx, older_than_s=0)
    assert (await Account.get(id=account_id)).status == "closed"
    assert_error(await call(client, partner, "POST", DEBITS, debit_body(car, 1_000)), 409, "ACCOUNT_CLOSED")
    assert await LedgerEntry.filter(account_id=account_id, kind="toll").count() == 0
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0


async def test_a_debit_whose_binding_was_unbound_meanwhile_is_refused(client, sandbox, ctx, monkeypatch):
    from services.partners import debits

    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=5_000)
    found = debits._binding_for

    async def read_then_unbind(c, fields):
        binding = await found(c, fields)  # read while active...
        await EtcBinding.filter(id=binding.id).update(status="unbound")  # ...unbound before the lock
        return binding

    monkeypatch.setattr(debits, "_binding_for", read_then_unbind)
    body = debit_body(car, 1_000)
    assert_error(await call(client, partner, "POST", DEBITS, body), 404, "BINDING_NOT_FOUND")
    assert not await PartnerDebit.filter(out_trade_no=body["out_trade_no"]).exists()
    assert (await Account.get(id=car.account["id"])).balance_fen == 5_000


async def test_a_closed_account_counts_no_more_and_its_number_is_not_reused(client, sandbox, monkeypatch):
    from services.accounts import numbers, opening

    user, person, account = await open_account(client, sandbox)
    identity = await Identity.get(user_id=(await Account.get(id=account["id"])).user_id)
    for _ in range(rules.RULES["II"].max_accounts_per_person - 1):  # the rest of the limit, held already
        await Account.create(number=numbers.new_account_number("623099"), user_id=identity.user_id,
                             holder_index=identity.id_number_index, account_class="II",
                             rules_version=rules.RULES_VERSION, bound_card_enc="x", bound_card_index="x",
                             bound_card_masked="622202******0000", opened_at=utcnow())
    assert (await close(client, sandbox, user, account["id"])).status_code == 200
    closed_number = (await Account.get(id=account["id"])).number
    # the number generator draws the closed account's number first: opening draws another
    drawn = iter([closed_number])
    real = opening.new_account_number
    monkeypatch.setattr(opening, "new_account_number", lambda prefix: next(drawn, None) or real(prefix))
    _, _, app = await signed_application(client, sandbox, user=user, person=person)
    resp = await submit(client, user, app["id"])
    assert resp.status_code == 201, resp.text  # five accounts, one of them closed: room for one more
    fresh = await Account.get(id=resp.json()["id"])
    assert fresh.number != closed_number
    with pytest.raises(IntegrityError):  # and the unique index holds it
        await Account.create(number=closed_number, user_id=identity.user_id, holder_index="x", account_class="II",
                             rules_version=rules.RULES_VERSION, bound_card_enc="x", bound_card_index="x",
                             bound_card_masked="x", opened_at=utcnow())
    me = await client.get("/api/v1/me", headers=user.headers)
    assert me.status_code == 200, me.text


async def test_only_a_user_whose_account_is_closed_can_still_open_one(client, sandbox):
    user, person, account = await open_account(client, sandbox)
    assert (await close(client, sandbox, user, account["id"])).status_code == 200
    me = await client.get("/api/v1/me", headers=user.headers)
    assert me.status_code == 200, me.text
    _, _, app = await signed_application(client, sandbox, user=user, person=person)
    assert (await submit(client, user, app["id"])).status_code == 201


async def test_someone_elses_account_is_not_found(client, sandbox):
    owner, _, account = await funded(client, sandbox, 1_000)
    other, _, _ = await open_account(client, sandbox)
    assert_error(await close(client, sandbox, other, account["id"]), 404, "ACCOUNT_NOT_FOUND")
    assert (await Account.get(id=account["id"])).status == "active"


async def test_an_unreachable_network_sends_nothing_and_leaves_the_account_active(client, sandbox, ctx, monkeypatch):
    user, person, account = await funded(client, sandbox, 4_000)
    monkeypatch.setattr(ctx.cardnet, "base_url", "http://127.0.0.1:9")  # nothing listens: never sent
    assert_error(await close(client, sandbox, user, account["id"]), 503, "CARD_NETWORK_UNAVAILABLE")
    monkeypatch.undo()
    after = await Account.get(id=account["id"])
    assert (after.status, after.balance_fen, after.pending_in_fen) == ("active", 4_000, 0)
    assert await card_balance(client, person.card_number) == 0
    resp = await close(client, sandbox, user, account["id"])  # a new intent, a new face check
    assert resp.status_code == 200, resp.text
    assert await card_balance(client, person.card_number) == 4_000
