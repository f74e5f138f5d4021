"""The transactional outbox: side effects (subscribe messages now, partner webhooks next) written in the
same transaction as the change they report, and delivered afterwards by a worker.

Delivery (``deliver_due``) claims each due message by lease (``services.leases``: one conditional
UPDATE, as every job here does): ``claimed_until`` in the past (or never set) means free, so a worker
that dies mid-delivery leaves the message to be claimed again once its lease lapses; a message held is
refused to everyone, its holder too (no renewal: a delivery is one attempt, shorter than its lease).
Each attempt is recorded; a failed one is retried after a growing delay, up to ``outbox_max_attempts``;
an answer that says retrying is pointless (the user refused subscribe messages: WeChat 43101) gives up
at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from core.clock import utcnow
from models.infra import OutboxAttempt, OutboxMessage, OutboxStatus
from services.leases import Lease

log = logging.getLogger(__name__)


class Permanent(Exception):
    """A delivery failure that no retry will fix."""


Handler = Callable[[dict], Awaitable[None]]

LEASE = Lease(OutboxMessage, until="claimed_until", holder="claimed_by", renewable=False)


async def enqueue(conn: BaseDBAsyncClient, kind: str, payload: dict) -> OutboxMessage:
    """Write a message to deliver, inside the caller's transaction (it exists only if the change does)."""
    return await OutboxMessage.create(kind=kind, payload=payload, next_attempt_at=utcnow(), using_db=conn)


def backoff_s(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 2, 4, 8, ... up to an hour."""
    return float(min(3600, 2 ** attempts))


async def claim(message_id: int, holder: str, lease_s: float) -> bool:
    """Take a pending message for ``lease_s`` seconds, or report that another worker has it."""
    return await LEASE.take(Q(id=message_id) & Q(status=OutboxStatus.PENDING), holder=holder, lease_s=lease_s)


async def deliver_due(handlers: dict[str, Handler], *, holder: str, max_attempts: int, batch: int = 50,
                      lease_s: float = 60) -> int:
    """Deliver what is due now; returns how many messages were attempted."""
    now = utcnow()
    due = await OutboxMessage.filter(
        Q(status=OutboxStatus.PENDING) & Q(next_attempt_at__lte=now) & LEASE.free(now)
    ).order_by("id").limit(batch).values_list("id", flat=True)
    done = 0
    for message_id in due:
        if not await claim(message_id, holder, lease_s):
            continue  # another worker has it
        message = await OutboxMessage.get(id=message_id)
        done += 1
        await _attempt(message, handlers, max_attempts=max_attempts)
    return done


async def _attempt(message: OutboxMessage, handlers: dict[str, Handler], *, max_attempts: int) -> None:
    attempts = message.attempts + 1
    handler = handlers.get(message.kind)
    try:
        if handler is None:
            raise Permanent(f"no handler for {message.kind!r}")
        await handler(message.payload)
    except Permanent as exc:
        await _finish(message, attempts, OutboxStatus.GAVE_UP, ok=False, detail=f"permanent: {exc}")
    except Exception as exc:  # noqa: BLE001 - any other failure is worth another try
        detail = f"{type(exc).__name__}: {exc}"[:255]
        if attempts >= max_attempts:
            await _finish(message, attempts, OutboxStatus.GAVE_UP, ok=False, detail=f"gave up: {detail}"[:255])
        else:
            await OutboxAttempt.create(message_id=message.id, ok=False, detail=detail)
            await LEASE.release(Q(id=message.id), attempts=attempts, last_error=detail,
                                next_attempt_at=utcnow() + timedelta(seconds=backoff_s(attempts)))
        log.warning("outbox delivery failed", extra={"message_id": message.id, "kind": message.kind,
                                                      "attempt": attempts, "reason": type(exc).__name__})
    else:
        await _finish(message, attempts, OutboxStatus.SENT, ok=True, detail="delivered")


async def _finish(message: OutboxMessage, attempts: int, status: OutboxStatus, *, ok: bool, detail: str) -> None:
    await OutboxAttempt.create(message_id=message.id, ok=ok, detail=detail)
    await LEASE.release(Q(id=message.id), status=status, attempts=attempts, finished_at=utcnow(),
                        last_error=None if ok else detail)
