"""Append-only, hash-chained audit events, and their verification (``python -m app audit verify``).

``append`` (and ``append_many``, for a batch) runs inside the caller's transaction: it locks the single
chain head, links the new events to the previous hash and moves the head. ``verify`` walks the chain
and names the first event whose content, link or sequence does not check out, which is what an edit or
a deletion leaves behind.
Only masked values go into ``data``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from core.clock import utcnow
from models.audit import AuditEvent, AuditHead
from services.db import placeholder

GENESIS = "0" * 64
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def event_hash(*, seq: int, at: datetime, actor: str, action: str, entity_type: str, entity_id: str, data: dict, prev_hash: str) -> str:
    canonical = json.dumps(
        [seq, _micros(at), actor, action, entity_type, entity_id, data, prev_hash],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _head(conn: BaseDBAsyncClient) -> tuple[int, str]:
    """The head's ``(seq, hash)``, locked until the caller's transaction ends (plain SQL: every audited
    write in the bank passes here)."""
    mark, lock = placeholder(conn), "" if conn.capabilities.dialect == "sqlite" else " FOR UPDATE"
    for _ in range(2):
        rows = await conn.execute_query_dict(f"SELECT seq, hash FROM audit_head WHERE id = {mark}{lock}", [1])  # nosec B608
        if rows:
            return int(rows[0]["seq"]), rows[0]["hash"]
        try:
            await AuditHead.create(id=1, seq=0, hash=GENESIS, using_db=conn)
        except IntegrityError:
            pass  # another transaction created it first
    raise AssertionError("the audit head is missing")


async def append(
    conn: BaseDBAsyncClient, *, actor: str, action: str, entity_type: str, entity_id: str | int, data: dict | None = None
) -> AuditEvent:
    return (await append_many(conn, [dict(actor=actor, action=action, entity_type=entity_type, entity_id=entity_id,
                                          data=data)]))[0]


async def append_many(conn: BaseDBAsyncClient, entries: list[dict]) -> list[AuditEvent]:
    """Append several events (``actor``, ``action``, ``entity_type``, ``entity_id``, ``data``) in their
    order, under one lock of the head and in one INSERT: what a batch of moves costs the chain."""
    if not entries:
        return []
    at, (seq, prev), events = utcnow(), await _head(conn), []
    for entry in entries:
        seq += 1
        fields = dict(seq=seq, at=at, actor=entry["actor"], action=entry["action"], entity_type=entry["entity_type"],
                      entity_id=str(entry["entity_id"]), data=entry.get("data") or {})
        digest = event_hash(**fields, prev_hash=prev)
        events.append(AuditEvent(**fields, prev_hash=prev, hash=digest))
        prev = digest
    if len(events) == 1:
        await events[0].save(using_db=conn)  # fills in the id, which one caller's event may be asked for
    else:
        await AuditEvent.bulk_create(events, using_db=conn)
    mark = placeholder(conn)
    await conn.execute_query(f"UPDATE audit_head SET seq = {mark}, hash = {mark} WHERE id = {mark}", [seq, prev, 1])  # nosec B608
    return events


@dataclass(frozen=True)
class ChainReport:
    events: int
    ok: bool
    problem: str | None = None
    event_id: int | None = None
    seq: int | None = None


async def verify(batch: int = 1000) -> ChainReport:
    prev_hash, expected_seq, count, last_id = GENESIS, 1, 0, 0
    while True:
        rows = await AuditEvent.filter(id__gt=last_id).order_by("id").limit(batch)
        if not rows:
            break
        for ev in rows:
            if ev.seq != expected_seq:
                return ChainReport(count, False, f"sequence gap: expected {expected_seq}, found {ev.seq} (deleted event?)", ev.id, ev.seq)
            if ev.prev_hash != prev_hash:
                return ChainReport(count, False, "link broken: prev_hash does not match the previous event", ev.id, ev.seq)
            recomputed = event_hash(
                seq=ev.seq, at=ev.at, actor=ev.actor, action=ev.action, entity_type=ev.entity_type,
                entity_id=ev.entity_id, data=ev.data, prev_hash=ev.prev_hash,
            )
            if recomputed != ev.hash:
                return ChainReport(count, False, "content changed: hash does not match the event", ev.id, ev.seq)
            prev_hash, expected_seq, count, last_id = ev.hash, expected_seq + 1, count + 1, ev.id
    head = await AuditHead.get_or_none(id=1)
    if head is not None and (head.seq != count or head.hash != prev_hash):
        return ChainReport(count, False, f"chain head says {head.seq} events; the last ones were deleted", None, head.seq)
    return ChainReport(count, True)
