"""Two app instances on one database share the daily attempt limit (it lives in the DB, not in memory)."""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.e2e.servers import ServerProcess, server_env
from tests.helpers import Sandbox, assert_error, login_new_user, new_person, upload_id_photos

pytestmark = pytest.mark.slow


@pytest.fixture
def two_servers(tmp_path):
    servers = []
    try:
        for name in ("a", "b"):
            s = ServerProcess(free_port(), server_env(tmp_path, DAILY_ATTEMPT_LIMIT="5"), tmp_path / f"{name}.log")
            servers.append(s)
            s.wait_ready()
        yield servers
    finally:
        for s in servers:
            s.stop()


async def test_attempt_limit_is_shared_across_instances(two_servers):
    import httpx

    a, b = two_servers
    async with httpx.AsyncClient(base_url=a.url, timeout=30, trust_env=False) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=30, trust_env=False) as cb:
        sandbox = Sandbox(ca)
        user = await login_new_user(ca, sandbox)
        person = new_person(name="张三")
        front, back = await upload_id_photos(ca, sandbox, user, person)
        body = {"front_upload_id": front, "back_upload_id": back, "name": "张四", "id_number": person.id_number}
        # The same user's token works on either instance; five mismatches alternate between them
        for i in range(5):
            c = ca if i % 2 == 0 else cb
            assert_error(await c.post("/api/v1/identity/id-card", json=body, headers=user.headers), 422, "ID_MISMATCH")
        # Then the sixth attempt is refused on both, even with the right name
        body["name"] = "张三"
        assert_error(await cb.post("/api/v1/identity/id-card", json=body, headers=user.headers), 429, "TOO_MANY_ATTEMPTS")
        assert_error(await ca.post("/api/v1/identity/id-card", json=body, headers=user.headers), 429, "TOO_MANY_ATTEMPTS")
