"""An expired ID card (issue 22): the worker restricts the holder's accounts (``ID_EXPIRED``, by the system)
from the day after the card's last valid day, China Standard Time, and tells the holder once, by subscribe
message, from a month before; renewing the card (same name and number, a new validity date) and then
passing a face verification lifts the restriction on all their accounts, and neither step alone does.

The clock is moved, never waited for: the job's, the face check's and the restrictions' ``utcnow``
together (``moved_to``), as a day passing would move them. The dates stay within weeks of today, well
before the 2040 validity the suite's other people carry, so the job never touches their accounts.
``ledger check`` runs after each test (conftest).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from core.clock import CHINA_TZ, china_day
from models.accounts import AccountRestriction
from models.audit import AuditEvent
from models.identity import AttemptCounter, Identity, VerificationAttempt
from models.infra import OutboxMessage, OutboxStatus
from models.users import User
from services import outbox
from services.accounts import id_expiry, restrictions
from services.identity import face
from services.notifications import outbox_handlers
from tests.account_helpers import open_account, signed_application, submit
from tests.helpers import assert_error, new_person, pass_face, verified_user, verify_id_card

SUBSCRIBE = "subscribe_message"


def card_date(day: date) -> str:
    return day.strftime("%Y%m%d")  # as the card's back prints it (the emulator's OCR reads it back)


def moved_to(monkeypatch, day: date, at: time = time(12, 0)) -> datetime:
    """Now is ``at`` on ``day`` in China Standard Time, for the job, face checks and restrictions."""
    now = datetime.combine(day, at, tzinfo=CHINA_TZ).astimezone(UTC)
    for module in (id_expiry, face, restrictions):
        monkeypatch.setattr(module, "utcnow", lambda: now)
    return now


async def more_face_attempts() -> None:
    """Opening took some of the day's face attempts: these tests are not about the daily limit."""
    await AttemptCounter.all().delete()


async def holder_expiring(client, sandbox, in_days: int, *, account_class: str = "II"):
    """An account holder whose ID card's last valid day is ``in_days`` from today: (user, person, account, D)."""
    valid_until = china_day() + timedelta(days=in_days)
    user, person, account = await open_account(client, sandbox, account_class,
                                               person=new_person(valid_until=card_date(valid_until)))
    return user, person, account, valid_until


async def in_force(account_id: int) -> list[tuple[str, str]]:
    return [(r.code, r.set_by) for r in
            await AccountRestriction.filter(account_id=account_id, lifted_at=None).order_by("id")]


async def shown(client, user, account_id: int) -> dict:
    resp = await client.get(f"/api/v1/accounts/{account_id}", headers=user.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def identity_of(user) -> Identity:
    return await Identity.get(user_id=(await User.get(openid=user.openid)).id)


async def notices_to(openid: str, template_id: str) -> list[OutboxMessage]:
    return [m for m in await OutboxMessage.filter(kind=SUBSCRIBE).order_by("id")
            if m.payload["touser"] == openid and m.payload["template_id"] == template_id]


# -- the restriction --------------------------------------------------------------------------------


async def test_an_id_valid_until_d_is_not_restricted_on_d_and_is_on_d_plus_one(client, sandbox, ctx, monkeypatch):
    # Given a holder whose card is valid until D
    user, _, account, valid_until = await holder_expiring(client, sandbox, 10)
    # When the job runs on D, in its last second (China Standard Time)
    moved_to(monkeypatch, valid_until, time(23, 59, 59))
    await id_expiry.run(ctx)
    # Then nothing is restricted
    assert await in_force(account["id"]) == []
    # When it runs at the first moment of D+1
    moved_to(monkeypatch, valid_until + timedelta(days=1), time(0, 0))
    first = await id_expiry.run(ctx)
    # Then the account is restricted by the system, its status moved, both audited
    assert first["restricted"] >= 1
    assert await in_force(account["id"]) == [("ID_EXPIRED", "system")]
    page = await shown(client, user, account["id"])
    assert page["status"] == "restricted"
    assert [(r["code"], r["by"]) for r in page["restrictions"]] == [("ID_EXPIRED", "system")]
    events = [(e.action, e.actor) for e in
              await AuditEvent.filter(entity_type="account", entity_id=str(account["id"])).order_by("seq")]
    assert events == [("account.restriction.set", "system"), ("account.restricted", "system")]
    # and a second run, or a later one, changes nothing
    assert (await id_expiry.run(ctx))["restricted"] == 0
    moved_to(monkeypatch, valid_until + timedelta(days=3))
    await id_expiry.run(ctx)
    assert await AccountRestriction.filter(account_id=account["id"]).count() == 1
    assert await AuditEvent.filter(entity_type="account", entity_id=str(account["id"])).count() == 2


async def test_the_worker_runs_it_as_a_periodic_job(client, sandbox, ctx, settings, monkeypatch):
    from models.infra import JobLease
    from services import jobs, worker

    [job] = [j for j in worker.periodic_jobs(ctx, settings) if j.name == "accounts.id_expiry"]
    _, _, account, valid_until = await holder_expiring(client, sandbox, 13)
    moved_to(monkeypatch, valid_until + timedelta(days=1))
    await JobLease.filter(name=job.name).delete()  # never run on this database: due now
    result = await jobs.run_due(job, "test-worker")
    assert result is not None and result["restricted"] >= 1
    assert await in_force(account["id"]) == [("ID_EXPIRED", "system")]
    assert (await JobLease.get(name=job.name)).last_ok_at is not None


async def test_an_expired_id_restricts_every_account_of_the_holder_and_stops_outflows(client, sandbox, ctx,
                                                                                    monkeypatch):
    from tests.account_helpers import set_card_balance, top_up, withdraw

    # Given a holder of a Class II and a Class III account, with money in one
    user, person, first, valid_until = await holder_expiring(client, sandbox, 12)
    await more_face_attempts()
    _, _, app = await signed_application(client, sandbox, "III", user=user, person=person)
    second = (await submit(client, user, app["id"])).json()
    await set_card_balance(sandbox, person.card_number, 10_000)
    assert (await top_up(client, user, first["id"], 5_000)).status_code == 201
    # When the card has expired and the job has run
    moved_to(monkeypatch, valid_until + timedelta(days=1))
    await id_expiry.run(ctx)
    # Then both are restricted; a withdrawal is refused, a top-up still books
    assert await in_force(first["id"]) == [("ID_EXPIRED", "system")]
    assert await in_force(second["id"]) == [("ID_EXPIRED", "system")]
    assert_error(await withdraw(client, user, first["id"], 1_000), 409, "ACCOUNT_RESTRICTED")
    assert (await top_up(client, user, first["id"], 1_000)).status_code == 201


async def test_a_long_term_id_and_a_valid_one_are_left_alone(client, sandbox, ctx, monkeypatch):
    from tests.identity_data import make_id_number

    # a 长期 card (its holder born early enough to be given one) and one valid for another 40 days
    old = new_person(valid_until="长期", id_number=make_id_number(date(1960, 5, 5)))
    holder, _, long_term = await open_account(client, sandbox, person=old)
    assert (await identity_of(holder)).id_valid_until is None
    _, _, valid, _ = await holder_expiring(client, sandbox, 40)
    moved_to(monkeypatch, china_day() + timedelta(days=20))
    await id_expiry.run(ctx)
    assert await in_force(long_term["id"]) == [] and await in_force(valid["id"]) == []


async def test_a_renewal_committed_since_the_query_wins(client, sandbox, ctx, monkeypatch):
    """The job checks the card again under the identity's lock: a renewal saved between its query and its
    transaction leaves the account alone."""
    user, _, account, valid_until = await holder_expiring(client, sandbox, 14)
    moved_to(monkeypatch, valid_until + timedelta(days=1))
    identity = await identity_of(user)
    await Identity.filter(id=identity.id).update(id_valid_until=date(2046, 1, 1))  # what the renewal saved
    from services.db import atomic

    today = valid_until + timedelta(days=1)
    assert await atomic(lambda conn: id_expiry._restrict_one(conn, account["id"], identity.user_id, today)) is False
    assert await in_force(account["id"]) == []


# -- the notice a month before ------------------------------------------------------------------------


async def test_the_holder_is_told_30_days_before_not_31_and_once(client, sandbox, ctx, settings, monkeypatch):
    template = settings.id_expiry_template_id
    user, _, account, valid_until = await holder_expiring(client, sandbox, 45)
    # 31 days before its end: not yet
    moved_to(monkeypatch, valid_until - timedelta(days=31), time(23, 59, 59))
    await id_expiry.run(ctx)
    assert await notices_to(user.openid, template) == []
    # 30 days before: told, with the date and the renewal page
    moved_to(monkeypatch, valid_until - timedelta(days=30), time(0, 0))
    await id_expiry.run(ctx)
    [notice] = await notices_to(user.openid, template)
    assert notice.payload["data"] == {"thing1": {"value": "居民身份证"}, "date2": {"value": valid_until.isoformat()},
                                      "thing3": {"value": "到期后账户将受限，请及时更新"}}
    assert notice.payload["page"] == "pages/identity/idcard/idcard?renew=1"
    assert (await identity_of(user)).id_expiry_notified_for == valid_until
    # and once: the next run, the next days, and two workers at once send nothing more
    await id_expiry.run(ctx)
    moved_to(monkeypatch, valid_until - timedelta(days=10))
    await asyncio.gather(id_expiry.run(ctx), id_expiry.run(ctx))
    moved_to(monkeypatch, valid_until)
    await id_expiry.run(ctx)
    assert len(await notices_to(user.openid, template)) == 1
    assert await in_force(account["id"]) == []  # valid all of D


async def test_the_notice_is_written_once_also_when_two_workers_both_found_the_holder(client, sandbox, ctx,
                                                                                      settings, monkeypatch):
    """The job's lease keeps two workers apart; the mark is conditional anyway: two passes that both found
    the holder in their query write one notice."""
    user, _, _, valid_until = await holder_expiring(client, sandbox, 20)
    identity = await identity_of(user)
    from services.db import atomic

    told = await asyncio.gather(*(atomic(lambda conn: id_expiry._notify_one(ctx, conn, identity.id, identity.user_id,
                                                                             valid_until)) for _ in range(2)))
    assert sorted(told) == [False, True]
    assert len(await notices_to(user.openid, settings.id_expiry_template_id)) == 1


async def test_a_verified_user_without_an_account_is_not_told(client, sandbox, ctx, settings, monkeypatch):
    valid_until = china_day() + timedelta(days=26)
    no_account, _ = await verified_user(client, sandbox, new_person(valid_until=card_date(valid_until)))
    moved_to(monkeypatch, valid_until - timedelta(days=5))
    await id_expiry.run(ctx)
    assert await notices_to(no_account.openid, settings.id_expiry_template_id) == []
    assert (await identity_of(no_account)).id_expiry_notified_for is None


async def test_the_notice_reaches_a_subscribed_holder(client, sandbox, ctx, settings, monkeypatch):
    template = settings.id_expiry_template_id
    # a holder who accepted the template (when opening)
    holder, _, _, valid_until = await holder_expiring(client, sandbox, 25)
    await sandbox.subscribe(holder.openid, template)
    moved_to(monkeypatch, valid_until - timedelta(days=5))
    await id_expiry.run(ctx)
    [notice] = await notices_to(holder.openid, template)
    if await outbox.claim(notice.id, "test", 60):
        await outbox._attempt(await OutboxMessage.get(id=notice.id), outbox_handlers(ctx),
                              max_attempts=settings.outbox_max_attempts)
    assert (await OutboxMessage.get(id=notice.id)).status == OutboxStatus.SENT
    sent = (await client.get("/sandbox/control/subscribe-messages", params={"touser": holder.openid})).json()
    assert [m["template_id"] for m in sent["messages"]] == [template]
    assert sent["messages"][0]["data"]["date2"] == {"value": valid_until.isoformat()}


# -- renewal ----------------------------------------------------------------------------------------


async def expired_holder(client, sandbox, ctx, monkeypatch, in_days: int):
    """A holder whose card ended yesterday (the clock moved), their account restricted by the job."""
    user, person, account, valid_until = await holder_expiring(client, sandbox, in_days)
    moved_to(monkeypatch, valid_until + timedelta(days=1))
    await id_expiry.run(ctx)
    assert await in_force(account["id"]) == [("ID_EXPIRED", "system")]
    await more_face_attempts()
    return user, person, account, valid_until


async def test_renewing_then_a_face_check_lifts_it_and_neither_alone_does(client, sandbox, ctx, monkeypatch):
    user, person, account, valid_until = await expired_holder(client, sandbox, ctx, monkeypatch, 8)
    # a face check while the card on file is the expired one: passed, and the restriction stays
    assert (await pass_face(client, sandbox, user)).json()["passed"] is True
    assert await in_force(account["id"]) == [("ID_EXPIRED", "system")]
    # the renewed card alone: accepted, and the restriction stays
    renewed = await verify_id_card(client, sandbox, user, replace(person, valid_until="20460101"))
    assert renewed.status_code == 200, renewed.text
    assert (await identity_of(user)).id_valid_until == date(2046, 1, 1)
    assert await in_force(account["id"]) == [("ID_EXPIRED", "system")]
    assert (await shown(client, user, account["id"]))["status"] == "restricted"
    # then a face check of that person: lifted by the holder, in the pass's transaction, audited
    passed = await pass_face(client, sandbox, user)
    assert passed.json()["passed"] is True
    assert await in_force(account["id"]) == []
    row = await AccountRestriction.get(account_id=account["id"], code="ID_EXPIRED")
    assert row.lifted_by == "holder" and "2046-01-01" in row.lift_reason and "face verification" in row.lift_reason
    assert (await shown(client, user, account["id"]))["status"] == "active"
    uid = (await User.get(openid=user.openid)).id
    events = [(e.action, e.actor) for e in
              await AuditEvent.filter(entity_type="account", entity_id=str(account["id"])).order_by("seq")]
    assert events[-2:] == [("account.restriction.lifted", f"user:{uid}"), ("account.active", f"user:{uid}")]
    # and the job, the next day, leaves it alone: the card on file is valid
    moved_to(monkeypatch, valid_until + timedelta(days=2))
    await id_expiry.run(ctx)
    assert await in_force(account["id"]) == []


async def test_a_lifted_id_expiry_leaves_a_loss_report_in_force(client, sandbox, ctx, monkeypatch):
    user, person, account, _ = await expired_holder(client, sandbox, ctx, monkeypatch, 9)
    assert (await client.post(f"/api/v1/accounts/{account['id']}/loss-report", headers=user.headers)).status_code == 201
    assert (await verify_id_card(client, sandbox, user, replace(person, valid_until="20460101"))).status_code == 200
    assert (await pass_face(client, sandbox, user)).json()["passed"] is True
    assert await in_force(account["id"]) == [("LOSS_REPORTED", "holder")]
    assert (await shown(client, user, account["id"]))["status"] == "restricted"


async def test_a_renewal_lifts_it_on_every_account_of_the_holder(client, sandbox, ctx, monkeypatch):
    user, person, first, valid_until = await holder_expiring(client, sandbox, 11)
    await more_face_attempts()
    _, _, app = await signed_application(client, sandbox, "III", user=user, person=person)
    second = (await submit(client, user, app["id"])).json()
    moved_to(monkeypatch, valid_until + timedelta(days=1))
    await id_expiry.run(ctx)
    assert await in_force(second["id"]) == [("ID_EXPIRED", "system")]
    await more_face_attempts()
    assert (await verify_id_card(client, sandbox, user, replace(person, valid_until="20460101"))).status_code == 200
    assert (await pass_face(client, sandbox, user)).json()["passed"] is True
    assert await in_force(first["id"]) == [] and await in_force(second["id"]) == []


async def test_a_renewal_must_be_the_same_name_and_number_and_valid(client, sandbox, ctx, monkeypatch):
    user, person, account, valid_until = await expired_holder(client, sandbox, ctx, monkeypatch, 7)
    before = await identity_of(user)
    attempts = await VerificationAttempt.filter(user_id=before.user_id).count()
    # another name on the same number: refused before any attempt is counted
    renamed = replace(person, name=("欧阳" if not person.name.startswith("欧阳") else "司马") + person.name[-1],
                      valid_until="20460101")
    assert_error(await verify_id_card(client, sandbox, user, renamed), 409, "IDENTITY_NAME_CHANGED", "name")
    # another number: refused as before
    assert_error(await verify_id_card(client, sandbox, user, new_person(valid_until="20460101")),
                 409, "IDENTITY_FIXED", "id_number")
    assert await VerificationAttempt.filter(user_id=before.user_id).count() == attempts
    # the same person's card, but expired (by the real clock, as the OCR's check goes): refused
    stale = replace(person, valid_until=card_date(china_day() - timedelta(days=1)))
    assert_error(await verify_id_card(client, sandbox, user, stale), 422, "ID_EXPIRED")
    after = await identity_of(user)
    assert (after.name_enc, after.id_number_index, after.id_valid_until) == (
        before.name_enc, before.id_number_index, before.id_valid_until)
    # and none of these let a face check lift the restriction
    assert (await pass_face(client, sandbox, user)).json()["passed"] is True
    assert await in_force(account["id"]) == [("ID_EXPIRED", "system")]
