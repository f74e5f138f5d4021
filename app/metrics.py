"""Request metrics in Prometheus format, right with any number of workers.

Each Sanic worker is its own process and counts its own requests. In ``python -m app serve``,
prometheus_client runs in its multi-process mode: every process writes its values to files under
``PROMETHEUS_MULTIPROC_DIR`` (``VAR_DIR/metrics``, emptied before the workers start) and a scrape
sums them, so whichever worker answers ``/metrics`` reports the whole server. Without that variable
(an app built in-process by the tests) the counts live in this process's own registry.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def prepare_multiprocess_dir(var_dir: str) -> str:
    """Called by the serving process before any worker starts (and before prometheus_client is
    imported, which reads the variable once): a fresh, empty directory for this run's values."""
    path = Path(var_dir, "metrics").resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return str(path)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests", "Requests handled, by method, route and status.",
            ("method", "route", "status"), registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "Request latency, by method and route.",
            ("method", "route"), buckets=BUCKETS, registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if self.multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)
