"""Transactions that a client hanging up cannot cut in half.

Sanic cancels a handler when its client disconnects. Cancelled inside ``in_transaction()``, the driver
raises mid-query and the connection never returns to the pool (docs/stack-notes.md, pitfall 1).
``atomic`` runs the transaction in its own task and shields it: the caller may be cancelled, the
transaction still commits or rolls back and gives its connection back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

T = TypeVar("T")


async def atomic(work: Callable[[BaseDBAsyncClient], Awaitable[T]]) -> T:
    async def body() -> T:
        async with in_transaction() as conn:
            return await work(conn)

    return await asyncio.shield(asyncio.ensure_future(body()))
