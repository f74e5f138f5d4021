"""A worker killed (SIGKILL) in the middle of its work: another finishes it, and no lease stays stuck.

On a MariaDB of the test's own, a server runs without background work (``WORKER_IN_SERVER=0``) and a
separate ``python -m app worker`` does it, with ``WORKER_LEASE_S=3``. The worker is given 40 partner
notifications to deliver (each takes the partner 0.2 s to answer) and 12 top-ups whose card-network
answers were lost (each query takes the network 0.5 s): about eight seconds of work. It is killed once
it has delivered a few, holding the reconciliation job's lease and an outbox message's, and a new worker is started.
The new worker waits out the dead one's leases (seconds, not the minutes a lease held for a whole run
would take), then: every notification reaches the partner (a delivery the dead worker made may be
repeated: same ``event_id``, which the partner deduplicates), every top-up is booked once and the card
pulled once, ``ledger check`` passes, and nothing is left claimed by the dead worker.

Runs in the MySQL pass of the suite (and wherever ``RESILIENCE_TESTS=1``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.account_helpers import card_balance, open_account, top_up
from tests.conftest import MYSQL_URL, free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env
from tests.helpers import Sandbox
from tests.resilience import mariadb

DATABASE = "openbank_worker_kill"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MYSQL_URL or os.environ.get("RESILIENCE_TESTS")), reason="the MySQL pass runs it"),
]
NOTIFICATIONS, TOP_UPS, AMOUNT = 40, 12, 1_000


def _worker(env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app", "worker", "--poll-s", "0.2"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


async def _until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        found = await asyncio.to_thread(check)
        if found or time.monotonic() > deadline:
            assert found, f"{what}: not done in {timeout_s} s"
            return found
        await asyncio.sleep(0.5)


async def test_a_killed_workers_work_is_finished_by_the_next(tmp_path):
    db = mariadb.Cluster(1, galera=False).start()
    node = db.nodes[0]
    env = server_env(tmp_path, DATABASE_URL=node.url(DATABASE), SANDBOX_ROUTES="1", WORKER_IN_SERVER="0",
                     WORKER_LEASE_S="3", RECONCILE_EVERY_S="1", OUTBOX_POLL_S="0.2")
    server = first = second = None
    log = open(tmp_path / "workers.log", "wb")

    def sql(statement: str, *args) -> list[tuple]:
        with node.connect(DATABASE) as conn, conn.cursor() as cur:
            cur.execute(statement, args)
            return list(cur.fetchall())

    try:
        with node.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        migrated = subprocess.run([sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        server = ServerProcess(free_port(), dict(env), tmp_path / "server.log")
        await asyncio.to_thread(server.wait_ready)
        env["SELF_BASE_URL"] = server.url  # the worker reaches the emulators mounted on the server

        async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as http:
            sandbox = Sandbox(http)
            # the partner, its callback on the partner emulator (slow to answer)
            made = subprocess.run([sys.executable, "-m", "app", "partner", "create", "--name", "发卡方", "--scopes",
                                   "etc:read"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
            partner = json.loads(made.stdout)
            sql("UPDATE partners SET callback_url = %s WHERE app_id = %s",
                f"{server.url}/sandbox/partner/{partner['app_id']}/notify", partner["app_id"])
            (partner_id,), = sql("SELECT id FROM partners WHERE app_id = %s", partner["app_id"])
            assert (await http.post("/sandbox/control/partners", json={"app_id": partner["app_id"],
                                                                     "secret": partner["secret"]})).status_code == 201
            await sandbox.fault(f"partner/{partner['app_id']}/notify", delay_s=0.2, count=10**4)
            for _ in range(NOTIFICATIONS):
                event = {"event_id": "ev_" + secrets.token_hex(12), "type": "binding.active",
                         "occurred_at": "2026-11-30T08:00:00+08:00",
                         "data": {"binding_id": 1, "card_number_masked": "1101****1234", "plate_number": "京A12345",
                                  "plate_color": "blue", "status": "active"}}
                sql("INSERT INTO outbox_messages (kind, payload, status, attempts, next_attempt_at, created_at) "
                    "VALUES ('partner_notification', %s, 'pending', 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                    json.dumps({"partner_id": partner_id, "event": event}))

            # top-ups whose answers were lost: the card was pulled, nobody knows yet (202)
            user, person, account = await open_account(http, sandbox, card_balance_fen=10**8)
            card_before = await card_balance(http, person.card_number)
            await sandbox.fault("cardnet/v1/transfers", when="after", drop=True, count=TOP_UPS)
            await sandbox.fault("cardnet/v1/transfers/{request_id}", http_status=503, count=TOP_UPS * 3)
            for _ in range(TOP_UPS):
                assert (await top_up(http, user, account["id"], AMOUNT)).status_code == 202
            await http.delete("/sandbox/control/faults")
            await sandbox.fault(f"partner/{partner['app_id']}/notify", delay_s=0.2, count=10**4)
            await sandbox.fault("cardnet/v1/transfers/{request_id}", delay_s=0.5, count=10**4)
            sql("UPDATE card_transfers SET created_at = created_at - INTERVAL 5 MINUTE")  # due for reconciliation

            first = _worker(env, log)
            await _until(lambda: sql("SELECT COUNT(*) FROM outbox_messages WHERE kind = 'partner_notification' AND status = 'sent'")[0][0] >= 3,
                         30, "the first worker at work")
            delivered = sql("SELECT COUNT(*) FROM outbox_messages WHERE kind = 'partner_notification' AND status = 'sent'")[0][0]
            assert 0 < delivered < NOTIFICATIONS, f"{delivered} delivered: the kill did not land mid-work"
            held = sql("SELECT name FROM job_leases WHERE claimed_by = %s AND claimed_until > UTC_TIMESTAMP(6)",
                       f"{os.uname().nodename}:{first.pid}")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
            dead = f"{os.uname().nodename}:{first.pid}"
            second = _worker(env, log)

            try:
                await _until(lambda: sql("SELECT COUNT(*) FROM outbox_messages WHERE kind = 'partner_notification' AND status = 'sent'")[0][0]
                             == NOTIFICATIONS, 60, "every notification delivered")
            except AssertionError:
                raise AssertionError(sql("SELECT status, attempts, claimed_by, claimed_until, next_attempt_at, "
                                         "last_error, UTC_TIMESTAMP(6) FROM outbox_messages ORDER BY id")) from None
            await _until(lambda: sql("SELECT COUNT(*) FROM card_transfers WHERE account_id = %s AND status = "
                                     "'succeeded'", account["id"])[0][0] == TOP_UPS, 60, "every top-up settled")
            received = (await http.get(f"/sandbox/control/partners/{partner['app_id']}/notifications")).json()
            assert len({n["event_id"] for n in received["notifications"]}) == NOTIFICATIONS
            got = (await http.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
            assert got["balance_fen"] == TOP_UPS * AMOUNT
            assert card_before - await card_balance(http, person.card_number) == TOP_UPS * AMOUNT

        assert sql("SELECT COUNT(*) FROM job_leases WHERE claimed_by = %s", dead)[0][0] == 0
        assert sql("SELECT COUNT(*) FROM outbox_messages WHERE claimed_by = %s AND status = 'pending'", dead)[0][0] == 0
        checked = subprocess.run([sys.executable, "-m", "app", "ledger", "check"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        print(f"killed with {delivered} of {NOTIFICATIONS} notifications delivered, holding {held}")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        if server is not None:
            server.stop()
        db.stop()
