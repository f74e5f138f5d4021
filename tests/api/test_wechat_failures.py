"""WeChat's failures are answers, not crashes: rate limits, outages, timeouts, expired tokens."""

from __future__ import annotations

from tests.helpers import assert_error


async def test_rate_limited_by_wechat_is_429(client, sandbox):
    minted = await sandbox.login_code()
    await sandbox.fault("sns/jscode2session", errcode=45011)
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert_error(resp, 429, "RATE_LIMITED")
    assert resp.headers.get("retry-after") == "60"


async def test_timeouts_are_retried_then_503(client, sandbox, settings):
    minted = await sandbox.login_code()
    attempts = settings.upstream_retries + 1
    # One more delay than we should use: if exactly `attempts` were consumed, one is left.
    await sandbox.fault("sns/jscode2session", delay_s=settings.http_timeout_s + 0.5, count=attempts + 1)
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert_error(resp, 503, "UPSTREAM_UNAVAILABLE")
    left = (await client.get("/sandbox/control/faults")).json()["faults"]
    assert [f["remaining"] for f in left if "jscode2session" in f["path"]] == [1]  # bounded, not endless


async def test_wechat_5xx_is_retried_and_can_recover(client, sandbox):
    minted = await sandbox.login_code()
    await sandbox.fault("sns/jscode2session", http_status=502, count=1)
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert resp.status_code == 200, resp.text


async def test_wechat_busy_minus_one_exhausts_retries(client, sandbox, settings):
    minted = await sandbox.login_code()
    await sandbox.fault("sns/jscode2session", errcode=-1, count=settings.upstream_retries + 1)
    assert_error(await client.post("/api/v1/auth/login", json={"code": minted["code"]}), 503, "UPSTREAM_UNAVAILABLE")


async def test_expired_access_token_is_refreshed_once(client, sandbox, user):
    # Given WeChat has expired every access token we hold
    code = await sandbox.phone_code("13912345678")
    warm = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
    assert warm.status_code == 200
    await sandbox.expire_tokens()
    forced_before = len(await sandbox.calls("cgi-bin/stable_token"))
    # When the next call needs a token
    code = await sandbox.phone_code("13912345679")
    resp = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
    # Then the client refreshes it once and the call succeeds
    assert resp.status_code == 200, resp.text
    assert resp.json()["phone"] == "139****5679"
    assert len(await sandbox.calls("cgi-bin/stable_token")) - forced_before == 1


async def test_token_error_twice_is_not_an_endless_loop(client, sandbox, user):
    code = await sandbox.phone_code("13912345670")
    await sandbox.fault("wxa/business/getuserphonenumber", errcode=40001, count=2)
    resp = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
    assert_error(resp, 503, "UPSTREAM_UNAVAILABLE")
