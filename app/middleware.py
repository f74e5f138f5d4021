"""Request id, access log line and Prometheus metrics for every request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import defaultdict

from sanic import Request, Sanic

from core.pii import redact
from sanic.response import HTTPResponse

access_log = logging.getLogger("app.access")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Per-worker request counters and latency histograms, rendered in Prometheus text format.

    Each worker counts its own requests; Prometheus sums across scrape targets. Nothing correct
    depends on these numbers.
    """

    def __init__(self) -> None:
        self.count: dict[tuple[str, str, str], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.sum: dict[tuple[str, str], float] = defaultdict(float)
        self.n: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.count[(method, route, str(status))] += 1
        key = (method, route)
        for i, le in enumerate(BUCKETS):
            if seconds <= le:
                self.buckets[key][i] += 1
        self.sum[key] += seconds
        self.n[key] += 1

    def render(self) -> str:
        lines = [
            "# HELP http_requests_total Requests handled, by method, route and status.",
            "# TYPE http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.count.items()):
            lines.append(f'http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
        lines += [
            "# HELP http_request_duration_seconds Request latency, by method and route.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        for (method, route), counts in sorted(self.buckets.items()):
            labels = f'method="{method}",route="{route}"'
            for le, c in zip(BUCKETS, counts):
                lines.append(f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} {c}')
            lines.append(f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {self.n[(method, route)]}')
            lines.append(f"http_request_duration_seconds_sum{{{labels}}} {self.sum[(method, route)]:.6f}")
            lines.append(f"http_request_duration_seconds_count{{{labels}}} {self.n[(method, route)]}")
        return "\n".join(lines) + "\n"


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
