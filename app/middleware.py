"""Request id, access log line and Prometheus metrics for every request.

Not a Sanic middleware: one response middleware costs about a fifth of a trivial request here (Sanic
runs its signal dispatch around each), more than everything it would do. ``finish`` is called instead
by the two places every answer passes through: the contract wrapper around each API handler
(``handlers.spec.operation``, through ``app.ctx.finish``) and the error handler for requests that never
reach one (no route, 405, a body or head too large). It stamps the request id and appends one tuple;
the background flusher turns the tuples into access-log lines (``app.access_log``) and metrics
(``app.metrics``) every ``FLUSH_S``, off the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import time

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from app.access_log import AccessLog
from app.metrics import FLUSH_S as METRICS_FLUSH_S
from app.metrics import Metrics
from core.loops import forever
from core.pii import redact

FLUSH_S = 0.1
MAX_PENDING = 4096  # drained on the request path past this, should the flusher fall behind
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# Request ids: a random per-process prefix and a counter, 32 hex characters, unique across workers
# and hosts without a system call per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)
_labels: dict[str, str] = {}


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def request_id(request: Request) -> str:
    """This request's id: the caller's ``X-Request-ID`` when it is well-formed and could not carry
    personal data into logs, otherwise a new one; the same for the whole request."""
    rid = getattr(request.ctx, "request_id", None)
    if rid is None:
        incoming = request.headers.get("x-request-id")
        if incoming and _REQUEST_ID_RE.fullmatch(incoming) and redact(incoming) == incoming:
            rid = incoming
        else:
            rid = new_request_id()
        request.ctx.request_id = rid
    return rid


def route_label(request: Request) -> str:
    """The route *template* (never the raw path, which may carry ids), or ``unmatched``."""
    route = request.route
    if route is None:
        return "unmatched"
    label = _labels.get(route.path)
    if label is None:
        label = _labels[route.path] = "/" + route.path.lstrip("/")
    return label


def finish(app: Sanic, request: Request, response: HTTPResponse, started: float | None) -> HTTPResponse:
    """Stamp the request id on the answer and note it for the access log and the metrics."""
    rid = request_id(request)
    response.headers["X-Request-ID"] = rid
    now = time.perf_counter()
    pending = app.ctx.pending
    pending.append((time.time(), rid, request.method, route_label(request), response.status,
                    now - started if started is not None else 0.0))
    if len(pending) >= MAX_PENDING:
        drain(app)
    return response


def drain(app: Sanic) -> None:
    """Turn what requests noted since the last call into log lines and counts."""
    batch, app.ctx.pending = app.ctx.pending, []
    app.ctx.access_log.write(batch)
    app.ctx.metrics.observe_many(batch)


def install(app: Sanic) -> None:
    app.ctx.pending = []
    app.ctx.metrics = Metrics()
    app.ctx.access_log = AccessLog(enabled=logging.getLogger("app.access").isEnabledFor(logging.INFO))
    app.ctx.finish = lambda request, response, started: finish(app, request, response, started)
    app.ctx.drain = lambda: drain(app)

    @app.after_server_start
    async def start_flusher(app: Sanic) -> None:
        app.ctx.flusher = asyncio.get_running_loop().create_task(_flush_forever(app))

    @app.before_server_stop
    async def stop_flusher(app: Sanic) -> None:
        task = getattr(app.ctx, "flusher", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        drain(app)
        app.ctx.metrics.flush()


def instrumented(handler):
    """For the few routes outside the API contract (the docs pages): the same finish."""

    async def wrapper(request: Request, *args, **kwargs):
        started = time.perf_counter()
        return finish(request.app, request, await handler(request, *args, **kwargs), started)

    wrapper.__name__ = handler.__name__
    return wrapper


async def _flush_forever(app: Sanic) -> None:
    """Cancelled when the server stops; a failed flush (a full disk under the metrics files) is logged
    and the next one tries again (``core.loops.forever``), so the access log and the counts go on."""
    every = max(1, round(METRICS_FLUSH_S / FLUSH_S))
    turns = itertools.count(1)

    async def one_turn() -> None:
        drain(app)
        if next(turns) % every == 0:
            app.ctx.metrics.flush()

    await forever("metrics flush", one_turn, asyncio.Event(), idle_s=FLUSH_S)
