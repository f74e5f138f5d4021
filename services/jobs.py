"""Periodic background jobs, run by ``python -m app worker`` on any number of hosts.

Each job has a lease row (``models.infra.JobLease``), created on the job's first claim. A worker takes
it with one conditional UPDATE (``services.leases``: free, lapsed, or already its own), runs the job if
it is due, records when and what, and lets go.
While the job runs, the worker renews the lease every third of its length, so the lease can be short
(``WORKER_LEASE_S``, 30 s by default) however long the job takes. No lock is held across the work and
nothing lives in process memory, so a worker that dies mid-job (killed, its host gone) only delays the
next run until its short lease lapses.

The worker's loop outlives any error (``core.loops.forever``): a job that cannot take or let go of its
lease (the database lost mid-claim, a node out of the cluster) is logged, the other jobs still get their
turn, and the loop backs off and tries again, so the jobs resume by themselves when the database is back.
Each success is stamped on the lease row (``last_ok_at``), shared by every host, and ``health`` reports a
job as overdue when that stamp is older than ``OVERDUE_PERIODS`` periods plus the lease (``/health/ready``
and ``/metrics``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q

from core.clock import utcnow
from core.loops import forever
from models.infra import JobLease
from services.leases import Lease

log = logging.getLogger(__name__)


LEASE_S = 30.0
# A job is overdue when its last success is older than this many of its periods plus the lease: room for
# the worker's poll, a run that failed once, and a crashed holder's lease to lapse, without false alarms.
OVERDUE_PERIODS = 3
# Renewable: the holder takes its own lease again every third of its length while the job runs.
LEASE = Lease(JobLease, until="claimed_until", holder="claimed_by", renewable=True)


@dataclass(frozen=True)
class Job:
    name: str
    every_s: float  # run at most this often, across all workers
    run: Callable[[], Awaitable[dict]]


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


async def claim(name: str, holder: str, lease_s: float) -> bool:
    """Take (or renew) the lease on ``name`` for ``lease_s`` seconds, or report that another holder has it."""
    return await LEASE.take(Q(name=name), holder=holder, lease_s=lease_s, create={"name": name})


async def release(name: str, holder: str, **fields) -> None:
    await LEASE.release(Q(name=name), holder=holder, **fields)


async def _keep(name: str, holder: str, lease_s: float) -> None:
    """Renew the lease while the job runs (cancelled when it ends)."""
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            await claim(name, holder, lease_s)
        except Exception:  # noqa: BLE001 - a missed renewal only shortens the lease; the next one may work
            log.warning("job lease renewal failed", extra={"job": name}, exc_info=True)


async def run_due(job: Job, holder: str, *, lease_s: float = LEASE_S) -> dict | None:
    """Run ``job`` if it is due and this holder gets its lease; returns its result, or None."""
    if not await claim(job.name, holder, lease_s):
        return None
    lease = await JobLease.get(name=job.name)
    if lease.last_run_at is not None and (utcnow() - lease.last_run_at).total_seconds() < job.every_s:
        await release(job.name, holder)
        return None
    keeper = asyncio.ensure_future(_keep(job.name, holder, lease_s))
    try:
        result = await job.run()
    except Exception:
        log.exception("job failed", extra={"job": job.name})
        await release(job.name, holder, last_run_at=utcnow(), last_result={"error": True})
        return None
    finally:
        keeper.cancel()
    done_at = utcnow()
    await release(job.name, holder, last_run_at=done_at, last_ok_at=done_at, last_result=result)
    log.info("job done", extra={"job": job.name, "result": result})
    return result


async def run_worker(jobs: list[Job], stop: asyncio.Event, *, poll_s: float = 30, holder: str | None = None,
                     lease_s: float = LEASE_S) -> None:
    """Run each job when due until ``stop``; no error of one pass ends it (see the module doc)."""
    holder = holder or holder_id()

    async def one_pass() -> None:
        failed: Exception | None = None
        for job in jobs:
            if stop.is_set():
                break
            try:
                await run_due(job, holder, lease_s=lease_s)
            except Exception as exc:  # noqa: BLE001 - its lease row is out of reach: the next jobs still get their turn
                log.warning("job not run: its lease could not be taken or let go",
                            extra={"job": job.name, "error": type(exc).__name__})
                failed = failed or exc
        if failed is not None:
            raise failed  # the loop logs it and backs off

    await forever("jobs", one_pass, stop, idle_s=poll_s)


@dataclass(frozen=True)
class JobHealth:
    name: str
    every_s: float
    last_ok_at: datetime | None  # the last successful run, on any host
    allowed_s: float  # how long since then before the job counts as overdue
    overdue: bool


def allowed_gap_s(job: Job, lease_s: float) -> float:
    return OVERDUE_PERIODS * job.every_s + lease_s


async def health(jobs: list[Job], *, lease_s: float, since: datetime) -> list[JobHealth]:
    """Each job's last success and whether it is overdue. A job that never succeeded counts from ``since``
    (when this server started), so a fresh install is not overdue before its jobs had a chance to run."""
    stamps = dict(await JobLease.filter(name__in=[job.name for job in jobs]).values_list("name", "last_ok_at"))
    now = utcnow()
    report = []
    for job in jobs:
        last_ok_at = stamps.get(job.name)
        allowed = allowed_gap_s(job, lease_s)
        overdue = (now - (last_ok_at or since)).total_seconds() > allowed
        report.append(JobHealth(job.name, job.every_s, last_ok_at, allowed, overdue))
    return report
