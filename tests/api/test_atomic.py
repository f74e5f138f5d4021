"""A transaction cut off by a client hanging up still commits (or rolls back) and frees its connection
(docs/stack-notes.md, pitfall 1)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

from core.clock import utcnow
from models.infra import CacheEntry
from services.db import atomic


async def test_cancelled_caller_does_not_cut_the_transaction_in_half(server):
    key = "atomic-test-" + secrets.token_hex(4)
    started = asyncio.Event()

    async def work(conn):
        await CacheEntry.create(key=key, value="half", expires_at=utcnow() + timedelta(minutes=1), using_db=conn)
        started.set()
        await asyncio.sleep(0.2)  # the client hangs up here
        await CacheEntry.filter(key=key).using_db(conn).update(value="whole")
        return "done"

    task = asyncio.create_task(atomic(work))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)
    assert (await CacheEntry.get(key=key)).value == "whole"


async def test_failed_work_rolls_back(server):
    key = "atomic-test-" + secrets.token_hex(4)

    async def work(conn):
        await CacheEntry.create(key=key, value="x", expires_at=utcnow(), using_db=conn)
        raise RuntimeError("boom")

    for _ in range(30):  # more than the pool size: a leaked connection per failure would exhaust it
        with pytest.raises(RuntimeError):
            await atomic(work)
    assert not await CacheEntry.filter(key=key).exists()


async def test_a_conflict_is_run_again_after_a_jittered_bounded_wait_then_raised(server, monkeypatch):
    import pymysql

    from services import db

    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded(seconds, *args, **kwargs):
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(db.asyncio, "sleep", recorded)
    tries = 0

    async def work(conn):
        nonlocal tries
        tries += 1
        raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")

    with pytest.raises(pymysql.err.OperationalError):
        await atomic(work)
    assert tries == db.ATTEMPTS
    assert len(waits) == db.ATTEMPTS - 1  # a wait between every two tries
    for attempt, wait in enumerate(waits, start=1):
        assert 0 <= wait <= min(db.BACKOFF_CAP_S, db.BACKOFF_BASE_S * 2**attempt)
    # jittered, and capped however many tries there are (base * 2**20 would be hours)
    draws = {db.backoff_s(20) for _ in range(50)}
    assert len(draws) > 1 and max(draws) <= db.BACKOFF_CAP_S
