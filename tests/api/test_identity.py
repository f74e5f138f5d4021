"""Identity checks: ID card OCR, face verification 2.0, same-name bank card; limits and evidence; an
account holder's or signer's identity fixed to that person."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from core.clock import china_day
from models.audit import AuditEvent
from models.identity import AttemptCounter, Identity, VerificationAttempt
from services.accounts.rules import youngest_opening_age
from tests.helpers import (
    assert_error, id_card_image, login_new_user, new_person, pass_face, register_card, upload,
    upload_id_photos, verified_user, verify_id_card,
)
from tests.identity_data import make_id_number


async def test_full_identity_journey(client, sandbox, user):
    person = new_person(name="李四光")
    # Given a verified ID card
    resp = await verify_id_card(client, sandbox, user, person)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"verified": True, "name": "李*光", "id_number": person.id_number[:4] + "*" * 10 + person.id_number[-4:],
                           "valid_until": "2040-01-01"}
    # When the face check passes
    face = await pass_face(client, sandbox, user)
    assert face.status_code == 200 and face.json()["passed"] is True and face.json()["verify_ret"] == 10000
    # and the same-name Class I card checks out
    await register_card(sandbox, person)
    card = await client.post("/api/v1/identity/bank-card", headers=user.headers,
                             json={"card_number": person.card_number, "reserved_phone": person.phone})
    assert card.status_code == 200, card.text
    assert card.json()["card_number"] == person.card_number[:6] + "*" * 9 + person.card_number[-4:]
    assert card.json()["card_class"] == "I"
    # Then /me says every check is done, masked
    me = (await client.get("/api/v1/me", headers=user.headers)).json()["identity"]
    assert me["id_card"]["done"] and me["face"]["done"] and me["bank_card"]["done"]
    assert me["name"] == "李*光" and me["face"]["valid_until"]
    uid = user.body["user"]["id"]
    actions = [e.action for e in await AuditEvent.filter(entity_type="user", entity_id=str(uid)).order_by("seq")]
    assert actions == ["identity.id_card.verified", "identity.face.passed", "identity.bank_card.verified"]
    results = [(a.kind.value, a.result) for a in await VerificationAttempt.filter(user_id=uid).order_by("id")]
    assert ("id_card", "OK") in results and ("face", "OK") in results and ("bank_card", "OK") in results


async def test_id_number_invalid(client, sandbox, user):
    person = new_person()
    front, back = await upload_id_photos(client, sandbox, user, person)
    bad_checksum = person.id_number[:17] + ("0" if person.id_number[17] != "0" else "1")
    for bad in [bad_checksum, "123", "990105194912310028", "11010519491332002X"]:
        resp = await client.post("/api/v1/identity/id-card", headers=user.headers,
                                 json={"front_upload_id": front, "back_upload_id": back, "name": person.name, "id_number": bad})
        assert_error(resp, 422, "ID_NUMBER_INVALID", "id_number")
    assert await AttemptCounter.filter(user_id=user.body["user"]["id"]).count() == 0  # refused before counting


async def test_id_mismatch(client, sandbox, user):
    person = new_person(name="张三")
    assert_error(await verify_id_card(client, sandbox, user, person, typed_name="张四"), 422, "ID_MISMATCH")
    other_id = make_id_number()
    assert_error(await verify_id_card(client, sandbox, user, person, typed_id=other_id), 422, "ID_MISMATCH")
    assert not await Identity.filter(user_id=user.body["user"]["id"]).exists()


async def test_id_expired(client, sandbox, user):
    person = new_person(valid_until="20200101")
    assert_error(await verify_id_card(client, sandbox, user, person), 422, "ID_EXPIRED")


async def test_long_term_id_is_valid(client, sandbox, user):
    person = new_person(valid_until="长期", id_number=make_id_number(date(1960, 5, 5)))
    resp = await verify_id_card(client, sandbox, user, person)
    assert resp.status_code == 200 and resp.json()["valid_until"] == "长期"


async def test_under_age(client, sandbox, user):
    today, min_age = china_day(), youngest_opening_age()
    young = make_id_number(date(today.year - min_age + 1, 1, 1))
    assert_error(await verify_id_card(client, sandbox, user, new_person(id_number=young)), 422, "UNDER_AGE")
    just_old_enough = make_id_number(date(today.year - min_age, 1, 1))
    assert (await verify_id_card(client, sandbox, user, new_person(id_number=just_old_enough))).status_code == 200


async def test_ocr_unreadable(client, sandbox, user):
    from tests.api.test_uploads import jpeg_bytes

    person = new_person()
    photo = (await upload(client, user, jpeg_bytes(), "id_front")).json()["id"]
    back = (await upload(client, user, await id_card_image(sandbox, person, "back"), "id_back")).json()["id"]
    resp = await client.post("/api/v1/identity/id-card", headers=user.headers,
                             json={"front_upload_id": photo, "back_upload_id": back, "name": person.name, "id_number": person.id_number})
    assert_error(resp, 422, "OCR_UNREADABLE", "front_upload_id")
    # the back side uploaded as the front: it reads, but as the wrong side
    back_as_front = (await upload(client, user, await id_card_image(sandbox, person, "back"), "id_front")).json()["id"]
    resp = await client.post("/api/v1/identity/id-card", headers=user.headers,
                             json={"front_upload_id": back_as_front, "back_upload_id": back, "name": person.name, "id_number": person.id_number})
    assert_error(resp, 422, "OCR_UNREADABLE", "front_upload_id")


async def test_upload_of_wrong_kind_is_refused(client, sandbox, user):
    person = new_person()
    front, back = await upload_id_photos(client, sandbox, user, person)
    resp = await client.post("/api/v1/identity/id-card", headers=user.headers,
                             json={"front_upload_id": back, "back_upload_id": front, "name": person.name, "id_number": person.id_number})
    assert_error(resp, 422, "UPLOAD_KIND_MISMATCH", "front_upload_id")


async def test_attempt_limit(client, sandbox, user, settings):
    person = new_person(name="王小明")
    for _ in range(settings.daily_attempt_limit):
        assert_error(await verify_id_card(client, sandbox, user, person, typed_name="王大明"), 422, "ID_MISMATCH")
    assert_error(await verify_id_card(client, sandbox, user, person), 429, "TOO_MANY_ATTEMPTS")
    attempts = await VerificationAttempt.filter(user_id=user.body["user"]["id"], kind="id_card")
    assert [a.result for a in attempts] == ["ID_MISMATCH"] * settings.daily_attempt_limit
    assert all("王*明" == a.inputs_masked["name"] for a in attempts)


# -- face ---------------------------------------------------------------------------------------


async def test_face_needs_a_verified_id_card(client, user):
    assert_error(await client.post("/api/v1/identity/face", headers=user.headers), 409, "ID_CARD_REQUIRED")


async def test_face_fail_pending_and_fixed_result(client, sandbox, user):
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    started = (await client.post("/api/v1/identity/face", headers=user.headers)).json()
    url = f"/api/v1/identity/face/{started['verify_id']}/result"
    pending = (await client.post(url, headers=user.headers)).json()
    assert pending["passed"] is False and pending["status"] == "pending"
    await sandbox._post(f"face/{started['verify_id']}", {"result": "fail"})
    failed = (await client.post(url, headers=user.headers)).json()
    assert failed["passed"] is False and failed["status"] == "failed"
    # a later "pass" at WeChat cannot turn a final failure into a pass
    await sandbox._post(f"face/{started['verify_id']}", {"result": "pass"})
    again = (await client.post(url, headers=user.headers)).json()
    assert again["passed"] is False and again["status"] == "failed"
    me = (await client.get("/api/v1/me", headers=user.headers)).json()["identity"]
    assert me["face"]["done"] is False


async def test_face_result_of_another_user_is_404(client, sandbox, user):
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    started = (await client.post("/api/v1/identity/face", headers=user.headers)).json()
    other = await login_new_user(client, sandbox)
    resp = await client.post(f"/api/v1/identity/face/{started['verify_id']}/result", headers=other.headers)
    assert_error(resp, 404, "FACE_VERIFICATION_NOT_FOUND")
    assert_error(await client.post("/api/v1/identity/face/nope/result", headers=user.headers), 404, "FACE_VERIFICATION_NOT_FOUND")


# -- bank card ----------------------------------------------------------------------------------


async def _card(client, user, person, **over):
    body = {"card_number": person.card_number, "reserved_phone": person.phone, **over}
    return await client.post("/api/v1/identity/bank-card", headers=user.headers, json=body)


async def test_bank_card_failures(client, sandbox, user):
    person = new_person()
    assert_error(await _card(client, user, person), 409, "ID_CARD_REQUIRED")
    assert (await verify_id_card(client, sandbox, user, person)).status_code == 200
    bad_luhn = person.card_number[:-1] + str((int(person.card_number[-1]) + 1) % 10)
    assert_error(await _card(client, user, person, card_number=bad_luhn), 422, "CARD_NUMBER_INVALID", "card_number")
    assert_error(await _card(client, user, person, reserved_phone="12345"), 422, "PHONE_INVALID", "reserved_phone")
    assert_error(await _card(client, user, person), 422, "CARD_NOT_FOUND", "card_number")
    await register_card(sandbox, person, phone="13900000000")
    assert_error(await _card(client, user, person), 422, "CARD_MISMATCH")
    await register_card(sandbox, person, card_class="II")
    assert_error(await _card(client, user, person), 422, "CARD_CLASS_NOT_ALLOWED", "card_number")
    await register_card(sandbox, person, card_class="credit")
    ok = await _card(client, user, person)
    assert ok.status_code == 200 and ok.json()["card_class"] == "credit"


async def test_someone_elses_card_is_a_mismatch(client, sandbox, user):
    me, other = new_person(), new_person()
    assert (await verify_id_card(client, sandbox, user, me)).status_code == 200
    await register_card(sandbox, other)
    assert_error(await _card(client, user, me, card_number=other.card_number, reserved_phone=other.phone), 422, "CARD_MISMATCH")


async def test_card_network_outage_is_503(client, sandbox, user):
    person = new_person()
    assert (await verify_id_card(client, sandbox, user, person)).status_code == 200
    await register_card(sandbox, person)
    await sandbox.fault("cardnet/v1/verify-elements", http_status=500, count=3)
    assert_error(await _card(client, user, person), 503, "UPSTREAM_UNAVAILABLE")


async def test_new_id_card_resets_other_checks(client, sandbox):
    user, person = await verified_user(client, sandbox)
    resp = await verify_id_card(client, sandbox, user, new_person())
    assert resp.status_code == 200
    me = (await client.get("/api/v1/me", headers=user.headers)).json()["identity"]
    assert me["id_card"]["done"] and not me["face"]["done"] and not me["bank_card"]["done"]


async def _identity_row(user):
    from models.users import User

    return await Identity.get(user_id=(await User.get(openid=user.openid)).id)


async def test_an_account_holder_cannot_become_someone_else(client, sandbox):
    from tests.account_helpers import open_account

    user, person, account = await open_account(client, sandbox)
    before = await _identity_row(user)
    attempts = await VerificationAttempt.filter(user_id=before.user_id).count()
    other = new_person()
    resp = await verify_id_card(client, sandbox, user, other)
    assert_error(resp, 409, "IDENTITY_FIXED", "id_number")
    after = await _identity_row(user)
    assert (after.id_number_index, after.name_enc, after.face_passed_at, after.card_number_index) == (
        before.id_number_index, before.name_enc, before.face_passed_at, before.card_number_index)
    assert await VerificationAttempt.filter(user_id=before.user_id).count() == attempts  # refused before the OCR
    me = (await client.get("/api/v1/me", headers=user.headers)).json()["identity"]
    assert me["id_card"]["done"] and me["face"]["done"] and me["bank_card"]["done"]
    got = (await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
    assert got["status"] == "active"
    # the same person's card again (a renewal, a later validity date) is still accepted
    renewed = await verify_id_card(client, sandbox, user, replace(person, valid_until="20460101"))
    assert renewed.status_code == 200, renewed.text
    assert (await _identity_row(user)).id_valid_until.year == 2046


async def test_a_signer_cannot_become_someone_else(client, sandbox):
    from tests.account_helpers import ready_applicant, sign_agreement, start_application

    user, person = await ready_applicant(client, sandbox)
    app = await start_application(client, user)
    await sign_agreement(client, sandbox, user, app["id"])  # signed, not yet opened
    assert_error(await verify_id_card(client, sandbox, user, new_person()), 409, "IDENTITY_FIXED", "id_number")

