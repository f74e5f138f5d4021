"""Security rules that each had no failing test when the line enforcing it was removed.

Each test names the rule (and where it lives) it guards; ``tests/mutants.py`` removes each of those
lines in turn and checks that the test fails."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidTag
from PIL import Image

from core.clock import china_day
from models.audit import AuditEvent
from models.identity import FaceStatus, FaceVerification, Identity
from services import audit
from tests.contract_helpers import fresh_face, prepare_privacy_consent, sign, signature_upload
from tests.helpers import (
    assert_error,
    login_new_user,
    new_person,
    pass_face,
    register_card,
    upload,
    verified_user,
    verify_id_card,
)


async def test_a_face_check_of_the_previous_person_cannot_sign_for_the_next(client, sandbox):
    """services/identity/face.py check_intent: the verification must be for the person on the current ID card."""
    # Given a user who passed a face check as person A
    user = await login_new_user(client, sandbox)
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    face_of_a = await fresh_face(client, sandbox, user)
    # When the account is re-verified as person B and signs with A's face check
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    contract = await prepare_privacy_consent(client, user)
    up = await signature_upload(client, user)
    resp = await sign(client, user, contract["id"], verify_id=face_of_a, upload_id=up)
    # Then the signing is refused, and the face check is not used up
    assert_error(resp, 422, "FACE_VERIFICATION_INVALID", "verify_id")
    assert (await FaceVerification.get(verify_id=face_of_a)).consumed_at is None


async def test_an_edited_event_with_a_recomputed_hash_breaks_the_link(client, sandbox):
    """services/audit.py verify: each event's prev_hash must be the previous event's hash."""
    await verified_user(client, sandbox)
    victim = await AuditEvent.filter(action="identity.id_card.verified").order_by("-seq").first()
    assert await AuditEvent.filter(seq=victim.seq + 1).exists()  # not the newest: the head still matches
    original = {"data": dict(victim.data), "hash": victim.hash}
    forged = {**victim.data, "valid_until": "长期"}
    forged_hash = audit.event_hash(seq=victim.seq, at=victim.at, actor=victim.actor, action=victim.action,
                                   entity_type=victim.entity_type, entity_id=victim.entity_id, data=forged,
                                   prev_hash=victim.prev_hash)
    await AuditEvent.filter(id=victim.id).update(data=forged, hash=forged_hash)
    try:
        report = await audit.verify()
        assert not report.ok and "link" in report.problem and report.seq == victim.seq + 1
    finally:
        await AuditEvent.filter(id=victim.id).update(**original)
    assert (await audit.verify()).ok


async def test_face_starts_are_limited_per_day(client, sandbox, settings):
    """services/identity/face.py start: each start is a paid WeChat call, limited per user and day."""
    user = await login_new_user(client, sandbox)
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    for _ in range(settings.daily_attempt_limit):
        assert (await client.post("/api/v1/identity/face", headers=user.headers)).status_code == 201
    assert_error(await client.post("/api/v1/identity/face", headers=user.headers), 429, "TOO_MANY_ATTEMPTS")
    user_id = user.body["user"]["id"]
    assert await FaceVerification.filter(user_id=user_id).count() == settings.daily_attempt_limit


async def test_bank_card_checks_are_limited_per_day(client, sandbox, settings):
    """services/identity/bank_card.py: without a limit the card check is an oracle for card testing."""
    user = await login_new_user(client, sandbox)
    person = new_person()
    assert (await verify_id_card(client, sandbox, user, person)).status_code == 200
    await register_card(sandbox, person)
    for _ in range(settings.daily_attempt_limit):
        resp = await client.post("/api/v1/identity/bank-card", headers=user.headers,
                                 json={"card_number": person.card_number, "reserved_phone": "13900000000"})
        assert_error(resp, 422, "CARD_MISMATCH")
    # even the right phone is refused today
    resp = await client.post("/api/v1/identity/bank-card", headers=user.headers,
                             json={"card_number": person.card_number, "reserved_phone": person.phone})
    assert_error(resp, 429, "TOO_MANY_ATTEMPTS")


async def test_an_expired_id_card_is_not_shown_as_done(client, sandbox):
    """services/identity/status.py: the ID check is done only while the card is valid."""
    user = await login_new_user(client, sandbox)
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    me = (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["identity"]["id_card"]["done"] is True
    await Identity.filter(user_id=user.body["user"]["id"]).update(id_valid_until=china_day() - timedelta(days=1))
    me = (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["identity"]["id_card"]["done"] is False
    assert me["identity"]["id_card"]["valid_until"] == (china_day() - timedelta(days=1)).isoformat()


def _huge_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


async def test_an_image_of_too_many_pixels_is_refused_however_small_the_file(client, user):
    """services/identity/uploads.py: a small file can declare a canvas that takes gigabytes to decode."""
    data = _huge_png(7000, 7000)  # 49 megapixels in a few kilobytes
    assert len(data) < 200_000
    assert_error(await upload(client, user, data, "signature"), 422, "IMAGE_TOO_LARGE", "file")
    ok = await upload(client, user, _huge_png(2000, 1000), "signature")
    assert ok.status_code == 201, ok.text


def test_a_sealed_file_opens_only_for_its_purpose(ctx):
    """core/pii.py seal/open: the purpose is bound as associated data, so a sealed upload cannot be
    swapped in for a sealed contract PDF (or any other purpose)."""
    blob = ctx.pii.seal(b"%PDF-1.7 an ID photo pretending", purpose="upload")
    assert ctx.pii.open(blob, purpose="upload").startswith(b"%PDF")
    with pytest.raises(InvalidTag):
        ctx.pii.open(blob, purpose="contract.pdf")
    stored = ctx.pii.encrypt("13812345678", purpose="user.phone")
    with pytest.raises(InvalidTag):
        ctx.pii.decrypt(stored, purpose="identity.bank_card_phone")


async def test_stored_upload_cannot_be_read_as_a_contract_pdf(ctx):
    key = await ctx.storage.put(b"\x89PNG fake", purpose="upload")
    with pytest.raises(InvalidTag):
        await ctx.storage.get(key, purpose="contract.pdf")


async def test_a_face_result_without_verify_ret_is_not_a_pass(client, sandbox):
    """services/identity/face.py fetch_result: fail closed when WeChat's answer has no verify_ret."""
    user = await login_new_user(client, sandbox)
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    verify_id = (await client.post("/api/v1/identity/face", headers=user.headers)).json()["verify_id"]
    await sandbox._post(f"face/{verify_id}", {"result": "pass"})
    await sandbox.fault("cityservice/face/identify/queryverifyinfo", body={"errcode": 0, "errmsg": "ok"})
    url = f"/api/v1/identity/face/{verify_id}/result"
    assert_error(await client.post(url, headers=user.headers), 503, "UPSTREAM_UNAVAILABLE")
    row = await FaceVerification.get(verify_id=verify_id)
    assert row.status == FaceStatus.PENDING and row.verify_ret is None
    me = (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["identity"]["face"]["done"] is False
    # once WeChat answers properly, the same verification finishes normally
    assert (await client.post(url, headers=user.headers)).json()["passed"] is True


@pytest.mark.parametrize("bad", [{"errcode": 0, "verify_ret": "10000"}, {"errcode": 0, "verify_ret": None},
                                 {"errcode": 0, "verify_ret": True}])
async def test_a_verify_ret_that_is_not_an_integer_is_not_a_pass(client, sandbox, bad):
    user = await login_new_user(client, sandbox)
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    verify_id = (await client.post("/api/v1/identity/face", headers=user.headers)).json()["verify_id"]
    await sandbox.fault("cityservice/face/identify/queryverifyinfo", body={**bad, "errmsg": "ok"})
    assert_error(await client.post(f"/api/v1/identity/face/{verify_id}/result", headers=user.headers),
                 503, "UPSTREAM_UNAVAILABLE")


async def test_signing_with_a_face_check_whose_result_was_never_fetched_says_so(client, sandbox):
    user, _ = await verified_user(client, sandbox)
    contract = await prepare_privacy_consent(client, user)
    verify_id = (await client.post("/api/v1/identity/face", headers=user.headers)).json()["verify_id"]
    await sandbox._post(f"face/{verify_id}", {"result": "pass"})  # passed at WeChat, never fetched by us
    up = await signature_upload(client, user)
    assert_error(await sign(client, user, contract["id"], verify_id=verify_id, upload_id=up),
                 422, "FACE_VERIFICATION_PENDING", "verify_id")


async def test_a_failed_face_check_cannot_sign(client, sandbox):
    user, _ = await verified_user(client, sandbox)
    contract = await prepare_privacy_consent(client, user)
    failed = await pass_face(client, sandbox, user, result="fail")
    up = await signature_upload(client, user)
    assert_error(await sign(client, user, contract["id"], verify_id=failed.json()["verify_id"], upload_id=up),
                 422, "FACE_VERIFICATION_STALE", "verify_id")
