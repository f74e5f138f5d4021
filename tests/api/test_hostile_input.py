"""Hostile input gets a 4xx in the error shape, never a 500, and writes nothing.

Each case here was a 500 (or a wrong answer) found by fuzzing: ids beyond what a BIGINT holds, an id
longer than its column, JSON nested a thousand deep, a correctly signed token whose ``sub`` is not a
user id, loose types where the law needs an explicit ``true``, a 405 without ``Allow``, an oversized
request head answered 413 instead of 431.
"""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from models.contracts import Contract
from tests.contract_helpers import prepared_contract, signature_upload
from tests.helpers import assert_error, pass_face

HUGE_IDS = ["9223372036854775808", "-283787848198728955674959821546717184", "0", "-1", "99999999999999999999999"]


@pytest.mark.parametrize("raw_id", HUGE_IDS)
@pytest.mark.parametrize("suffix", ["", "/pdf", "/signed.pdf", "/evidence"])
async def test_contract_ids_out_of_range_are_not_found(client, user, raw_id, suffix):
    resp = await client.get(f"/api/v1/contracts/{raw_id}{suffix}", headers=user.headers)
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] in ("CONTRACT_NOT_FOUND", "NOT_FOUND")


async def test_sign_with_an_id_out_of_range_is_not_found(client, user):
    body = {"signature_upload_id": 1, "consent": True, "verify_id": "x"}
    assert_error(await client.post("/api/v1/contracts/9223372036854775808/sign", headers=user.headers, json=body),
                 404, "CONTRACT_NOT_FOUND")


@pytest.mark.parametrize("value", [9223372036854775808, -1, 0, 10**40])
async def test_body_ids_out_of_range_are_422(client, user, value):
    body = {"front_upload_id": value, "back_upload_id": 1, "name": "张三", "id_number": "11010519491231002X"}
    assert_error(await client.post("/api/v1/identity/id-card", headers=user.headers, json=body),
                 422, "VALIDATION_ERROR", "front_upload_id")
    sign = {"signature_upload_id": value, "consent": True, "verify_id": "x"}
    assert_error(await client.post("/api/v1/contracts/1/sign", headers=user.headers, json=sign),
                 422, "VALIDATION_ERROR", "signature_upload_id")


@pytest.mark.parametrize("value", ["5", 5.5, True, None, [5], {"id": 5}])
async def test_body_ids_must_be_json_integers(client, user, value):
    body = {"front_upload_id": value, "back_upload_id": 1, "name": "张三", "id_number": "11010519491231002X"}
    assert_error(await client.post("/api/v1/identity/id-card", headers=user.headers, json=body),
                 422, "VALIDATION_ERROR", "front_upload_id")


async def test_verify_id_longer_than_its_column_is_not_found(client, user):
    for n in (257, 1000):
        resp = await client.post(f"/api/v1/identity/face/{'a' * n}/result", headers=user.headers)
        assert_error(resp, 404, "FACE_VERIFICATION_NOT_FOUND")
    # the longest a WeChat verify_id can be still reaches the lookup (and is simply unknown)
    assert_error(await client.post(f"/api/v1/identity/face/{'a' * 256}/result", headers=user.headers),
                 404, "FACE_VERIFICATION_NOT_FOUND")


@pytest.mark.parametrize("depth", [100, 1_000, 100_000])
async def test_deeply_nested_json_is_400(client, user, depth):
    nested = "[" * depth + "]" * depth
    for path in ("/api/v1/auth/login", "/api/v1/contracts", "/api/v1/identity/bank-card"):
        resp = await client.post(path, headers={**user.headers, "content-type": "application/json"},
                                 content='{"code": ' + nested + "}")
        assert resp.status_code in (400, 422), resp.text
        assert resp.json()["error"]["code"] in ("INVALID_JSON", "VALIDATION_ERROR")


async def test_duplicate_keys_are_refused(client, user):
    raw = '{"signature_upload_id": 1, "consent": false, "consent": true, "verify_id": "x"}'
    resp = await client.post("/api/v1/contracts/1/sign", headers={**user.headers, "content-type": "application/json"},
                             content=raw)
    assert_error(resp, 400, "INVALID_JSON")


@pytest.mark.parametrize("body", ["[]", '"x"', "1", "null", "{", '{"code": NaN}'])
async def test_bodies_that_are_not_objects_are_400(client, body):
    resp = await client.post("/api/v1/auth/login", headers={"content-type": "application/json"}, content=body)
    assert resp.status_code in (400, 422), resp.text


async def test_unknown_fields_are_refused(client, sandbox):
    minted = await sandbox.login_code()
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"], "admin": True})
    assert_error(resp, 422, "VALIDATION_ERROR", "admin")


def _forge(settings, **claims) -> str:
    kid, key = next(iter(settings.jwt_keys.items()))
    now = int(time.time())
    base = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "iat": now, "exp": now + 300,
            "jti": "a" * 32, "sid": "b" * 32, "sub": "1"}
    return jwt.encode({**base, **claims}, key, algorithm="HS256", headers={"kid": kid})


@pytest.mark.parametrize("claims", [
    {"sub": "abc"}, {"sub": "0"}, {"sub": "-5"}, {"sub": "9223372036854775808"}, {"sub": "1e3"}, {"sub": " 1"},
    {"sub": 12}, {"jti": "x" * 500}, {"sid": "../../etc"}, {"sid": 7}, {"iat": "now"},
])
async def test_signed_tokens_with_malformed_claims_are_401(client, settings, claims):
    token = _forge(settings, **claims)
    assert_error(await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}), 401, "TOKEN_INVALID")


async def test_a_well_formed_token_for_no_such_user_is_404(client, settings):
    token = _forge(settings, sub="9223372036854775807")
    assert_error(await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}), 404, "NOT_FOUND")


@pytest.mark.parametrize("consent", ["yes", 1, "on", "1", 1.0, "true", [True], {"v": True}])
async def test_consent_must_be_the_boolean_true(client, sandbox, consent):
    signer, contract = await prepared_contract(client, sandbox)
    upload_id = await signature_upload(client, signer)
    verify_id = (await pass_face(client, sandbox, signer)).json()["verify_id"]
    resp = await client.post(f"/api/v1/contracts/{contract['id']}/sign", headers=signer.headers,
                             json={"signature_upload_id": upload_id, "consent": consent, "verify_id": verify_id})
    assert_error(resp, 422, "VALIDATION_ERROR", "consent")
    row = await Contract.get(id=contract["id"])
    assert row.status == "draft" and row.evidence is None
    # false is a boolean, so it reaches the rule that names what is missing
    resp = await client.post(f"/api/v1/contracts/{contract['id']}/sign", headers=signer.headers,
                             json={"signature_upload_id": upload_id, "consent": False, "verify_id": verify_id})
    assert_error(resp, 422, "CONSENT_REQUIRED", "consent")
    assert (await Contract.get(id=contract["id"])).status == "draft"


@pytest.mark.parametrize("method,path", [
    ("TRACE", "/api/v1/me"), ("TRACE", "/api/v1/contracts/1"), ("PUT", "/api/v1/contracts/1/pdf"),
    ("DELETE", "/api/v1/identity/face/abc/result"), ("PATCH", "/health/live"), ("DELETE", "/api/v1/auth/login"),
])
async def test_405_names_the_allowed_methods(client, method, path):
    resp = await client.request(method, path)
    assert_error(resp, 405, "METHOD_NOT_ALLOWED")
    allowed = {m.strip() for m in resp.headers["allow"].split(",")}
    assert allowed and method not in allowed
    expected = "POST" if path.endswith(("/result", "/login")) else "GET"
    assert expected in allowed


async def test_oversized_request_head_is_431(client):
    port = int(str(client.base_url).rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 431"), raw[:200]
    assert b"REQUEST_HEADER_FIELDS_TOO_LARGE" in raw


@pytest.mark.parametrize("literal", ["1.0", "1e0", "10E-1"])
async def test_integral_json_numbers_are_the_integers_json_says_they_are(client, user, literal):
    # JSON has one number type and JSON Schema's "integer" accepts 1.0: the upload id 1 (not found),
    # not a type error
    raw = '{"front_upload_id": %s, "back_upload_id": 1, "name": "张三", "id_number": "11010519491231002X"}' % literal
    resp = await client.post("/api/v1/identity/id-card", headers={**user.headers, "content-type": "application/json"},
                             content=raw)
    assert_error(resp, 404, "UPLOAD_NOT_FOUND", "front_upload_id")


@pytest.mark.parametrize("literal", ["1.5", "1e400", "1e25", "-0.5"])
async def test_fractional_or_huge_numbers_are_not_ids(client, user, literal):
    raw = '{"front_upload_id": %s, "back_upload_id": 1, "name": "张三", "id_number": "11010519491231002X"}' % literal
    resp = await client.post("/api/v1/identity/id-card", headers={**user.headers, "content-type": "application/json"},
                             content=raw)
    assert_error(resp, 422, "VALIDATION_ERROR", "front_upload_id")


async def test_a_blank_query_value_is_not_an_absent_one(client, user):
    assert_error(await client.get("/api/v1/contracts?status=", headers=user.headers), 422, "VALIDATION_ERROR", "status")
    assert_error(await client.get("/api/v1/contracts?template=x", headers=user.headers), 422, "VALIDATION_ERROR", "template")
    assert_error(await client.get("/api/v1/contracts?status=draft&status=signed", headers=user.headers),
                 422, "VALIDATION_ERROR", "status")
    assert (await client.get("/api/v1/contracts?status=draft&_=123", headers=user.headers)).status_code == 200


# -- issue 19 section 5: what a request says once, and in UTF-8 ------------------------------------------

NOT_UTF8_JSON = {
    "utf-16": '{"code": "abc"}'.encode("utf-16"),
    "utf-16-le": '{"code": "abc"}'.encode("utf-16-le"),
    "utf-32": '{"code": "abc"}'.encode("utf-32"),
    "lone surrogate": b'{"code": "\xed\xa0\x80"}',
    "latin-1": '{"code": "caf\u00e9"}'.encode("latin-1"),
}


@pytest.mark.parametrize("raw", NOT_UTF8_JSON.values(), ids=NOT_UTF8_JSON)
async def test_a_body_that_is_not_utf8_json_is_400(client, raw):
    # Python's json.loads reads UTF-16 and UTF-32 bytes, and lone surrogates, if let: the contract says UTF-8
    resp = await client.post("/api/v1/auth/login", headers={"content-type": "application/json"}, content=raw)
    assert_error(resp, 400, "INVALID_JSON")


async def test_an_idempotency_key_given_twice_is_refused(client, user):
    # refused before the operation runs (taken as the first copy, this would be a 404 for someone else's account)
    headers = [*user.headers.items(), ("Idempotency-Key", "k-twice-0001"), ("Idempotency-Key", "k-twice-0001")]
    resp = await client.post("/api/v1/accounts/1/top-ups", headers=headers, json={"amount_fen": 100})
    assert_error(resp, 422, "IDEMPOTENCY_KEY_INVALID", "Idempotency-Key")
