"""A loop that must run forever outlives any one failed turn, waits longer after each failure in a row (up
to a cap), starts over after a success, and still ends on its stop event or on cancellation."""

from __future__ import annotations

import asyncio

import pytest

from core.loops import Backoff, forever


def test_the_wait_doubles_up_to_its_cap_and_a_success_starts_it_over():
    backoff = Backoff(first_s=0.5, cap_s=4)
    assert [backoff.failed() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    backoff.succeeded()
    assert backoff.failed() == 0.5
    assert Backoff(first_s=1, cap_s=30).failed() == 1
    many = Backoff(first_s=1, cap_s=30)
    assert max(many.failed() for _ in range(2000)) == 30  # no overflow after a long outage


async def test_failed_turns_do_not_end_the_loop_and_a_success_resets_the_backoff(caplog):
    outcomes = iter([RuntimeError("db gone"), OSError("again"), None, ValueError("once more"), None])
    stop = asyncio.Event()
    backoff = Backoff(first_s=0.01, cap_s=0.02)
    seen: list[int] = []

    async def step() -> float | None:
        seen.append(backoff.failures)  # the failures in a row so far, as the loop left them
        outcome = next(outcomes)
        if outcome is None:
            return 0.0
        if isinstance(outcome, ValueError):
            stop.set()  # the last one: fail once more, then the loop ends on stop
        raise outcome

    await asyncio.wait_for(forever("test", step, stop, idle_s=0.01, backoff=backoff), timeout=5)
    assert seen == [0, 1, 2, 0]  # the third turn saw two failures; the success before the fourth reset them
    failed = [r for r in caplog.records if r.getMessage().startswith("background loop turn failed")]
    assert [r.error for r in failed] == ["RuntimeError", "OSError", "ValueError"]
    assert [bool(r.exc_info) for r in failed] == [True, False, True]  # the traceback once per run of failures


async def test_cancelling_still_ends_the_loop():
    async def step() -> None:
        raise RuntimeError("always")

    task = asyncio.ensure_future(forever("test", step, asyncio.Event(), idle_s=0.01))
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
