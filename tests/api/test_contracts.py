"""Contracts over the API: prepare, sign with consent + fresh face + handwritten signature, evidence,
verification; and every way signing must be refused."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import timedelta

import pytest

from core.clock import utcnow
from models.contracts import Contract
from models.identity import FaceVerification
from tests.contract_helpers import fresh_face, prepare_privacy_consent, sign, signature_upload
from tests.helpers import assert_error, login_new_user, new_person, upload, verified_user, verify_id_card


@pytest.fixture
async def signer(client, sandbox):
    user, person = await verified_user(client, sandbox)
    return user


async def test_templates_are_listed(client):
    body = (await client.get("/api/v1/contracts/templates")).json()
    codes = {t["code"]: t for t in body["templates"]}
    assert set(codes) == {"account_agreement", "etc_autodebit", "privacy_consent"}
    assert codes["privacy_consent"]["subject_type"] is None and codes["privacy_consent"]["version"]


async def test_prepare_needs_identity_and_a_known_template(client, sandbox, user):
    assert_error(await client.post("/api/v1/contracts", headers=user.headers, json={"template": "privacy_consent"}),
                 409, "ID_CARD_REQUIRED")
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    assert_error(await client.post("/api/v1/contracts", headers=user.headers, json={"template": "loan"}),
                 422, "CONTRACT_TEMPLATE_NOT_FOUND", "template")
    assert_error(await client.post("/api/v1/contracts", headers=user.headers, json={"template": "account_agreement"}),
                 422, "SUBJECT_ID_REQUIRED", "subject_id")
    # its subject is an account application of this user's: none with that id
    assert_error(await client.post("/api/v1/contracts", headers=user.headers,
                                   json={"template": "account_agreement", "subject_id": 1}), 404, "SUBJECT_NOT_FOUND")
    assert_error(await client.post("/api/v1/contracts", headers=user.headers,
                                   json={"template": "privacy_consent", "subject_id": 3}), 422, "SUBJECT_ID_NOT_ALLOWED", "subject_id")


async def test_prepare_returns_the_pdf_hash_and_reuses_the_draft(client, signer):
    first = await client.post("/api/v1/contracts", headers=signer.headers, json={"template": "privacy_consent"})
    assert first.status_code == 201
    c = first.json()
    assert c["status"] == "draft" and c["template"] == "privacy_consent" and len(c["sha256"]) == 64
    pdf = await client.get(f"/api/v1/contracts/{c['id']}/pdf", headers=signer.headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(pdf.content).hexdigest() == c["sha256"] == pdf.headers["x-content-sha256"]
    again = await client.post("/api/v1/contracts", headers=signer.headers, json={"template": "privacy_consent"})
    assert again.status_code == 200 and again.json()["id"] == c["id"]


async def test_sign_happy_path_evidence_and_verification(client, sandbox, signer):
    c = await prepare_privacy_consent(client, signer)
    assert_error(await client.get(f"/api/v1/contracts/{c['id']}/signed.pdf", headers=signer.headers), 409, "CONTRACT_NOT_SIGNED")
    verify_id = await fresh_face(client, sandbox, signer)
    resp = await sign(client, signer, c["id"], verify_id=verify_id, upload_id=await signature_upload(client, signer))
    assert resp.status_code == 200, resp.text
    signed = resp.json()
    assert signed["status"] == "signed" and signed["signed_at"] and signed["sha256"] == c["sha256"]

    pdf = await client.get(f"/api/v1/contracts/{c['id']}/signed.pdf", headers=signer.headers)
    assert hashlib.sha256(pdf.content).hexdigest() == signed["signed_sha256"]

    listed = (await client.get("/api/v1/contracts", headers=signer.headers,
                               params={"template": "privacy_consent", "status": "signed"})).json()["contracts"]
    assert [x["id"] for x in listed] == [c["id"]]
    assert_error(await client.get("/api/v1/contracts", headers=signer.headers, params={"status": "nope"}),
                 422, "VALIDATION_ERROR", "status")

    ev = (await client.get(f"/api/v1/contracts/{c['id']}/evidence", headers=signer.headers)).json()
    e = ev["evidence"]
    assert e["unsigned_sha256"] == c["sha256"] and e["signed_sha256"] == signed["signed_sha256"]
    assert e["ip"] == "127.0.0.1" and e["user_agent"] == "miniprogram-test/1.0"
    assert e["intent_check"]["verify_id"] == verify_id and e["consent"] is True
    assert "*" in e["signer"]["name"] and "*" in e["signer"]["id_number"]
    assert [x["action"] for x in ev["events"]] == ["contract.draft", "contract.signed"]
    assert ev["events"][1]["data"]["signed_sha256"] == signed["signed_sha256"]

    check = await client.post("/api/v1/contracts/verify", headers={**signer.headers, "content-type": "application/pdf"},
                              content=pdf.content)
    v = check.json()
    assert v["ok"] is True and v["intact"] and v["valid"] and v["trusted"] and not v["modified_after_signing"]
    assert v["contract_ref"] == c["contract_no"] and v["contract"]["matches_issued_copy"] is True
    assert v["contract"]["template"] == "privacy_consent" and v["contract"]["status"] == "signed"

    if shutil.which("pdfsig"):
        path = f"/tmp/contract-{c['id']}.pdf"
        with open(path, "wb") as fh:
            fh.write(pdf.content)
        out = subprocess.run(["pdfsig", "-nocert", path], capture_output=True, text=True).stdout
        assert "Signature Validation: Signature is Valid." in out, out

    # one byte changed inside the signed range: the API says so
    tampered = bytearray(pdf.content)
    pos = pdf.content.index(b"stream", 2000) + 20
    tampered[pos] ^= 0x01
    bad = (await client.post("/api/v1/contracts/verify", headers={**signer.headers, "content-type": "application/pdf"},
                             content=bytes(tampered))).json()
    assert bad["ok"] is False and (not bad["intact"] or not bad["valid"])


async def test_verify_garbage_and_unsigned(client, signer):
    garbage = await client.post("/api/v1/contracts/verify", headers={**signer.headers, "content-type": "application/pdf"},
                                content=b"not a pdf at all")
    assert garbage.status_code == 200 and garbage.json()["signed"] is False and garbage.json()["ok"] is False
    c = await prepare_privacy_consent(client, signer)
    pdf = (await client.get(f"/api/v1/contracts/{c['id']}/pdf", headers=signer.headers)).content
    unsigned = await client.post("/api/v1/contracts/verify", headers=signer.headers, files={"file": ("c.pdf", pdf, "application/pdf")})
    u = unsigned.json()
    assert u["signed"] is False and u["ok"] is False
    assert u["contract"]["contract_no"] == c["contract_no"] and u["contract"]["matches_issued_copy"] is False
    assert_error(await client.post("/api/v1/contracts/verify", headers=signer.headers, json={}), 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_sign_without_consent(client, sandbox, signer):
    c = await prepare_privacy_consent(client, signer)
    verify_id = await fresh_face(client, sandbox, signer)
    up = await signature_upload(client, signer)
    assert_error(await sign(client, signer, c["id"], verify_id=verify_id, upload_id=up, consent=False), 422, "CONSENT_REQUIRED", "consent")
    missing = await client.post(f"/api/v1/contracts/{c['id']}/sign", headers=signer.headers,
                                json={"signature_upload_id": up, "verify_id": verify_id})
    assert_error(missing, 422, "VALIDATION_ERROR", "consent")
    # and the face verification was not used up by the refusals
    assert (await sign(client, signer, c["id"], verify_id=verify_id, upload_id=up)).status_code == 200


async def test_sign_without_a_fresh_face_verification(client, sandbox, signer, settings):
    c = await prepare_privacy_consent(client, signer)
    verify_id = await fresh_face(client, sandbox, signer)
    await FaceVerification.filter(verify_id=verify_id).update(
        finished_at=utcnow() - timedelta(seconds=settings.face_intent_s + 60)
    )
    up = await signature_upload(client, signer)
    assert_error(await sign(client, signer, c["id"], verify_id=verify_id, upload_id=up), 422, "FACE_VERIFICATION_STALE", "verify_id")
    # a failed verification is not an intent check either
    failed = await client.post("/api/v1/identity/face", headers=signer.headers)
    fid = failed.json()["verify_id"]
    await sandbox._post(f"face/{fid}", {"result": "fail"})
    await client.post(f"/api/v1/identity/face/{fid}/result", headers=signer.headers)
    assert_error(await sign(client, signer, c["id"], verify_id=fid, upload_id=up), 422, "FACE_VERIFICATION_STALE")
    assert_error(await sign(client, signer, c["id"], verify_id="never-issued", upload_id=up), 422, "FACE_VERIFICATION_INVALID")


async def test_sign_with_someone_elses_verification(client, sandbox, signer):
    c = await prepare_privacy_consent(client, signer)
    other, _ = await verified_user(client, sandbox)
    others_face = await fresh_face(client, sandbox, other)
    up = await signature_upload(client, signer)
    assert_error(await sign(client, signer, c["id"], verify_id=others_face, upload_id=up), 422, "FACE_VERIFICATION_INVALID")


async def test_another_users_contract_is_not_found(client, sandbox, signer):
    c = await prepare_privacy_consent(client, signer)
    other, _ = await verified_user(client, sandbox)
    verify_id = await fresh_face(client, sandbox, other)
    up = await signature_upload(client, other)
    assert_error(await sign(client, other, c["id"], verify_id=verify_id, upload_id=up), 404, "CONTRACT_NOT_FOUND")
    theirs = (await client.get("/api/v1/contracts", headers=other.headers)).json()["contracts"]
    assert c["id"] not in [x["id"] for x in theirs]
    for path in ["", "/pdf", "/signed.pdf", "/evidence"]:
        assert_error(await client.get(f"/api/v1/contracts/{c['id']}{path}", headers=other.headers), 404, "CONTRACT_NOT_FOUND")


async def test_signing_twice_returns_the_first_result(client, sandbox, signer):
    c = await prepare_privacy_consent(client, signer)
    verify_id = await fresh_face(client, sandbox, signer)
    up = await signature_upload(client, signer)
    first = await sign(client, signer, c["id"], verify_id=verify_id, upload_id=up)
    second = await sign(client, signer, c["id"], verify_id=verify_id, upload_id=up)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    row = await Contract.get(id=c["id"])
    assert row.signed_sha256 == first.json()["signed_sha256"]
    # a repeat that does not consent is refused, not answered as if it had (found by the fuzzer)
    refused = await sign(client, signer, c["id"], verify_id=verify_id, upload_id=up, consent=False)
    assert_error(refused, 422, "CONSENT_REQUIRED", "consent")


async def test_a_face_verification_signs_once(client, sandbox, signer):
    c1 = await prepare_privacy_consent(client, signer)
    verify_id = await fresh_face(client, sandbox, signer)
    up = await signature_upload(client, signer)
    assert (await sign(client, signer, c1["id"], verify_id=verify_id, upload_id=up)).status_code == 200
    c2 = await prepare_privacy_consent(client, signer)
    assert c2["id"] != c1["id"]
    assert_error(await sign(client, signer, c2["id"], verify_id=verify_id, upload_id=up), 422, "FACE_VERIFICATION_USED")


async def test_sign_after_expiry(client, sandbox, signer):
    c = await prepare_privacy_consent(client, signer)
    await Contract.filter(id=c["id"]).update(expires_at=utcnow() - timedelta(seconds=1))
    verify_id = await fresh_face(client, sandbox, signer)
    up = await signature_upload(client, signer)
    assert_error(await sign(client, signer, c["id"], verify_id=verify_id, upload_id=up), 409, "CONTRACT_EXPIRED")
    assert (await client.get(f"/api/v1/contracts/{c['id']}", headers=signer.headers)).json()["status"] == "expired"
    # a new draft can be prepared and signed
    fresh = await prepare_privacy_consent(client, signer)
    assert fresh["id"] != c["id"]
    assert (await sign(client, signer, fresh["id"], verify_id=verify_id, upload_id=up)).status_code == 200


async def test_signature_must_be_a_signature_upload(client, sandbox, signer):
    from tests.helpers import id_card_image

    c = await prepare_privacy_consent(client, signer)
    verify_id = await fresh_face(client, sandbox, signer)
    photo = (await upload(client, signer, await id_card_image(sandbox, new_person(), "front"), "id_front")).json()["id"]
    assert_error(await sign(client, signer, c["id"], verify_id=verify_id, upload_id=photo), 422, "UPLOAD_KIND_MISMATCH", "signature_upload_id")
    stranger = await login_new_user(client, sandbox)
    theirs = await signature_upload(client, stranger)
    assert_error(await sign(client, signer, c["id"], verify_id=verify_id, upload_id=theirs), 404, "UPLOAD_NOT_FOUND")
