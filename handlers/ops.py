"""Health and metrics for the load balancer and Prometheus.

Readiness answers one question for the load balancer: can this server serve requests (does the database
answer)? The periodic jobs' health is in its body too, but an overdue job does not make it fail: the jobs
run on whichever host holds their lease, so "reconciliation is late" is true of every server at once, and
a 503 from all of them would take the whole service out of the pool over a late background job (and
right after the database comes back, when every job is late until it has run again). Overdue jobs are
for alerting: ``checks.jobs`` and each job's ``overdue`` here, and the ``background_job_*`` gauges of
``/metrics``."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from handlers.spec import Out, Response, answer, operation
from services import db, worker

bp = Blueprint("ops")
log = logging.getLogger(__name__)


class Live(Out):
    status: Literal["ok"]


class ReadyChecks(Out):
    database: Literal["up", "down"]
    jobs: Literal["on_time", "overdue", "unknown"] | None = Field(
        None, description="`overdue` when a periodic job has not succeeded for longer than its allowed gap "
                          "(reported, not a reason to fail readiness); absent while the database is down")


class JobState(Out):
    name: str
    every_s: float = Field(description="runs at most this often, across all hosts")
    last_ok_at: datetime | None = Field(description="its last successful run, on any host; null: never")
    allowed_gap_s: float = Field(description="overdue once its last success is older than this (3 periods + the lease)")
    overdue: bool


class Ready(Out):
    status: Literal["ok", "unavailable"]
    checks: ReadyChecks
    jobs: list[JobState] = []


@bp.get("/health/live")
@operation(summary="Liveness: the process answers", tag="ops", responses={200: Response(Live)})
async def live(request: Request) -> HTTPResponse:
    return answer(Live(status="ok"))


async def _job_health(request: Request) -> list | None:
    """The periodic jobs' health, or None when it cannot be read (the database is away)."""
    try:
        return await worker.job_health(request.app.ctx.services, request.app.ctx.settings,
                                       since=request.app.ctx.started_at)
    except Exception as exc:  # noqa: BLE001 - health reporting never fails the request
        log.warning("job health not read", extra={"reason": type(exc).__name__})
        return None


@bp.get("/health/ready")
@operation(
    summary="Readiness: the database answers (and how late the periodic jobs are)",
    description="200 while the database answers. The body also lists each periodic job's last success "
                "and whether it is overdue; an overdue job is reported, not a reason to fail readiness "
                "(the jobs are shared by every server: alert on it instead).",
    tag="ops",
    responses={200: Response(Ready), 503: Response(Ready, description="the database does not answer")},
)
async def ready(request: Request) -> HTTPResponse:
    try:
        await db.ping()
    except Exception as exc:  # any failure means "don't route traffic here"
        log.warning("readiness check failed", extra={"reason": type(exc).__name__})
        return answer(Ready(status="unavailable", checks=ReadyChecks(database="down")), status=503)
    health = await _job_health(request)
    if health is None:
        return answer(Ready(status="ok", checks=ReadyChecks(database="up", jobs="unknown")))
    late = any(job.overdue for job in health)
    return answer(Ready(status="ok", checks=ReadyChecks(database="up", jobs="overdue" if late else "on_time"),
                        jobs=[JobState.of(job, allowed_gap_s=job.allowed_s) for job in health]))


@bp.get("/metrics")
@operation(
    summary="Prometheus metrics, summed over every worker of this host",
    tag="ops",
    responses={200: Response(media_type="text/plain", schema={"type": "string"}, description="Prometheus text format 0.0.4")},
)
async def metrics(request: Request) -> HTTPResponse:
    request.app.ctx.drain()  # this worker's latest requests too
    jobs = await _job_health(request) or ()  # read from the database: the same on every server
    return raw(request.app.ctx.metrics.render(jobs), content_type="text/plain; version=0.0.4; charset=utf-8")
