"""Opening an account: the application's steps in order, the agreement as its subject, submit and every
refusal (before signing, the per-person limit, also when two are submitted at once), and the account
it opens (number, masked card, outbox message)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest

from core.clock import china_day, utcnow
from models.accounts import Account, AccountApplication
from models.contracts import Contract
from models.identity import Identity
from models.infra import OutboxMessage
from services.accounts import rules
from services.accounts.numbers import is_account_number
from services.audit import verify as verify_chain
from tests.account_helpers import (
    bind_phone,
    open_account,
    ready_applicant,
    sign_agreement,
    signed_application,
    start_application,
    submit,
)
from tests.helpers import assert_error, login_new_user, new_person, pass_face, verified_user, verify_id_card
from tests.identity_data import make_id_number


async def test_missing_steps_are_listed_in_order_and_milestones_stamped(client, sandbox):
    user = await login_new_user(client, sandbox)
    first = await client.post("/api/v1/account-applications", headers=user.headers, json={"account_class": "II"})
    assert first.status_code == 201, first.text
    app = first.json()
    assert app["status"] == "draft" and app["account_class"] == "II"
    assert app["missing"] == ["phone", "id_card", "face", "bank_card", "agreement"] and app["next_step"] == "phone"
    assert app["milestones"] == dict.fromkeys(("identity_verified", "signed", "opened", "rejected", "expired"))
    # the same class again: the open application, not a second one
    again = await client.post("/api/v1/account-applications", headers=user.headers, json={"account_class": "II"})
    assert again.status_code == 200 and again.json()["id"] == app["id"]
    # the identity checks, then the phone: only the agreement is left, and identity_verified is stamped
    user2, person = await verified_user(client, sandbox)
    app2 = await start_application(client, user2)
    assert app2["missing"] == ["phone", "agreement"]
    await bind_phone(client, sandbox, user2, person.phone)
    got = (await client.get(f"/api/v1/account-applications/{app2['id']}", headers=user2.headers)).json()
    assert got["status"] == "identity_verified" and got["missing"] == ["agreement"] and got["next_step"] == "agreement"
    assert got["milestones"]["identity_verified"] is not None
    await sign_agreement(client, sandbox, user2, app2["id"])
    got = (await client.get(f"/api/v1/account-applications/{app2['id']}", headers=user2.headers)).json()
    assert got["status"] == "signed" and got["missing"] == [] and got["next_step"] == "submit"
    assert got["contract_id"] and got["milestones"]["signed"] is not None


async def test_a_stale_face_check_is_missing_again(client, sandbox, ctx):
    user, _ = await ready_applicant(client, sandbox)
    app = await start_application(client, user)
    await Identity.filter(user_id=await _user_id(user)).update(
        face_passed_at=utcnow() - timedelta(seconds=ctx.settings.face_valid_s + 1))
    got = (await client.get(f"/api/v1/account-applications/{app['id']}", headers=user.headers)).json()
    assert got["missing"] == ["face", "agreement"]
    assert (await pass_face(client, sandbox, user)).json()["passed"] is True
    got = (await client.get(f"/api/v1/account-applications/{app['id']}", headers=user.headers)).json()
    assert got["missing"] == ["agreement"]


async def test_the_agreement_is_signed_for_the_application_in_its_class(client, sandbox):
    user, _ = await ready_applicant(client, sandbox)
    for account_class in ("II", "III"):
        app = await start_application(client, user, account_class)
        contract = await sign_agreement(client, sandbox, user, app["id"])
        assert contract["variant"] == account_class and contract["subject_type"] == "account_application"
        assert contract["subject_id"] == str(app["id"])
    # someone else's application is no subject of mine
    other, _ = await ready_applicant(client, sandbox)
    assert_error(await client.post("/api/v1/contracts", headers=other.headers,
                                   json={"template": "account_agreement", "subject_id": app["id"]}), 404, "SUBJECT_NOT_FOUND")


async def test_submit_before_signing_is_refused_and_leaves_nothing(client, sandbox):
    user, _ = await ready_applicant(client, sandbox)
    app = await start_application(client, user)
    err = assert_error(await submit(client, user, app["id"]), 409, "APPLICATION_INCOMPLETE")
    assert "签署开户协议" in err["message"]
    # a draft of the agreement is not a signature
    resp = await client.post("/api/v1/contracts", headers=user.headers,
                             json={"template": "account_agreement", "subject_id": app["id"]})
    assert resp.status_code == 201
    assert_error(await submit(client, user, app["id"]), 409, "APPLICATION_INCOMPLETE")
    assert not await Account.filter(user_id=await _user_id(user)).exists()
    got = (await client.get(f"/api/v1/account-applications/{app['id']}", headers=user.headers)).json()
    assert got["status"] == "identity_verified" and got["account_id"] is None


async def test_submit_opens_the_account_once(client, sandbox, ctx):
    user, person, app = await signed_application(client, sandbox)
    first, second = await asyncio.gather(submit(client, user, app["id"]), submit(client, user, app["id"]))
    assert sorted([first.status_code, second.status_code]) == [200, 201], (first.text, second.text)
    account = first.json()
    assert second.json()["id"] == account["id"]
    assert account["account_class"] == "II" and account["status"] == "active" and account["balance_fen"] == 0
    assert account["bound_card_masked"] == person.card_number[:6] + "*" * (len(person.card_number) - 10) + person.card_number[-4:]
    assert "*" in account["number_masked"] and len(account["number_masked"]) == 19
    again = await submit(client, user, app["id"])
    assert again.status_code == 200 and again.json()["id"] == account["id"]

    row = await Account.get(id=account["id"])
    assert is_account_number(row.number) and len(row.number) == 19
    assert row.number.startswith(ctx.settings.bank_account_prefix)
    assert person.card_number not in row.bound_card_enc and row.bound_card_masked == account["bound_card_masked"]
    assert await Account.filter(user_id=await _user_id(user)).count() == 1
    got = (await client.get(f"/api/v1/account-applications/{app['id']}", headers=user.headers)).json()
    assert got["status"] == "opened" and got["account_id"] == account["id"] and got["milestones"]["opened"]
    assert got["missing"] == [] and got["next_step"] is None
    # "account opened" waits in the outbox, written with the account
    messages = [m for m in await OutboxMessage.filter(kind="subscribe_message") if m.payload["touser"] == user.openid]
    assert len(messages) == 1
    assert messages[0].payload["template_id"] == ctx.settings.account_opened_template_id
    assert messages[0].payload["data"]["character_string2"]["value"] == account["number_masked"]
    assert messages[0].payload["page"] == f"pages/account/account?id={account['id']}"  # opens this account
    listed = (await client.get("/api/v1/accounts", headers=user.headers)).json()["accounts"]
    assert [a["id"] for a in listed] == [account["id"]]
    # the audit trail records the opening, and its chain holds
    assert (await verify_chain()).ok


async def _user_id(user) -> int:
    from models.users import User

    return (await User.get(openid=user.openid)).id


async def _seed_accounts(user, account_class: str, count: int) -> None:
    """Accounts this person already holds (as if opened before), straight into the table."""
    from services.accounts.numbers import new_account_number

    user_id = await _user_id(user)
    identity = await Identity.get(user_id=user_id)
    for _ in range(count):
        await Account.create(number=new_account_number("623099"), user_id=user_id, holder_index=identity.id_number_index,
                             account_class=account_class, rules_version=rules.RULES_VERSION, bound_card_enc="x",
                             bound_card_index="x", bound_card_masked="622202******0000", opened_at=utcnow())


async def test_a_sixth_class_ii_account_is_refused(client, sandbox):
    user, _, app = await signed_application(client, sandbox)
    await _seed_accounts(user, "II", rules.RULES["II"].max_accounts_per_person)
    await _seed_accounts(user, "III", 2)  # other classes do not count
    assert_error(await submit(client, user, app["id"]), 409, "ACCOUNT_LIMIT_REACHED")
    got = (await client.get(f"/api/v1/account-applications/{app['id']}", headers=user.headers)).json()
    assert got["status"] == "rejected" and got["rejection_code"] == "ACCOUNT_LIMIT_REACHED"
    assert got["milestones"]["rejected"] is not None
    assert await Account.filter(user_id=await _user_id(user), account_class="II").count() == 5
    # a rejected application stays closed; a new one for the class can be started
    assert_error(await submit(client, user, app["id"]), 409, "APPLICATION_CLOSED")
    fresh = await start_application(client, user)
    assert fresh["id"] != app["id"] and fresh["status"] != "rejected"


async def test_two_applications_submitted_at_once_cannot_pass_the_limit(client, sandbox):
    # one person, two WeChat accounts (the limit is per person: by ID number, not by login)
    user, person, first = await signed_application(client, sandbox, "III")
    other, _, second = await signed_application(client, sandbox, "III", person=person)
    await _seed_accounts(user, "III", rules.RULES["III"].max_accounts_per_person - 1)
    answers = await asyncio.gather(submit(client, user, first["id"]), submit(client, other, second["id"]))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert_error(next(a for a in answers if a.status_code == 409), 409, "ACCOUNT_LIMIT_REACHED")
    holder = (await Identity.get(user_id=await _user_id(user))).id_number_index
    assert await Account.filter(holder_index=holder, account_class="III").count() == 5


async def test_a_second_account_of_a_class_needs_its_own_application_and_agreement(client, sandbox):
    user, person, account = await open_account(client, sandbox)
    app = await start_application(client, user)  # the opened one is closed: a new application
    assert app["status"] in ("draft", "identity_verified") and app["missing"] == ["agreement"]
    assert_error(await submit(client, user, app["id"]), 409, "APPLICATION_INCOMPLETE")


async def test_an_expired_application_cannot_be_submitted(client, sandbox):
    user, _, app = await signed_application(client, sandbox)
    await AccountApplication.filter(id=app["id"]).update(expires_at=utcnow() - timedelta(seconds=1))
    got = (await client.get(f"/api/v1/account-applications/{app['id']}", headers=user.headers)).json()
    assert got["status"] == "expired" and got["milestones"]["expired"] and got["next_step"] is None
    assert_error(await submit(client, user, app["id"]), 409, "APPLICATION_CLOSED")
    # its agreement cannot be prepared any more either
    assert_error(await client.post("/api/v1/contracts", headers=user.headers,
                                   json={"template": "account_agreement", "subject_id": app["id"]}), 409, "SUBJECT_CLOSED",
                 "subject_id")
    assert (await start_application(client, user))["id"] != app["id"]


async def test_the_minimum_age_is_the_rules_tables(client, sandbox, monkeypatch):
    user, _, app = await signed_application(client, sandbox)
    monkeypatch.setitem(rules.RULES, "II", rules.ClassRules(**{**rules.RULES["II"].__dict__, "min_age_years": 150}))
    assert_error(await submit(client, user, app["id"]), 422, "UNDER_AGE")
    monkeypatch.undo()
    assert (await submit(client, user, app["id"])).status_code == 201


def sixteenth_birthday_in(days: int) -> date:
    """The birth date of someone who turns 16 (the rules table's minimum) ``days`` from today, China time."""
    day = china_day() + timedelta(days=days)
    try:
        return day.replace(year=day.year - 16)
    except ValueError:  # 29 February, in a year that has none
        return day.replace(year=day.year - 16, day=28)


async def test_sixteen_today_opens_and_fifteen_is_refused(client, sandbox, ctx, monkeypatch):
    assert rules.RULES["II"].min_age_years == 16 == rules.youngest_opening_age()
    # sixteen today: the ID card passes and the account opens
    sixteen = new_person(id_number=make_id_number(sixteenth_birthday_in(0)))
    assert (await open_account(client, sandbox, person=sixteen))[2]["status"] == "active"
    # sixteen tomorrow: the ID card is refused today
    fifteen = new_person(id_number=make_id_number(sixteenth_birthday_in(1)))
    assert_error(await verify_id_card(client, sandbox, await login_new_user(client, sandbox), fifteen), 422,
                 "UNDER_AGE")
    # and should another class open at fifteen (so the ID card step lets them through), Class II still holds
    # to its own row of the rules table
    monkeypatch.setitem(rules.RULES, "III", rules.ClassRules(**{**rules.RULES["III"].__dict__, "min_age_years": 15}))
    user, _, app = await signed_application(client, sandbox, person=fifteen)
    assert_error(await submit(client, user, app["id"]), 422, "UNDER_AGE")
    assert not await Account.filter(user_id=(await AccountApplication.get(id=app["id"])).user_id).exists()


async def test_other_users_applications_and_accounts_are_not_found(client, sandbox, user):
    owner, _, account = await open_account(client, sandbox)
    owner_app = (await AccountApplication.get(account_id=account["id"])).id
    assert_error(await client.get(f"/api/v1/account-applications/{owner_app}", headers=user.headers), 404,
                 "APPLICATION_NOT_FOUND")
    assert_error(await submit(client, user, owner_app), 404, "APPLICATION_NOT_FOUND")
    for path in (f"/api/v1/accounts/{account['id']}", f"/api/v1/accounts/{account['id']}/transactions"):
        assert_error(await client.get(path, headers=user.headers), 404, "ACCOUNT_NOT_FOUND")
    assert (await client.get("/api/v1/accounts", headers=user.headers)).json() == {"accounts": []}


@pytest.mark.parametrize("body", [{"account_class": "I"}, {"account_class": "ii"}, {"account_class": 2}, {},
                                  {"account_class": "II", "extra": 1}])
async def test_the_class_is_strict(client, user, body):
    assert_error(await client.post("/api/v1/account-applications", headers=user.headers, json=body), 422,
                 "VALIDATION_ERROR")
    assert not await AccountApplication.filter(user_id=await _user_id(user)).exists()
