"""Ending a login ends its access tokens within seconds, on every worker, and signing keys rotate by ``kid``
without logging anyone out (``services.auth.revocation``, ``core.tokens``)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MYSQL_URL, free_port
from tests.e2e.servers import ServerProcess, server_env
from tests.helpers import Sandbox, assert_error, login_new_user


async def test_logging_out_ends_the_access_token_at_once(client, sandbox):
    user = await login_new_user(client, sandbox)
    other_login = await login_new_user(client, sandbox, openid=user.openid)  # the same person, another phone
    assert (await client.get("/api/v1/me", headers=user.headers)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=user.headers)).status_code == 204
    assert_error(await client.get("/api/v1/me", headers=user.headers), 401, "TOKEN_INVALID")
    assert (await client.get("/api/v1/me", headers=other_login.headers)).status_code == 200  # only that login


async def test_a_leaked_refresh_token_ends_its_logins_access_tokens(client, sandbox):
    user = await login_new_user(client, sandbox)
    rotated = (await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})).json()
    fresh = {"Authorization": "Bearer " + rotated["access_token"]}
    assert (await client.get("/api/v1/me", headers=fresh)).status_code == 200
    # the old refresh token again: someone else has it; the whole login ends, access tokens included
    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_error(reused, 401, "REFRESH_TOKEN_REUSED")
    assert_error(await client.get("/api/v1/me", headers=fresh), 401, "TOKEN_INVALID")
    assert_error(await client.get("/api/v1/me", headers=user.headers), 401, "TOKEN_INVALID")


@pytest.mark.skipif(not MYSQL_URL, reason="several workers need MySQL")
async def test_a_logout_reaches_every_worker_within_seconds(tmp_path: Path):
    """Two workers: after a logout answered by one of them, requests over new connections (so both workers
    take some) are refused by both within one poll of the revocation list (1 s here)."""
    server = ServerProcess(free_port(), server_env(tmp_path, SANDBOX_ROUTES="1", REVOCATION_POLL_S="1"),
                           tmp_path / "server.log", workers=2)
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
            user = await login_new_user(http, Sandbox(http))

        async def me() -> int:
            async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as once:
                return (await once.get("/api/v1/me", headers=user.headers)).status_code

        assert await asyncio.gather(*(me() for _ in range(20))) == [200] * 20
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as once:
            assert (await once.post("/api/v1/auth/logout", headers=user.headers)).status_code == 204
        out_at = time.monotonic()
        await asyncio.sleep(2.5)  # one poll (1 s), and the slack of a worker busy loading
        answers = await asyncio.gather(*(me() for _ in range(40)))
        assert answers == [401] * 40, answers
        assert time.monotonic() - out_at < 10
    finally:
        server.stop()


def _kid(token: str) -> str:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


async def test_signing_keys_rotate_by_kid_without_logging_anyone_out(tmp_path: Path):
    """A new key is added in front (it signs, the old one still verifies), then the old one is retired:
    its access tokens stop working, and their logins go on with their refresh tokens."""
    k1, k2 = "test-only-k1-" + secrets.token_hex(16), "test-only-k2-" + secrets.token_hex(16)

    async def serving(keys: str):
        server = ServerProcess(free_port(), server_env(tmp_path, SANDBOX_ROUTES="1", JWT_KEYS=keys),
                               tmp_path / f"server-{len(keys)}.log")
        await asyncio.to_thread(server.wait_ready)
        return server

    server = await serving(f"k1:{k1}")
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
            user = await login_new_user(http, Sandbox(http))
        assert _kid(user.access_token) == "k1"
    finally:
        server.stop()

    server = await serving(f"k2:{k2},k1:{k1}")  # k2 signs from now on; k1 still verifies
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
            assert (await http.get("/api/v1/me", headers=user.headers)).status_code == 200
            newer = await login_new_user(http, Sandbox(http))
            assert _kid(newer.access_token) == "k2"
    finally:
        server.stop()

    server = await serving(f"k2:{k2}")  # k1 retired
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
            assert_error(await http.get("/api/v1/me", headers=user.headers), 401, "TOKEN_INVALID")
            assert (await http.get("/api/v1/me", headers=newer.headers)).status_code == 200
            # not logged out: the refresh token (opaque, in the database) gets a pair signed with k2
            pair = await http.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
            assert pair.status_code == 200 and _kid(pair.json()["access_token"]) == "k2"
            again = {"Authorization": "Bearer " + pair.json()["access_token"]}
            assert (await http.get("/api/v1/me", headers=again)).status_code == 200
    finally:
        server.stop()
