"""Idempotency keys for the mini-program's POSTs that create or move money.

The first request under a key (per user and operation) inserts a record and takes a short lease on it
(``locked_until``; a lease with no holder column, ``services.leases``); the unique ``(user_id, scope,
key)`` lets one of two concurrent requests win, and a retry takes a lapsed lease with the one conditional
UPDATE, so of two concurrent retries one runs and the other is told the key is in use. What a retry gets:

* the same key and the same request (method, path, canonical body), answered: the first answer, as it
  was (status and body), with ``Idempotent-Replayed: true``;
* the same key and another request: 422 ``IDEMPOTENCY_KEY_REUSED``, whatever state the first is in;
* the same key while the first is still running: 409 ``IDEMPOTENCY_KEY_IN_USE``;
* the same key after the first ended without a final answer (a 5xx, a 202 "still pending", or a worker
  that died): the operation runs again under the same record, so ``record.id`` names the attempt for
  good and the service can find what the first run started (the card transfer it sent, by request id)
  instead of starting it twice.

Final answers are the 2xx other than 202 and every 4xx the operation gives after it started. Records
are kept ``idempotency_ttl_s`` (48 h by default, DESIGN: at least 24 h) and then swept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from core.clock import utcnow
from core.errors import AppError, Conflict
from models.infra import IdempotencyRecord
from services.leases import Lease

LEASE_S = 60  # default: longer than a request can run (handlers time their calls out well before)
KEY_PATTERN = r"^[A-Za-z0-9_\-.:]{8,64}$"
LEASE = Lease(IdempotencyRecord, until="locked_until", holder=None)  # a request holds it; no renewal


class IdempotencyKeyRequired(AppError):
    status, code, message = 400, "IDEMPOTENCY_KEY_REQUIRED", "请求缺少 Idempotency-Key"


class IdempotencyKeyInvalid(AppError):
    status, code, message = 422, "IDEMPOTENCY_KEY_INVALID", "Idempotency-Key 应为 8–64 位字母、数字或 _-.:"


class IdempotencyKeyReused(AppError):
    status, code, message = 422, "IDEMPOTENCY_KEY_REUSED", "该 Idempotency-Key 已用于另一笔请求"


class IdempotencyKeyInUse(Conflict):
    code, message = "IDEMPOTENCY_KEY_IN_USE", "相同请求正在处理中，请稍后重试"


def fingerprint(value: Any, *, compact: bool = True) -> str:
    """What makes two requests "the same", for an ``Idempotency-Key`` and a partner's ``out_trade_no``:
    SHA-256 of ``value`` as canonical JSON (keys sorted, text as is, dates and other values by ``str``),
    so spacing and key order do not matter, a different amount does.

    ``compact=False``: json's default separators, the form partner debits' and refunds' stored hashes
    were written in (a retry of one booked long ago must still match it)."""
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str,
                           separators=(",", ":") if compact else None)
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_hash(method: str, path: str, body: Any) -> str:
    """A mini-program request's fingerprint: method, concrete path, and the body as parsed."""
    return fingerprint([method.upper(), path, body])


@dataclass(frozen=True)
class Begun:
    record: IdempotencyRecord
    replay: bool  # True: ``record`` holds the final answer to send again


async def begin(user_id: int, scope: str, key: str, digest: str, *, ttl_s: int, lease_s: int = LEASE_S) -> Begun:
    """Claim the key for this request (``lease_s``: how long a claim holds if its request never says
    how it ended, e.g. because the database went away before it could)."""
    now = utcnow()
    try:
        record = await IdempotencyRecord.create(
            user_id=user_id, scope=scope, key=key, request_hash=digest, expires_at=now + timedelta(seconds=ttl_s),
            **LEASE.held(None, lease_s, now),
        )
        return Begun(record, False)
    except IntegrityError:
        pass
    record = await IdempotencyRecord.get(user_id=user_id, scope=scope, key=key)
    if record.expires_at <= now and LEASE.is_free(record, now):
        # Kept as long as promised and idle: the key is free again (the sweep would have removed it).
        if await IdempotencyRecord.filter(id=record.id, expires_at=record.expires_at).delete():
            return await begin(user_id, scope, key, digest, ttl_s=ttl_s, lease_s=lease_s)
    if record.request_hash != digest:
        raise IdempotencyKeyReused(field="Idempotency-Key")
    if record.status_code is not None:
        return Begun(record, True)
    if not await LEASE.take(Q(id=record.id) & Q(status_code__isnull=True), lease_s=lease_s, now=now):
        raise IdempotencyKeyInUse()
    return Begun(await IdempotencyRecord.get(id=record.id), False)


def is_final(status: int) -> bool:
    return status < 500 and status != 202


async def finish(record: IdempotencyRecord, status: int, body: Any) -> None:
    """Keep a final answer for replay; otherwise free the record for the next retry to run again."""
    if is_final(status):
        await LEASE.release(Q(id=record.id), status_code=status, response=body)
    else:
        await LEASE.release(Q(id=record.id))


async def sweep(now=None) -> int:
    """Delete the records past their time that no request is running under. (What an unanswered one
    started, a card transfer, is settled by the transfers' own reconciliation, not by its record.)"""
    now = now or utcnow()
    return await IdempotencyRecord.filter(Q(expires_at__lt=now) & LEASE.free(now)).delete()
