"""Periodic background jobs, run by ``python -m app worker`` on any number of hosts.

Each job has a lease row (``models.infra.JobLease``). A worker takes it with one conditional UPDATE
(free, lapsed, or already its own), runs the job if it is due, records when and what, and lets go. No
lock is held across the work and nothing lives in process memory, so a worker that dies mid-job only
delays the next run until its lease lapses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from core.clock import utcnow
from models.infra import JobLease

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_s: float  # run at most this often, across all workers
    run: Callable[[], Awaitable[dict]]
    lease_s: float = 600  # longer than one run can take


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


async def claim(name: str, holder: str, lease_s: float) -> bool:
    """Take the lease on ``name`` for ``lease_s`` seconds, or report that another holder has it."""
    now = utcnow()
    until = now + timedelta(seconds=lease_s)
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now) | Q(claimed_by=holder)
    if await JobLease.filter(Q(name=name) & free).update(claimed_by=holder, claimed_until=until):
        return True
    try:
        await JobLease.create(name=name, claimed_by=holder, claimed_until=until)
        return True
    except IntegrityError:
        return False  # it exists and someone else holds it


async def release(name: str, holder: str, **fields) -> None:
    await JobLease.filter(name=name, claimed_by=holder).update(claimed_by=None, claimed_until=None, **fields)


async def run_due(job: Job, holder: str) -> dict | None:
    """Run ``job`` if it is due and this holder gets its lease; returns its result, or None."""
    if not await claim(job.name, holder, job.lease_s):
        return None
    lease = await JobLease.get(name=job.name)
    if lease.last_run_at is not None and (utcnow() - lease.last_run_at).total_seconds() < job.every_s:
        await release(job.name, holder)
        return None
    try:
        result = await job.run()
    except Exception:
        log.exception("job failed", extra={"job": job.name})
        await release(job.name, holder, last_run_at=utcnow(), last_result={"error": True})
        return None
    await release(job.name, holder, last_run_at=utcnow(), last_result=result)
    log.info("job done", extra={"job": job.name, "result": result})
    return result


async def run_worker(jobs: list[Job], stop: asyncio.Event, *, poll_s: float = 30, holder: str | None = None) -> None:
    holder = holder or holder_id()
    while not stop.is_set():
        for job in jobs:
            if stop.is_set():
                break
            await run_due(job, holder)
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_s)
        except asyncio.TimeoutError:
            pass
