"""Concurrent attempts can never exceed the daily limit (needs MySQL's real concurrency)."""

from __future__ import annotations

import asyncio


from core.errors import RateLimited
from models.identity import AttemptCounter, AttemptKind
from services.identity.attempts import take_slot


async def test_concurrent_slots_never_exceed_the_limit(user):
    uid = user.body["user"]["id"]
    limit = 5

    async def one():
        try:
            await take_slot(uid, AttemptKind.BANK_CARD, limit)
            return True
        except RateLimited:
            return False

    results = await asyncio.gather(*(one() for _ in range(40)))
    assert sum(results) == limit
    row = await AttemptCounter.get(user_id=uid, kind="bank_card")
    assert row.count == limit
