"""Health and metrics for the load balancer and Prometheus."""

from __future__ import annotations

import logging
from typing import Literal

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json, raw
from tortoise import Tortoise

from handlers.spec import Out, Response, operation

bp = Blueprint("ops")
log = logging.getLogger(__name__)


class Live(Out):
    status: Literal["ok"]


class ReadyChecks(Out):
    database: Literal["up", "down"]


class Ready(Out):
    status: Literal["ok", "unavailable"]
    checks: ReadyChecks


@bp.get("/health/live")
@operation(summary="Liveness: the process answers", tag="ops", responses={200: Response(Live)})
async def live(request: Request) -> HTTPResponse:
    return json({"status": "ok"})


@bp.get("/health/ready")
@operation(
    summary="Readiness: the database answers",
    tag="ops",
    responses={200: Response(Ready), 503: Response(Ready, description="the database does not answer")},
)
async def ready(request: Request) -> HTTPResponse:
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
    except Exception as exc:  # any failure means "don't route traffic here"
        log.warning("readiness check failed", extra={"reason": type(exc).__name__})
        return json({"status": "unavailable", "checks": {"database": "down"}}, status=503)
    return json({"status": "ok", "checks": {"database": "up"}})


@bp.get("/metrics")
@operation(
    summary="Prometheus metrics, summed over every worker of this host",
    tag="ops",
    responses={200: Response(media_type="text/plain", schema={"type": "string"}, description="Prometheus text format 0.0.4")},
)
async def metrics(request: Request) -> HTTPResponse:
    request.app.ctx.drain()  # this worker's latest requests too
    return raw(request.app.ctx.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
