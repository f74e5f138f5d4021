"""Request id, access log line and Prometheus metrics (``app.metrics``) for every request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from sanic import Request, Sanic

from sanic.response import HTTPResponse

from app.metrics import Metrics
from core.pii import redact

access_log = logging.getLogger("app.access")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def route_label(request: Request) -> str:
    route = request.route
    if route is None:
        return "unmatched"
    return "/" + route.path.lstrip("/")


def install(app: Sanic) -> None:
    app.ctx.metrics = Metrics()

    @app.on_request(priority=1000)
    async def start(request: Request) -> None:
        incoming = request.headers.get("x-request-id", "")
        # A caller's id is kept only if it is well-formed and could not carry personal data into logs.
        usable = _REQUEST_ID_RE.match(incoming) and redact(incoming) == incoming
        request.ctx.request_id = incoming if usable else uuid.uuid4().hex
        request.ctx.started = time.perf_counter()

    @app.on_response(priority=1000)
    async def finish(request: Request, response: HTTPResponse) -> None:
        request_id = getattr(request.ctx, "request_id", None) or uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        started = getattr(request.ctx, "started", None)
        elapsed = time.perf_counter() - started if started else 0.0
        route = route_label(request)
        request.app.ctx.metrics.observe(request.method, route, response.status, elapsed)
        access_log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "route": route,
                "status": response.status,
                "ms": round(elapsed * 1000, 2),
            },
        )
