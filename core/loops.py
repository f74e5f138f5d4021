"""Loops that must run as long as the process does, whatever one turn of them meets.

The background work (the periodic jobs, the outbox delivery, the revocation poller, the metrics flusher)
is each a step called again and again until a stop event. One step can fail for reasons that pass: the
database lost mid-query (2013), a Galera node out of the primary component (1047), a bug in one job. Such
a failure must not end the loop, because nothing else would restart it: the server goes on serving and
the work silently stops (issue 20: a three-way split ended card-network reconciliation for good).

So ``forever`` catches any ``Exception`` of a step, logs it (the type and the loop's name; the traceback
once per run of failures, through the redacting log formatter), waits, longer after each failure in a
row (``Backoff``: from ``first_s``, doubling, capped at ``cap_s``), and goes on; a step that succeeds
resets the wait. ``CancelledError`` is not an ``Exception``: cancelling the task still ends the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

CAP_S = 30.0  # the longest wait after failures, for loops that normally turn faster than this


class Backoff:
    """How long to wait after the n-th failure in a row: ``first_s``, doubled each time, at most ``cap_s``."""

    def __init__(self, first_s: float, cap_s: float) -> None:
        self.first_s = first_s
        self.cap_s = max(cap_s, first_s)
        self.failures = 0

    def failed(self) -> float:
        self.failures += 1
        return min(self.cap_s, self.first_s * 2 ** min(self.failures - 1, 32))

    def succeeded(self) -> None:
        self.failures = 0


def default_backoff(idle_s: float) -> Backoff:
    """Retry soon after a first failure (a blip), then less often, never waiting more than the loop's own
    pace or ``CAP_S``, whichever is longer."""
    return Backoff(first_s=max(0.05, min(idle_s, 1.0)), cap_s=max(idle_s, CAP_S))


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def forever(name: str, step: Callable[[], Awaitable[float | None]], stop: asyncio.Event, *,
                  idle_s: float, backoff: Backoff | None = None) -> None:
    """Call ``step`` until ``stop`` is set. After a step, wait what it returned (0: go on at once) or
    ``idle_s``; after a failed step, what ``backoff`` says."""
    backoff = backoff or default_backoff(idle_s)
    while not stop.is_set():
        try:
            wait_s = await step()
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one turn (see the module doc)
            wait_s = backoff.failed()
            log.warning("background loop turn failed; it goes on", exc_info=backoff.failures == 1,
                        extra={"loop": name, "error": type(exc).__name__, "failures": backoff.failures,
                               "retry_in_s": wait_s})
        else:
            if backoff.failures:
                log.info("background loop recovered", extra={"loop": name, "failures": backoff.failures})
            backoff.succeeded()
            wait_s = idle_s if wait_s is None else wait_s
        if wait_s > 0:
            await pause(stop, wait_s)
