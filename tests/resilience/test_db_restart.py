"""The database crashes and comes back while a two-worker server is under load.

The server runs on a MariaDB of this test's own (``tests/resilience/mariadb.py``), so the test can kill
it: SIGKILL in the middle of top-ups (a crash, mid-transaction), three seconds down, then started again.
While it is down every request is answered quickly with 503 ``DB_UNAVAILABLE`` (never a 500, never a
hang); once it is back the server serves again by itself, with no restart. Every top-up answered 503 is
then sent again with its own ``Idempotency-Key``: each ends booked exactly once, the bound card was
pulled exactly once for each, and ``ledger check`` passes.

Runs in the MySQL pass of the suite (and wherever ``RESILIENCE_TESTS=1``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.account_helpers import card_balance, new_key, open_account, top_up
from tests.conftest import MYSQL_URL, free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env
from tests.helpers import Sandbox
from tests.resilience import mariadb

DATABASE = "openbank_fault"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MYSQL_URL or os.environ.get("RESILIENCE_TESTS")), reason="the MySQL pass runs it"),
]
SLOWEST_S = 8.0  # the longest any answer may take, the database down or not (its connect timeout is 5 s)
LEASE_S = 5


@pytest.fixture(scope="module")
def own_database(tmp_path_factory):
    if not os.path.exists(mariadb.MARIADBD):
        pytest.skip("no mariadbd")
    db = mariadb.Cluster(1, galera=False).start()
    var = tmp_path_factory.mktemp("fault-var")
    node = db.nodes[0]
    # a request cut off by the crash could not say how it ended: its key's claim lapses after 5 s here
    env = server_env(var, DATABASE_URL=node.url(DATABASE), SANDBOX_ROUTES="1", IDEMPOTENCY_LEASE_S=str(LEASE_S))
    server = None
    try:
        with node.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        migrated = subprocess.run([sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        server = ServerProcess(free_port(), env, var / "server.log", workers=2)
        server.wait_ready()
        yield db, node, server, env
    finally:
        if server is not None:
            server.stop()
        db.stop()


async def test_a_database_crash_under_load_is_503_then_recovers_with_nothing_lost(own_database):
    db, node, server, env = own_database
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        user, person, account = await open_account(http, Sandbox(http), card_balance_fen=10**9)
        card_before = await card_balance(http, person.card_number)
        answers: list[tuple[str, int, str | None, float, float]] = []  # key, status, code, started, took
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                key, started = new_key(), time.monotonic()
                try:
                    resp = await top_up(http, user, account["id"], 100, key=key)
                    code = resp.json().get("error", {}).get("code") if resp.status_code >= 400 else None
                    answers.append((key, resp.status_code, code, started, time.monotonic() - started))
                except httpx.TimeoutException:
                    answers.append((key, 0, "CLIENT_TIMEOUT", started, time.monotonic() - started))
                await asyncio.sleep(0.02)

        workers = [asyncio.create_task(load()) for _ in range(8)]
        await asyncio.sleep(2)
        await asyncio.to_thread(db.stop_node, node, kill=True)  # a crash, in the middle of top-ups
        down_at = time.monotonic()
        await asyncio.sleep(3)
        restart_at = time.monotonic()
        await asyncio.to_thread(db.start_node, node)
        up_at = time.monotonic()
        await asyncio.sleep(6)
        stop.set()
        await asyncio.gather(*workers)

        statuses = {status for _, status, _, _, _ in answers}
        assert statuses <= {201, 503}, sorted(statuses)
        assert {code for _, status, code, _, _ in answers if status == 503} == {"DB_UNAVAILABLE"}
        assert max(took for *_, took in answers) < SLOWEST_S
        while_down = [a for a in answers if down_at < a[3] and a[3] + a[4] < restart_at]
        assert while_down and all(status == 503 for _, status, *_ in while_down)
        # back by itself: what was sent in the last two seconds of the load went through
        assert all(status == 201 for _, status, _, started, _ in answers if started > up_at + 4)

        # every top-up answered 503, sent again with its key, is booked; none twice. A key whose first
        # request the crash cut off is still claimed (409 IDEMPOTENCY_KEY_IN_USE) until its lease lapses.
        async def again(key: str) -> httpx.Response:
            deadline = time.monotonic() + LEASE_S + 10
            while True:
                resp = await top_up(http, user, account["id"], 100, key=key)
                if resp.status_code != 409 or time.monotonic() > deadline:
                    return resp
                assert resp.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_USE"
                await asyncio.sleep(1)

        retried = await asyncio.gather(*(again(key) for key, status, *_ in answers if status == 503))
        assert {r.status_code for r in retried} <= {201}, [r.text for r in retried if r.status_code != 201]
        booked = len(answers)
        got = (await http.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
        assert got["balance_fen"] == booked * 100
        assert card_before - await card_balance(http, person.card_number) == booked * 100

    checked = subprocess.run([sys.executable, "-m", "app", "ledger", "check"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    print(f"top-ups: {booked} ({sum(s == 503 for _, s, *_ in answers)} answered 503 while the database was down, "
          f"then retried); slowest answer {max(t for *_, t in answers):.2f} s")
