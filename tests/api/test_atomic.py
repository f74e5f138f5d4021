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
