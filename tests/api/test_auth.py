"""Login, tokens, refresh rotation, logout: the auth contract of /api/v1."""

from __future__ import annotations

import base64
import json
import time

import jwt as pyjwt

from core.tokens import JWTCodec
from models.users import RefreshToken, User
from tests.helpers import assert_error, login_new_user, new_openid


async def test_login_creates_user_and_returns_tokens(client, sandbox, settings):
    # Given a code minted for a new WeChat user with a unionid
    openid = new_openid()
    minted = await sandbox.login_code(openid, unionid="u_" + openid[1:12])
    # When the mini-program logs in with it
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    # Then it gets a token pair and a masked profile, and the user row keeps openid and unionid
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 900
    assert body["refresh_token"].startswith("rt_")
    assert body["user"]["phone"] is None
    assert "session_key" not in resp.text and openid not in resp.text
    row = await User.get(openid=openid)
    assert row.id == body["user"]["id"]
    assert row.unionid == "u_" + openid[1:12]
    assert row.session_key_enc.startswith("v1.")
    claims = pyjwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == str(row.id)
    assert claims["iss"] == settings.jwt_issuer and claims["aud"] == settings.jwt_audience
    assert claims["exp"] - claims["iat"] <= 900


async def test_second_login_is_the_same_user(client, sandbox):
    first = await login_new_user(client, sandbox)
    second = await login_new_user(client, sandbox, openid=first.openid)
    assert second.body["user"]["id"] == first.body["user"]["id"]
    assert await User.filter(openid=first.openid).count() == 1


async def test_used_code_is_refused(client, sandbox):
    minted = await sandbox.login_code()
    ok = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert ok.status_code == 200
    again = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert_error(again, 400, "WECHAT_CODE_INVALID", field="code")


async def test_expired_code_is_refused(client, sandbox):
    minted = await sandbox.login_code(expires_in=0)
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert_error(resp, 400, "WECHAT_CODE_INVALID", field="code")
    assert not await User.filter(openid=minted["openid"]).exists()


async def test_unknown_code_is_refused(client):
    resp = await client.post("/api/v1/auth/login", json={"code": "not-a-code"})
    assert_error(resp, 400, "WECHAT_CODE_INVALID", field="code")


async def test_login_body_is_validated(client):
    assert_error(await client.post("/api/v1/auth/login", json={}), 422, "VALIDATION_ERROR", field="code")
    assert_error(await client.post("/api/v1/auth/login", json={"code": ""}), 422, "VALIDATION_ERROR", field="code")
    assert_error(await client.post("/api/v1/auth/login", json={"code": 5}), 422, "VALIDATION_ERROR", field="code")
    assert_error(
        await client.post("/api/v1/auth/login", content=b"{nope", headers={"content-type": "application/json"}),
        400,
        "INVALID_JSON",
    )
    assert_error(
        await client.post("/api/v1/auth/login", content=b"code=1", headers={"content-type": "text/plain"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )


# -- access tokens ------------------------------------------------------------------------------


async def test_me_with_valid_token(client, user):
    resp = await client.get("/api/v1/me", headers=user.headers)
    assert resp.status_code == 200
    assert resp.json()["id"] == user.body["user"]["id"]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_bad_access_tokens_are_401(client, user, settings):
    good = user.access_token
    header_b64, payload_b64, sig = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=="))
    kid = settings.jwt_active_kid
    key = settings.jwt_keys[kid]

    tampered_payload = {**payload, "sub": str(int(payload["sub"]) + 1)}
    tampered = f"{header_b64}.{_b64(tampered_payload)}.{sig}"
    flipped_sig = f"{header_b64}.{payload_b64}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}"
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{payload_b64}."
    expired = JWTCodec({kid: key}, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=60).issue(
        payload["sub"], family="f", now=time.time() - 3600
    )
    wrong_aud = JWTCodec({kid: key}, issuer=settings.jwt_issuer, audience="someone-else", ttl_s=60).issue(
        payload["sub"], family="f"
    )
    wrong_iss = JWTCodec({kid: key}, issuer="evil", audience=settings.jwt_audience, ttl_s=60).issue(
        payload["sub"], family="f"
    )
    wrong_key = JWTCodec({kid: b"x" * 40}, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=60).issue(
        payload["sub"], family="f"
    )
    unknown_kid = JWTCodec({"nope": key}, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=60).issue(
        payload["sub"], family="f"
    )
    hs512 = pyjwt.encode({**payload}, key, algorithm="HS512", headers={"kid": kid})

    for token in [tampered, flipped_sig, alg_none, expired, wrong_aud, wrong_iss, wrong_key, unknown_kid, hs512, "x.y.z", "Bearer"]:
        resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, (token, resp.text)
        assert resp.json()["error"]["code"] in {"TOKEN_INVALID", "UNAUTHORIZED"}
    assert_error(await client.get("/api/v1/me"), 401, "UNAUTHORIZED")
    assert_error(await client.get("/api/v1/me", headers={"Authorization": f"Basic {good}"}), 401, "UNAUTHORIZED")


# -- refresh tokens -----------------------------------------------------------------------------


async def test_refresh_rotates_and_reuse_revokes_the_family(client, user):
    # When the client refreshes
    r1 = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert r1.status_code == 200, r1.text
    pair1 = r1.json()
    assert pair1["refresh_token"] != user.refresh_token
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {pair1['access_token']}"})).status_code == 200
    # and the new refresh token rotates again
    r2 = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair1["refresh_token"]})
    assert r2.status_code == 200
    pair2 = r2.json()
    # Then presenting the first, already-rotated token is reuse: refused and the family revoked
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_error(reuse, 401, "REFRESH_TOKEN_REUSED")
    newest = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair2["refresh_token"]})
    assert_error(newest, 401, "REFRESH_TOKEN_INVALID")
    rows = await RefreshToken.filter(user_id=user.body["user"]["id"])
    assert len(rows) == 3 and all(r.revoked_at is not None for r in rows)
    # The raw tokens are not stored, only their hashes
    assert all(r.token_hash not in (user.refresh_token, pair1["refresh_token"]) for r in rows)


async def test_reuse_does_not_touch_other_logins(client, sandbox, user):
    other = await login_new_user(client, sandbox, openid=user.openid)  # a second device
    r1 = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert r1.status_code == 200
    await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})  # reuse
    still = await client.post("/api/v1/auth/refresh", json={"refresh_token": other.refresh_token})
    assert still.status_code == 200


async def test_unknown_and_expired_refresh_tokens(client, user):
    assert_error(
        await client.post("/api/v1/auth/refresh", json={"refresh_token": "rt_nope"}), 401, "REFRESH_TOKEN_INVALID"
    )
    from core.clock import utcnow
    from core.tokens import hash_refresh_token

    await RefreshToken.filter(token_hash=hash_refresh_token(user.refresh_token)).update(expires_at=utcnow())
    assert_error(
        await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}),
        401,
        "REFRESH_TOKEN_INVALID",
    )


async def test_logout_revokes_the_refresh_family(client, user):
    resp = await client.post("/api/v1/auth/logout", headers=user.headers)
    assert resp.status_code == 204
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_error(after, 401, "REFRESH_TOKEN_INVALID")
    assert_error(await client.post("/api/v1/auth/logout"), 401, "UNAUTHORIZED")


async def test_many_first_logins_at_once_all_succeed(client, sandbox):
    """Concurrent first logins of different users once deadlocked on MySQL (gap locks taken by a locking
    read of a missing row, then two INSERTs); a conflict the database does report is run again."""
    import asyncio

    codes = [(await sandbox.login_code())["code"] for _ in range(120)]
    responses = await asyncio.gather(*[client.post("/api/v1/auth/login", json={"code": c}) for c in codes])
    assert [r.status_code for r in responses] == [200] * 120, [r.text for r in responses if r.status_code != 200][:2]
    assert len({r.json()["user"]["id"] for r in responses}) == 120


async def test_a_conflict_aborted_transaction_is_run_again(ctx):
    from tortoise.exceptions import OperationalError

    from services.db import atomic

    calls = []

    async def work(conn):
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError(Exception(1213, "Deadlock found when trying to get lock"))
        return "done"

    assert await atomic(work) == "done" and len(calls) == 3

    async def other(conn):
        calls.append(1)
        raise OperationalError(Exception(1062, "Duplicate entry"))  # not a conflict: not retried

    calls.clear()
    import pytest

    with pytest.raises(OperationalError):
        await atomic(other)
    assert len(calls) == 1


async def test_a_conflict_reported_at_commit_is_run_again(ctx):
    """On Galera the certification failure comes at COMMIT, as the driver's own error (Tortoise does not
    translate it there): the unit of work still runs again."""
    import pymysql

    from services.db import atomic

    calls = []

    async def work(conn):
        calls.append(1)
        if len(calls) < 2:
            raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return "done"

    assert await atomic(work) == "done" and len(calls) == 2
