"""The database crashes under ``python -m app worker`` and comes back: the worker lives on and runs its jobs
again by itself (issue 20: one database error used to end the periodic jobs for good, and the worker
process with them).

The worker runs on a MariaDB of this test's own (``tests/resilience/mariadb.py``), card-network
reconciliation due every second. The test waits for a run, kills the database with SIGKILL (the worker's
pooled connections die mid-claim or mid-job), keeps it down for a few seconds, starts it again, and waits
for a run that began after the restart; the worker process never exits, logs what failed, and ends
cleanly on SIGTERM.

Runs in the MySQL pass of the suite (and wherever ``RESILIENCE_TESTS=1``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from tests.conftest import MYSQL_URL
from tests.e2e.servers import ROOT, server_env
from tests.resilience import mariadb

DATABASE = "openbank_worker_fault"
JOB = "cardnet.reconcile"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MYSQL_URL or os.environ.get("RESILIENCE_TESTS")), reason="the MySQL pass runs it"),
]


def _last_ok_at(node) -> datetime | None:
    with node.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("SELECT last_ok_at FROM job_leases WHERE name = %s", (JOB,))
        row = cur.fetchone()
    return row[0].replace(tzinfo=timezone.utc) if row and row[0] else None


def _wait_for_run_after(node, after: datetime, proc: subprocess.Popen, timeout_s: float) -> datetime:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the worker exited"
        try:
            stamp = _last_ok_at(node)
        except Exception:  # noqa: BLE001 - the database may still be starting
            stamp = None
        if stamp is not None and stamp > after:
            return stamp
        time.sleep(0.2)
    raise AssertionError(f"{JOB} did not run after {after.isoformat()}")


def test_the_worker_outlives_a_database_crash_and_runs_its_jobs_again(tmp_path):
    if not os.path.exists(mariadb.MARIADBD):
        pytest.skip("no mariadbd")
    db = mariadb.Cluster(1, galera=False).start()
    node = db.nodes[0]
    env = server_env(tmp_path, DATABASE_URL=node.url(DATABASE), RECONCILE_EVERY_S="1", WORKER_LEASE_S="3")
    proc = None
    log_path = tmp_path / "worker.log"
    try:
        with node.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        migrated = subprocess.run([sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "app", "worker", "--poll-s", "0.2"], cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # Given the worker runs reconciliation
        _wait_for_run_after(node, datetime(2000, 1, 1, tzinfo=timezone.utc), proc, timeout_s=60)

        # When the database crashes and stays down for a while
        db.stop_node(node, kill=True)
        time.sleep(4)
        # Then the worker is still there
        assert proc.poll() is None, log_path.read_text()

        # When the database is back
        db.start_node(node)
        back = datetime.now(timezone.utc)
        # Then the worker runs reconciliation again by itself
        _wait_for_run_after(node, back, proc, timeout_s=60)
        # And it said what failed, and (once the pass that ran it ends) that it recovered
        deadline = time.monotonic() + 30
        while "background loop recovered" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = log_path.read_text()
        assert "background loop turn failed" in text and "background loop recovered" in text, text[-3000:]
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(timeout=30) == 0, log_path.read_text()[-3000:]
            finally:
                if proc.poll() is None:
                    proc.kill()
        db.stop()
