"""A new bound card (issue 22): ``POST /api/v1/accounts/{id}/bound-card`` replaces the card after the
same-name check of the new card that opening makes and a fresh face verification; top-ups then pull from
the new card and withdrawals push to it (the card-network emulator shows which card moved), the old card's
reference stays in the account's history, and the change is an audit event with both cards masked.
Refused on a closed or restricted account, while a transfer is pending or held, for an expired ID card,
and for the card bound now; a card that fails the check leaves the old one bound. ``ledger check`` runs
after each test (conftest)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from core.clock import china_day
from core.pii import mask_card
from models.accounts import Account, AccountBoundCard, AccountRestriction, CardTransfer, RestrictionCode
from models.audit import AuditEvent
from models.identity import AttemptCounter, FaceVerification, Identity
from models.risk import RiskEvent
from services.accounts import restrictions
from services.accounts.opening import ACCOUNT_CARD_PURPOSE
from services.db import atomic
from tests.account_helpers import card_balance, new_key, open_account, set_card_balance, top_up, withdraw
from tests.api.test_funding import PULL_PATH, QUERY_PATH, network_transfers
from tests.api.test_pii_at_rest import all_rows_text
from tests.contract_helpers import fresh_face
from tests.helpers import Person, assert_error, login_new_user, new_person, register_card
from tests.identity_data import make_card_number


def bound_card(account_id: int) -> str:
    return f"/api/v1/accounts/{account_id}/bound-card"


async def change(client, user, account_id: int, card_number: str, phone: str, verify_id: str):
    return await client.post(bound_card(account_id), headers=user.headers,
                             json={"card_number": card_number, "reserved_phone": phone, "verify_id": verify_id})


async def another_card(sandbox, person: Person, *, balance_fen: int | None = None, **kw) -> str:
    """A further card of ``person`` the card network knows (Class I unless told): its number."""
    card = make_card_number()
    await register_card(sandbox, replace(person, card_number=card), **kw)
    if balance_fen is not None:
        await set_card_balance(sandbox, card, balance_fen)
    return card


def wrong_check_digit(card: str) -> str:
    return card[:-1] + str((int(card[-1]) + 1) % 10)


async def more_attempts() -> None:
    """Opening took face and card attempts of the day's five: give the test its own (the daily limit has its
    own test below)."""
    await AttemptCounter.all().delete()


async def card_attempts(user_id: int) -> int:
    row = await AttemptCounter.get_or_none(user_id=user_id, kind="bank_card", day=china_day())
    return row.count if row else 0


async def unchanged(account_id: int, card_number: str) -> None:
    """The account still bound to ``card_number``, with its history as opened (one row, in force)."""
    account = await Account.get(id=account_id)
    assert account.bound_card_masked == mask_card(card_number)
    rows = await AccountBoundCard.filter(account_id=account_id)
    assert [(r.card_masked, r.replaced_at) for r in rows] == [(mask_card(card_number), None)]
    assert not await AuditEvent.filter(entity_type="account", entity_id=str(account_id),
                                       action="account.bound_card.changed").exists()


async def test_a_new_card_is_bound_and_top_ups_and_withdrawals_then_use_it(client, sandbox, ctx):
    # Given an account opened with a card, and a second card of the holder's with money on it
    user, person, account = await open_account(client, sandbox, card_balance_fen=50_000)
    account_id = account["id"]
    new = await another_card(sandbox, person, balance_fen=80_000)
    await more_attempts()
    user_id = (await Account.get(id=account_id)).user_id
    # When the holder binds it with a fresh face verification
    verify_id = await fresh_face(client, sandbox, user)
    resp = await change(client, user, account_id, new, person.phone, verify_id)
    # Then the account answers with the new card, masked
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"] == account_id and body["bound_card_masked"] == mask_card(new)
    assert new not in resp.text and person.card_number not in resp.text
    row = await Account.get(id=account_id)
    assert ctx.pii.decrypt(row.bound_card_enc, purpose=ACCOUNT_CARD_PURPOSE) == new
    assert row.bound_card_index == ctx.pii.blind_index(new, purpose=ACCOUNT_CARD_PURPOSE)
    # the check counted as an identity attempt, and the face verification is used up
    assert await card_attempts(user_id) == 1
    fv = await FaceVerification.get(verify_id=verify_id)
    assert fv.consumed_at is not None and fv.consumed_by == f"bound_card:{account_id}"
    assert_error(await change(client, user, account_id, person.card_number, person.phone, verify_id), 422,
                 "FACE_VERIFICATION_USED")
    # the history keeps the old card's reference, closed, and the new one's with the face verification
    old_row, new_row = await AccountBoundCard.filter(account_id=account_id).order_by("id")
    assert (old_row.card_masked, old_row.card_class) == (mask_card(person.card_number), "I")
    assert ctx.pii.decrypt(old_row.card_enc, purpose=ACCOUNT_CARD_PURPOSE) == person.card_number
    assert old_row.replaced_at is not None and old_row.replaced_at == new_row.bound_at
    assert (new_row.card_masked, new_row.replaced_at, new_row.face_verification_id) == (mask_card(new), None, fv.id)
    assert new_row.card_index == row.bound_card_index and new_row.check_ref
    # one audit event, both cards masked, nothing in full
    events = await AuditEvent.filter(entity_type="account", entity_id=str(account_id),
                                     action="account.bound_card.changed")
    assert len(events) == 1 and events[0].actor == f"user:{row.user_id}"
    assert (events[0].data["old_card"], events[0].data["new_card"]) == (mask_card(person.card_number), mask_card(new))
    assert new not in str(events[0].data) and person.card_number not in str(events[0].data)
    assert person.phone not in str(events[0].data)
    # When the holder tops up and withdraws
    old_sent = await network_transfers(client, person.card_number)
    topped = await top_up(client, user, account_id, 30_000)
    assert topped.status_code == 201, topped.text
    drawn = await withdraw(client, user, account_id, 10_000)
    assert drawn.status_code == 201, drawn.text
    # Then the network pulled from the new card and pushed to it; the old card saw nothing
    sent = await network_transfers(client, new)
    assert [(t["direction"], t["amount_fen"], t["status"]) for t in sent] == [
        ("debit", 30_000, "SUCCEEDED"), ("credit", 10_000, "SUCCEEDED")]
    assert await card_balance(client, new) == 80_000 - 30_000 + 10_000
    assert await network_transfers(client, person.card_number) == old_sent
    assert await card_balance(client, person.card_number) == 50_000
    entries = (await client.get(f"/api/v1/accounts/{account_id}/transactions", headers=user.headers)).json()["entries"]
    assert {e["counterparty"] for e in entries} == {mask_card(new)}
    # and risk control judged them by the new card
    judged = await RiskEvent.filter(reference__in=[t["request_id"] for t in sent])
    assert len(judged) == 2 and {e.bank_card for e in judged} == {row.bound_card_index}


async def test_the_opening_card_is_the_first_of_the_history(client, sandbox, ctx):
    _, person, account = await open_account(client, sandbox)
    rows = await AccountBoundCard.filter(account_id=account["id"])
    assert len(rows) == 1
    only = rows[0]
    assert (only.card_masked, only.card_class, only.replaced_at, only.face_verification_id) == (
        mask_card(person.card_number), "I", None, None)
    assert ctx.pii.decrypt(only.card_enc, purpose=ACCOUNT_CARD_PURPOSE) == person.card_number
    assert only.bound_at == (await Account.get(id=account["id"])).opened_at


async def test_a_card_that_fails_the_same_name_check_leaves_the_old_card_bound(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=50_000)
    account_id = account["id"]
    await more_attempts()
    user_id = (await Account.get(id=account_id)).user_id
    verify_id = await fresh_face(client, sandbox, user)
    someone_else = await another_card(sandbox, new_person())  # a card in another person's name
    wrong_phone = await another_card(sandbox, person)
    class_ii = await another_card(sandbox, person, card_class="II")
    unknown = make_card_number()  # no bank knows it
    bad_luhn = wrong_check_digit(make_card_number())
    other_phone = ("138" if person.phone[2] == "9" else "139") + person.phone[3:]
    for card, phone, status, code in (
            (someone_else, person.phone, 422, "CARD_MISMATCH"),
            (wrong_phone, other_phone, 422, "CARD_MISMATCH"),
            (class_ii, person.phone, 422, "CARD_CLASS_NOT_ALLOWED"),
            (unknown, person.phone, 422, "CARD_NOT_FOUND")):
        before = await card_attempts(user_id)
        assert_error(await change(client, user, account_id, card, phone, verify_id), status, code)
        assert await card_attempts(user_id) == before + 1  # each check counts, as at opening
        await unchanged(account_id, person.card_number)
    # a number that fails its check digit is refused before the network is asked, and costs no attempt
    before = await card_attempts(user_id)
    assert_error(await change(client, user, account_id, bad_luhn, person.phone, verify_id), 422,
                 "CARD_NUMBER_INVALID", "card_number")
    assert await card_attempts(user_id) == before
    await unchanged(account_id, person.card_number)
    # the face verification was not used by the refusals, and top-ups still pull from the old card
    assert (await FaceVerification.get(verify_id=verify_id)).consumed_at is None
    assert (await top_up(client, user, account_id, 1_000)).status_code == 201
    assert await card_balance(client, person.card_number) == 49_000
    # the same face verification then binds a card that passes
    good = await another_card(sandbox, person)
    assert (await change(client, user, account_id, good, person.phone, verify_id)).status_code == 200


async def test_the_daily_attempt_limit_holds_for_a_new_card(client, sandbox, ctx):
    user, person, account = await open_account(client, sandbox)
    await more_attempts()
    verify_id = await fresh_face(client, sandbox, user)
    user_id = (await Account.get(id=account["id"])).user_id
    await AttemptCounter.create(user_id=user_id, kind="bank_card", day=china_day(),
                                count=ctx.settings.daily_attempt_limit)
    new = await another_card(sandbox, person)
    assert_error(await change(client, user, account["id"], new, person.phone, verify_id), 429, "TOO_MANY_ATTEMPTS")
    await unchanged(account["id"], person.card_number)


async def test_the_card_bound_now_is_refused_without_an_attempt(client, sandbox):
    user, person, account = await open_account(client, sandbox)
    await more_attempts()
    verify_id = await fresh_face(client, sandbox, user)
    user_id = (await Account.get(id=account["id"])).user_id
    assert_error(await change(client, user, account["id"], person.card_number, person.phone, verify_id), 409,
                 "CARD_ALREADY_BOUND", "card_number")
    assert await card_attempts(user_id) == 0
    assert (await FaceVerification.get(verify_id=verify_id)).consumed_at is None
    await unchanged(account["id"], person.card_number)


async def test_a_new_card_needs_a_fresh_face_verification(client, sandbox):
    user, person, account = await open_account(client, sandbox)
    account_id = account["id"]
    await more_attempts()
    user_id = (await Account.get(id=account_id)).user_id
    new = await another_card(sandbox, person)
    no_face = await client.post(bound_card(account_id), headers=user.headers,
                                json={"card_number": new, "reserved_phone": person.phone})
    assert_error(no_face, 422, "VALIDATION_ERROR", "verify_id")
    assert_error(await change(client, user, account_id, new, person.phone, "no-such-verification"), 422,
                 "FACE_VERIFICATION_INVALID")
    pending = (await client.post("/api/v1/identity/face", headers=user.headers)).json()["verify_id"]
    assert_error(await change(client, user, account_id, new, person.phone, pending), 422, "FACE_VERIFICATION_PENDING")
    stale = await fresh_face(client, sandbox, user)
    fv = await FaceVerification.get(verify_id=stale)
    await FaceVerification.filter(id=fv.id).update(finished_at=fv.finished_at - timedelta(minutes=6))
    assert_error(await change(client, user, account_id, new, person.phone, stale), 422, "FACE_VERIFICATION_STALE")
    # another user's passed face verification is not this user's
    other = await login_new_user(client, sandbox)
    assert_error(await change(client, other, account_id, new, person.phone, stale), 404, "ACCOUNT_NOT_FOUND")
    # none of these asked the card network
    assert await card_attempts(user_id) == 0
    await unchanged(account_id, person.card_number)


async def test_another_users_account_answers_like_one_that_does_not_exist(client, sandbox):
    user, person, account = await open_account(client, sandbox)
    other, other_person, _ = await open_account(client, sandbox)
    await more_attempts()
    verify_id = await fresh_face(client, sandbox, other)
    card = await another_card(sandbox, other_person)
    theirs = await change(client, other, account["id"], card, other_person.phone, verify_id)
    missing = await change(client, other, 2**53 - 1, card, other_person.phone, verify_id)
    got, expected = assert_error(theirs, 404, "ACCOUNT_NOT_FOUND"), assert_error(missing, 404, "ACCOUNT_NOT_FOUND")
    assert {**got, "request_id": ""} == {**expected, "request_id": ""}
    assert person.card_number[-4:] not in theirs.text
    await unchanged(account["id"], person.card_number)
    assert (await FaceVerification.get(verify_id=verify_id)).consumed_at is None


@pytest.mark.parametrize("status", ["closed", "closing"])
async def test_a_closed_account_keeps_its_card(client, sandbox, status):
    user, person, account = await open_account(client, sandbox)
    await more_attempts()
    await Account.filter(id=account["id"]).update(status=status)  # closing has its own tests
    verify_id = await fresh_face(client, sandbox, user)
    new = await another_card(sandbox, person)
    assert_error(await change(client, user, account["id"], new, person.phone, verify_id), 409, "ACCOUNT_CLOSED")
    await unchanged(account["id"], person.card_number)


async def test_a_restricted_account_keeps_its_card_until_the_restriction_is_lifted(client, sandbox):
    user, person, account = await open_account(client, sandbox)
    account_id = account["id"]
    await more_attempts()
    user_id = (await Account.get(id=account_id)).user_id
    verify_id = await fresh_face(client, sandbox, user)
    new = await another_card(sandbox, person)
    # a loss report
    assert (await client.post(f"/api/v1/accounts/{account_id}/loss-report", headers=user.headers)).status_code == 201
    refused = assert_error(await change(client, user, account_id, new, person.phone, verify_id), 409,
                           "ACCOUNT_RESTRICTED")
    assert "绑定银行卡" in refused["message"]
    # the bank's freezes, a judicial one of an amount too
    for kind, held in (("fraud", None), ("judicial", 100)):
        await restrictions.freeze(account_id, kind=kind, reason="测试", operator_name="王五", held_fen=held)
        assert_error(await change(client, user, account_id, new, person.phone, verify_id), 409, "ACCOUNT_RESTRICTED")
        await restrictions.unfreeze(account_id, kind=kind, reason="测试", operator_name="赵六")
    # an expired ID: the holder is told to renew it first
    expired = await atomic(lambda conn: restrictions._restrict(
        conn, account_id, RestrictionCode.ID_EXPIRED, by="system", actor="system", reason="ID card expired"))
    refused = assert_error(await change(client, user, account_id, new, person.phone, verify_id), 409,
                           "ACCOUNT_RESTRICTED")
    assert "身份证" in refused["message"]
    await AccountRestriction.filter(id=expired.restriction.id).update(lifted_at=expired.restriction.created_at)
    assert await card_attempts(user_id) == 0
    await unchanged(account_id, person.card_number)
    # lifted, the same request binds the card
    lift_face = await fresh_face(client, sandbox, user)
    lifted = await client.request("DELETE", f"/api/v1/accounts/{account_id}/loss-report", headers=user.headers,
                                  json={"verify_id": lift_face})
    assert lifted.status_code == 200 and lifted.json()["status"] == "active", lifted.text
    assert (await change(client, user, account_id, new, person.phone, verify_id)).status_code == 200


async def test_an_expired_id_card_is_renewed_before_a_new_card(client, sandbox):
    user, person, account = await open_account(client, sandbox)
    await more_attempts()
    verify_id = await fresh_face(client, sandbox, user)
    user_id = (await Account.get(id=account["id"])).user_id
    await Identity.filter(user_id=user_id).update(id_valid_until=china_day() - timedelta(days=1))
    new = await another_card(sandbox, person)
    refused = assert_error(await change(client, user, account["id"], new, person.phone, verify_id), 422, "ID_EXPIRED")
    assert "身份证" in refused["message"]
    assert await card_attempts(user_id) == 0
    await unchanged(account["id"], person.card_number)


async def test_a_pending_or_held_transfer_keeps_the_card_it_was_made_with(client, sandbox):
    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    account_id = account["id"]
    await more_attempts()
    verify_id = await fresh_face(client, sandbox, user)
    new = await another_card(sandbox, person, balance_fen=100_000)
    # a top-up whose answer is lost, and the network cannot be asked: pending
    key = new_key()
    await sandbox.fault(PULL_PATH, when="after", drop=True)
    await sandbox.fault(QUERY_PATH, http_status=503, count=3)
    first = await top_up(client, user, account_id, 25_000, key=key)
    assert first.status_code == 202 and first.json()["status"] == "pending", first.text
    assert_error(await change(client, user, account_id, new, person.phone, verify_id), 409, "TRANSFER_PENDING")
    await unchanged(account_id, person.card_number)
    # settled by its retry: it was the old card's, and now the card can change
    settled = await top_up(client, user, account_id, 25_000, key=key)
    assert settled.status_code == 201, settled.text
    assert await card_balance(client, person.card_number) == 75_000
    # a transfer held for an operator refuses it too
    held = await CardTransfer.create(request_id="TEST" + new_key(), account_id=account_id,
                                     user_id=(await Account.get(id=account_id)).user_id, direction="pull",
                                     amount_fen=100, status="held")
    assert_error(await change(client, user, account_id, new, person.phone, verify_id), 409, "TRANSFER_PENDING")
    await CardTransfer.filter(id=held.id).update(status="declined", decline_reason="RISK_REJECTED")
    assert (await change(client, user, account_id, new, person.phone, verify_id)).status_code == 200
    assert await card_balance(client, new) == 100_000


async def test_no_card_number_in_full_is_stored_or_logged(client, sandbox):
    user, person, account = await open_account(client, sandbox)
    await more_attempts()
    new = await another_card(sandbox, person)
    resp = await change(client, user, account["id"], new, person.phone, await fresh_face(client, sandbox, user))
    assert resp.status_code == 200, resp.text
    rows = await all_rows_text()
    for secret in (new, person.card_number, person.phone):
        assert secret not in rows, "a card number or phone in a database row"


async def test_a_top_up_begun_before_the_change_pulls_from_the_card_bound_when_it_was_made(client, sandbox, ctx,
                                                                                            monkeypatch):
    """The card is read under the account's lock, with the transfer made: a change that committed while the
    top-up was on its way to that lock is the card the network is sent."""
    from services.accounts import bound_card as service
    from services.accounts import funding

    user, person, account = await open_account(client, sandbox, card_balance_fen=100_000)
    account_id = account["id"]
    await more_attempts()
    verify_id = await fresh_face(client, sandbox, user)
    new = await another_card(sandbox, person, balance_fen=100_000)
    user_id = (await Account.get(id=account_id)).user_id
    real = funding._owned_account

    async def read_then_change(uid: int, aid: int):
        found = await real(uid, aid)  # the top-up has read the account (with the old card) ...
        monkeypatch.setattr(funding, "_owned_account", real)
        await service.change(ctx, user_id, account_id, card_number=new, reserved_phone=person.phone,
                             verify_id=verify_id)  # ... and the card changes before it takes the lock
        return found

    monkeypatch.setattr(funding, "_owned_account", read_then_change)
    topped = await top_up(client, user, account_id, 20_000)
    assert topped.status_code == 201, topped.text
    assert await card_balance(client, new) == 80_000
    assert await card_balance(client, person.card_number) == 100_000
    entries = await client.get(f"/api/v1/accounts/{account_id}/transactions", headers=user.headers)
    assert [e["counterparty"] for e in entries.json()["entries"]] == [mask_card(new)]
