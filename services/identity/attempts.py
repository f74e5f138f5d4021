"""Daily attempt limits and the evidence trail of every identity check.

The limit is a counter row per (user, kind, banking day) moved by one conditional UPDATE, so any
number of workers and hosts share it without locks: ``UPDATE ... SET count = count + 1 WHERE ... AND
count < limit`` either takes a slot or touches nothing.
"""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from core.clock import china_day
from models.identity import AttemptCounter, AttemptKind, VerificationAttempt
from services.identity.errors import TooManyAttempts


async def take_slot(user_id: int, kind: AttemptKind, limit: int) -> None:
    """Count one attempt, or raise ``TooManyAttempts`` when today's are used up."""
    day = china_day()
    where = dict(user_id=user_id, kind=kind.value, day=day)
    for _ in range(3):
        if await AttemptCounter.filter(**where, count__lt=limit).update(count=F("count") + 1):
            return
        if await AttemptCounter.filter(**where).exists():
            raise TooManyAttempts()
        if limit < 1:
            raise TooManyAttempts()
        try:
            await AttemptCounter.create(**where, count=1)
            return
        except IntegrityError:
            continue  # another worker created today's row: go round and take a slot in it
    raise TooManyAttempts()


async def used_today(user_id: int, kind: AttemptKind) -> int:
    row = await AttemptCounter.get_or_none(user_id=user_id, kind=kind.value, day=china_day())
    return row.count if row else 0


async def record(
    user_id: int, kind: AttemptKind, result: str, *, provider_ref: str | None = None, inputs: dict | None = None
) -> VerificationAttempt:
    """Evidence of one attempt. ``inputs`` must already be masked."""
    return await VerificationAttempt.create(
        user_id=user_id, kind=kind, result=result, provider_ref=provider_ref, inputs_masked=inputs or {}
    )
