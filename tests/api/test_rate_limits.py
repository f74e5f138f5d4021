"""Abuse limits (``services.ratelimit``): login by client address, phone binding, identity checks and uploads by
user, and every partner request by partner, counted in the database and answered 429 with ``Retry-After``.

The suite's server runs with the limits off (its many users share one address); each test here turns on
the one it checks, with a window length of its own, so no two tests share a counter row."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx
import pytest

from app.config import ConfigError, load_settings
from core.errors import RateLimited
from services import ratelimit
from tests.conftest import MYSQL_URL, free_port
from tests.e2e.servers import ServerProcess, server_env
from tests.helpers import assert_error, login_new_user
from tests.partner_helpers import call, new_partner


def _window() -> int:
    """A window no other test uses (so its counter rows are its own) and no test run crosses the end of."""
    return 10**6 + secrets.randbelow(10**6)


@pytest.fixture
def limits(ctx, monkeypatch):
    """Turn on some limits on the running test server for this test."""

    def turn_on(**rules: tuple[int, int]) -> None:
        monkeypatch.setattr(ctx, "settings", ctx.settings.replace(rate_limits=rules))

    return turn_on


def _retry_after(resp: httpx.Response, window: int) -> int:
    assert_error(resp, 429, "RATE_LIMITED")
    value = int(resp.headers["retry-after"])
    assert 1 <= value <= window
    return value


async def test_logins_from_one_address_are_limited(client, sandbox, limits):
    window = _window()
    limits(login=(3, window))
    for _ in range(3):
        await login_new_user(client, sandbox)
    code = (await sandbox.login_code())["code"]
    refused = await client.post("/api/v1/auth/login", json={"code": code})
    _retry_after(refused, window)
    # refused before any work: WeChat was not asked, so the code is still good once the limit allows
    limits(login=(3, _window()))
    assert (await client.post("/api/v1/auth/login", json={"code": code})).status_code == 200


async def test_junk_counts_too(client, limits):
    window = _window()
    limits(login=(2, window))
    answers = [await client.post("/api/v1/auth/login", json={"code": 7}) for _ in range(3)]
    assert [a.status_code for a in answers] == [422, 422, 429]


async def test_identity_checks_phone_and_uploads_are_limited_per_user(client, sandbox, limits):
    window = _window()
    limits(identity=(2, window), upload=(1, window), phone=(1, window))
    user, other = await login_new_user(client, sandbox), await login_new_user(client, sandbox)
    for _ in range(2):
        assert (await client.post("/api/v1/identity/face", headers=user.headers)).status_code != 429
    _retry_after(await client.post("/api/v1/identity/face", headers=user.headers), window)
    # another user's budget is their own
    assert (await client.post("/api/v1/identity/face", headers=other.headers)).status_code != 429

    def upload(who):
        return client.post("/api/v1/uploads", headers=who.headers, data={"kind": "signature"},
                           files={"file": ("s.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")})

    assert (await upload(user)).status_code != 429
    _retry_after(await upload(user), window)

    code = await sandbox.phone_code("13800138000")
    assert (await client.post("/api/v1/me/phone", headers=user.headers, json={"code": code})).status_code == 200
    _retry_after(await client.post("/api/v1/me/phone", headers=user.headers, json={"code": code}), window)


async def test_a_partners_requests_are_limited_and_the_refusal_is_signed(client, ctx, limits):
    window = _window()
    limits(partner=(2, window))
    partner, other = await new_partner(ctx), await new_partner(ctx)
    for _ in range(2):
        assert (await call(client, partner, "GET", "/open/v1/debits/NOSUCH")).status_code == 404
    refused = await call(client, partner, "GET", "/open/v1/debits/NOSUCH")
    _retry_after(refused, window)
    assert refused.headers.get("x-signature")  # past the signature check, every answer is signed
    assert (await call(client, other, "GET", "/open/v1/debits/NOSUCH")).status_code == 404


async def test_the_window_ends(ctx, limits):
    """Past the limit until the window ends, and ``Retry-After`` says when that is; a new window starts afresh."""
    window = 3600
    limits(upload=(2, window))
    subject, start = "u" + secrets.token_hex(6), 1_800_000_000 // window * window + window * secrets.randbelow(10**5)
    for _ in range(2):
        await ratelimit.hit(ctx.settings, "upload", subject, now=start + 10)
    with pytest.raises(RateLimited) as refused:
        await ratelimit.hit(ctx.settings, "upload", subject, now=start + 600.5)
    assert refused.value.headers["Retry-After"] == str(window - 600)
    await ratelimit.hit(ctx.settings, "upload", subject, now=start + window)  # the next window


@pytest.mark.skipif(not MYSQL_URL, reason="several workers need MySQL")
async def test_the_count_is_shared_by_every_worker(tmp_path: Path):
    """A server with two workers, 24 logins at once over new connections (so both workers take some): exactly
    the limit's worth get past it, whichever worker counted them."""
    window = _window()
    server = ServerProcess(free_port(), server_env(tmp_path, RATE_LIMITS=f"login=7/{window}"),
                           tmp_path / "server.log", workers=2)
    try:
        await asyncio.to_thread(server.wait_ready)

        async def one() -> int:
            async with httpx.AsyncClient(timeout=30, trust_env=False) as http:  # a connection of its own
                return (await http.post(f"{server.url}/api/v1/auth/login", json={"code": "x" * 20})).status_code

        answers = await asyncio.gather(*(one() for _ in range(24)))
    finally:
        server.stop()
    assert sorted(answers).count(429) == 24 - 7, answers


def test_the_limits_are_configured_and_production_keeps_them(tmp_path: Path):
    assert ratelimit.parse("off") == {}
    assert ratelimit.parse("login=5/10")["login"] == (5, 10)
    assert ratelimit.parse("login=5/10")["partner"] == ratelimit.DEFAULTS["partner"]
    for bad in ("login=5", "nosuch=1/1", "login=0/60", "login=-1/60", "login=1.5/60"):
        with pytest.raises(ValueError):
            ratelimit.parse(bad)
    env = {"VAR_DIR": str(tmp_path), "RATE_LIMITS": "login=5/x"}
    with pytest.raises(ConfigError):
        load_settings(env)
    from app.config import production_problems

    off = load_settings({"VAR_DIR": str(tmp_path)}).replace(rate_limits={})
    assert any("RATE_LIMITS" in p for p in production_problems(off))
    assert not any("RATE_LIMITS" in p for p in production_problems(load_settings({"VAR_DIR": str(tmp_path)})))
