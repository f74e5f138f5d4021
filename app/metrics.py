"""Request metrics in Prometheus format, right with any number of workers, cheap per request.

Each Sanic worker is its own process and counts its own requests. In ``python -m app serve``,
prometheus_client runs in its multi-process mode: every process writes its values to files under
``PROMETHEUS_MULTIPROC_DIR`` (``VAR_DIR/metrics``, emptied before the workers start) and a scrape
sums them, so whichever worker answers ``/metrics`` reports the whole server. Without that variable
(an app built in-process by the tests) the counts live in this process's own registry.

Requests only append a tuple (``app.middleware.finish``); the app's flusher adds them to plain
counters here (``observe_many``), and ``flush`` moves those into prometheus_client's values, whose multi-process mode writes a memory-mapped file
under a lock for every change. The app flushes every ``FLUSH_S`` and before answering a scrape, so
another worker's figures are at most that old.

The periodic jobs' gauges (``background_job_last_success_timestamp_seconds``, ``background_job_overdue``,
``background_job_allowed_gap_seconds``, one series per job) are not per-process values: a job runs on
whichever host holds its lease, so its last success is read from the lease rows in the database at each
scrape (``services.worker.job_health``) and rendered from that snapshot, outside the multi-process files
(a gauge there would be one file per process, stale for every job another host ran). Every server
reports the same figures; alert on ``background_job_overdue == 1`` or on ``time() -
background_job_last_success_timestamp_seconds > background_job_allowed_gap_seconds``.
"""

from __future__ import annotations

import os
import shutil
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.jobs import JobHealth

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FLUSH_S = 0.5


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
        self._requests = Counter(
            "http_requests", "Requests handled, by method, route and status.",
            ("method", "route", "status"), registry=self.registry,
        )
        self._latency = Histogram(
            "http_request_duration_seconds", "Request latency, by method and route.",
            ("method", "route"), buckets=BUCKETS, registry=self.registry,
        )
        # Not yet flushed: (method, route, status) -> n; (method, route) -> [per-bucket n..., +Inf n], sum
        self._counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.observe_many([(0.0, "", method, route, status, seconds)])

    def observe_many(self, observations: list[tuple]) -> None:
        """``observations``: ``(wall_time, request_id, method, route, status, seconds)`` each."""
        counts, buckets, sums = self._counts, self._buckets, self._sums
        for _, _, method, route, status, seconds in observations:
            counts[(method, route, status)] += 1
            key = (method, route)
            slots = buckets.get(key)
            if slots is None:
                slots = buckets[key] = [0] * (len(BUCKETS) + 1)
            slots[bisect_left(BUCKETS, seconds)] += 1
            sums[key] += seconds

    def flush(self) -> None:
        """Move what was counted since the last flush into prometheus_client's values."""
        counts, self._counts = self._counts, defaultdict(int)
        buckets, self._buckets = self._buckets, {}
        sums, self._sums = self._sums, defaultdict(float)
        for (method, route, status), n in counts.items():
            self._requests.labels(method, route, str(status)).inc(n)
        for labels, slots in buckets.items():
            child = self._latency.labels(*labels)
            # prometheus_client (pinned) keeps one value per bucket, cumulated at collection time, and
            # the sum; observe() adds to exactly these, one observation at a time.
            for i, n in enumerate(slots):
                if n:
                    child._buckets[i].inc(n)
            child._sum.inc(sums[labels])

    def render(self, jobs: Sequence[JobHealth] = ()) -> bytes:
        """The text exposition, after this worker's own counts are flushed (``app.middleware.drain``
        first adds what its requests appended since the last flush), and the jobs' gauges of ``jobs``."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.flush()
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.multiprocess_dir)
            text = generate_latest(registry)
        else:
            text = generate_latest(self.registry)
        return text + (generate_latest(_Snapshot(_job_families(jobs))) if jobs else b"")


class _Snapshot:
    """A registry-like collector of families built once (prometheus_client's ``generate_latest`` only calls
    ``collect``); no value of it touches the multi-process files."""

    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):
        return self.families


def _job_families(jobs: Sequence[JobHealth]) -> list:
    from prometheus_client.core import GaugeMetricFamily

    last_ok = GaugeMetricFamily("background_job_last_success_timestamp_seconds",
                                "When each periodic job last succeeded on any host (Unix time; 0: never).",
                                labels=("name",))
    overdue = GaugeMetricFamily("background_job_overdue",
                                "1 when a periodic job's last success is older than its allowed gap.", labels=("name",))
    allowed = GaugeMetricFamily("background_job_allowed_gap_seconds",
                                "How long after its last success a periodic job counts as overdue.", labels=("name",))
    for job in jobs:
        last_ok.add_metric((job.name,), job.last_ok_at.timestamp() if job.last_ok_at else 0.0)
        overdue.add_metric((job.name,), 1.0 if job.overdue else 0.0)
        allowed.add_metric((job.name,), job.allowed_s)
    return [last_ok, overdue, allowed]
