"""Health and metrics for the load balancer and Prometheus."""

from __future__ import annotations

import logging

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json, text
from sanic_ext import openapi
from tortoise import Tortoise

bp = Blueprint("ops")
log = logging.getLogger(__name__)


@bp.get("/health/live")
@openapi.summary("Liveness: the process answers")
@openapi.tag("ops")
async def live(request: Request) -> HTTPResponse:
    return json({"status": "ok"})


@bp.get("/health/ready")
@openapi.summary("Readiness: the database answers")
@openapi.tag("ops")
async def ready(request: Request) -> HTTPResponse:
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
    except Exception as exc:  # any failure means "don't route traffic here"
        log.warning("readiness check failed", extra={"reason": type(exc).__name__})
        return json({"status": "unavailable", "checks": {"database": "down"}}, status=503)
    return json({"status": "ok", "checks": {"database": "up"}})


@bp.get("/metrics")
@openapi.summary("Prometheus metrics (per worker)")
@openapi.tag("ops")
async def metrics(request: Request) -> HTTPResponse:
    return text(request.app.ctx.metrics.render(), content_type="text/plain; version=0.0.4")
