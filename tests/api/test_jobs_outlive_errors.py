"""The background loops outlive the database going away, and a job that has not run for too long shows.

Issue 20: ``run_worker`` called ``run_due`` with no guard, so one database error in ``claim`` (a lost
connection, Galera's 1047) ended the periodic jobs for good while the server went on serving. Here the
database fails under the loops for real statements: every statement on a table fails as a lost
connection does (2013, through Tortoise's client, as the driver raises it), mid-claim, while the loop
runs; then the database is back and the loop must run the job again by itself. The same for the
revocation poller and the outbox loop, which share the mechanism (``core.loops.forever``). Then the
health signal: a job whose last success is too old is reported overdue in ``/health/ready`` (which stays
200: see ``handlers/ops.py``) and in ``/metrics``. ``tests/resilience/test_worker_db_restart.py`` kills a
real MariaDB under ``python -m app worker``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pymysql
import pytest
from tortoise import Tortoise
from tortoise.exceptions import OperationalError

from core.clock import utcnow
from models.infra import JobLease
from services import jobs, outbox, worker
from services.auth.revocation import Revocations


class DatabaseFault:
    """While ``down``, every statement of ``kind`` on ``table`` (and naming ``only``, when given) fails as a
    lost connection does."""

    def __init__(self) -> None:
        self.down = False
        self.table = "job_leases"
        self.kinds = ("UPDATE", "INSERT", "SELECT")
        self.only: str | None = None
        self.failures = 0

    def check(self, query: str, values) -> None:
        if not self.down or f"{self.table}" not in query or not query.lstrip().upper().startswith(self.kinds):
            return
        if self.only is not None and self.only not in [str(v) for v in values or ()]:
            return
        self.failures += 1
        raise OperationalError(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"))


@pytest.fixture
def db_fault(server, monkeypatch) -> DatabaseFault:
    fault = DatabaseFault()
    client = type(Tortoise.get_connection("default"))
    for name in ("execute_query", "execute_insert", "execute_query_dict"):
        original = getattr(client, name)

        async def faulty(self, query, values=None, *, _original=original):
            fault.check(query, values)
            return await _original(self, query, values)

        monkeypatch.setattr(client, name, faulty)
    return fault


async def _until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _counting_job(prefix: str) -> tuple[jobs.Job, list[int]]:
    runs: list[int] = []

    async def work() -> dict:
        runs.append(1)
        return {"n": len(runs)}

    return jobs.Job(f"{prefix}.{time.time_ns()}", every_s=0, run=work), runs


@pytest.mark.parametrize("statement", ["UPDATE", "INSERT"])
async def test_the_job_loop_outlives_the_database_lost_mid_claim(db_fault, statement):
    # Given a job loop whose database fails at the claim's UPDATE (or at the INSERT that follows it)
    job, runs = _counting_job("test.outlive")
    db_fault.kinds = (statement,)
    db_fault.down = True
    stop = asyncio.Event()
    loop = asyncio.ensure_future(jobs.run_worker([job], stop, poll_s=0.02, holder="host-a:1", lease_s=5))
    try:
        # When the claim fails again and again
        await _until(lambda: db_fault.failures >= 3)
        # Then the loop is still there, backing off, and nothing ran
        assert not loop.done() and runs == []
        # When the database is back
        db_fault.down = False
        # Then the loop runs the job again by itself, and stamps its success
        await _until(lambda: len(runs) >= 1)
        assert not loop.done()
        lease = await JobLease.get(name=job.name)
        assert lease.last_ok_at is not None and lease.last_result is not None
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=5)  # and it still ends when told to


async def test_a_job_whose_lease_row_is_out_of_reach_does_not_stop_the_others(db_fault):
    stuck, stuck_runs = _counting_job("test.stuck")
    other, other_runs = _counting_job("test.other")
    db_fault.only, db_fault.down = stuck.name, True
    stop = asyncio.Event()
    loop = asyncio.ensure_future(jobs.run_worker([stuck, other], stop, poll_s=0.02, holder="host-a:1", lease_s=5))
    try:
        await _until(lambda: len(other_runs) >= 2 and db_fault.failures >= 2)
        assert stuck_runs == [] and not loop.done()
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=5)


async def test_the_revocation_poller_outlives_the_database(db_fault):
    revocations = Revocations(window_s=900, poll_s=0.02)
    loads = 0
    real_load = revocations.load

    async def counted() -> int:
        nonlocal loads
        loads += 1
        return await real_load()

    revocations.load = counted
    db_fault.table, db_fault.down = "refresh_tokens", True
    stop = asyncio.Event()
    loop = asyncio.ensure_future(revocations.run(stop))
    try:
        await _until(lambda: db_fault.failures >= 3)
        assert not loop.done()
        db_fault.down = False
        failed = db_fault.failures
        await _until(lambda: loads > failed + 1)  # loading again, and now it works
        assert db_fault.failures == failed
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=5)


async def test_the_outbox_loop_outlives_the_database(db_fault, ctx, settings, monkeypatch):
    db_fault.table, db_fault.down = "outbox_messages", True
    stop = asyncio.Event()
    fast = settings.replace(outbox_poll_s=0.02)
    turns = 0
    real = outbox.deliver_due

    async def counted(*args, **kwargs) -> int:
        nonlocal turns
        turns += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(outbox, "deliver_due", counted)
    loop = asyncio.ensure_future(worker.deliver_outbox(ctx, fast, stop, holder="host-a:1"))
    try:
        await _until(lambda: db_fault.failures >= 3)
        assert not loop.done()
        db_fault.down = False
        failed = turns
        await _until(lambda: turns > failed + 1)
        assert not loop.done()
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=5)


def _gauge(text: str, metric: str, name: str) -> float:
    line = next(l for l in text.splitlines() if l.startswith(f'{metric}{{name="{name}"}} '))
    return float(line.rsplit(" ", 1)[1])


async def test_an_overdue_job_is_reported_by_readiness_and_metrics(client, ctx, settings):
    # Given every periodic job ran just now, but card-network reconciliation last succeeded long ago
    names = [job.name for job in worker.periodic_jobs(ctx, settings)]
    saved = {row.name: row.last_ok_at for row in await JobLease.filter(name__in=names)}
    now = utcnow()
    allowed = jobs.OVERDUE_PERIODS * settings.reconcile_every_s + settings.worker_lease_s
    stale = now - timedelta(seconds=allowed + 60)
    for name in names:
        if name not in saved:
            await JobLease.create(name=name)
        await JobLease.filter(name=name).update(last_ok_at=stale if name == "cardnet.reconcile" else now)
    try:
        # When the load balancer asks whether this server is ready
        ready = await client.get("/health/ready")
        # Then it is (an overdue job is the whole cluster's, not this server's), and it says which job is late
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ok" and body["checks"] == {"database": "up", "jobs": "overdue"}
        state = {job["name"]: job for job in body["jobs"]}
        assert set(state) == set(names)
        assert [name for name, job in state.items() if job["overdue"]] == ["cardnet.reconcile"]
        assert state["cardnet.reconcile"]["allowed_gap_s"] == allowed
        # And Prometheus sees the same, whichever server it scrapes
        text = (await client.get("/metrics")).text
        assert _gauge(text, "background_job_overdue", "cardnet.reconcile") == 1
        assert _gauge(text, "background_job_overdue", "payments.reconcile") == 0
        assert _gauge(text, "background_job_last_success_timestamp_seconds", "cardnet.reconcile") == pytest.approx(
            stale.timestamp(), abs=0.01)
        assert _gauge(text, "background_job_allowed_gap_seconds", "cardnet.reconcile") == allowed

        # When reconciliation runs again
        await JobLease.filter(name="cardnet.reconcile").update(last_ok_at=utcnow())
        # Then nothing is late any more
        ready = (await client.get("/health/ready")).json()
        assert ready["checks"]["jobs"] == "on_time" and not any(job["overdue"] for job in ready["jobs"])
        assert _gauge((await client.get("/metrics")).text, "background_job_overdue", "cardnet.reconcile") == 0
    finally:
        for name in names:
            if name in saved:
                await JobLease.filter(name=name).update(last_ok_at=saved[name])
            else:
                await JobLease.filter(name=name).delete()


async def test_a_job_that_never_ran_is_overdue_only_once_the_server_has_been_up_long_enough(ctx, settings):
    job, _ = _counting_job("test.never")
    started = utcnow()
    [fresh] = await jobs.health([job], lease_s=5, since=started)
    assert fresh.last_ok_at is None and not fresh.overdue
    [late] = await jobs.health([job], lease_s=5, since=started - timedelta(seconds=6))
    assert late.overdue
