"""One way to move a stateful entity: ``transition()``.

Each entity family declares its allowed moves and which milestone time each target status stamps.
``transition`` locks the row (``SELECT ... FOR UPDATE``; a no-op on SQLite, which serialises writers
anyway), refuses a move the table does not allow, stamps the milestone, applies extra field updates and
appends a hash-chained audit event, all inside the caller's transaction. A repeat into the status the
row already has is reported, not treated as an error, so callers can make retries idempotent.
``transition_many`` does the same for a batch of rows the caller has locked, with one UPDATE and one
append to the audit chain for the lot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from core.clock import utcnow
from core.errors import Conflict, NotFound
from services import audit

S = TypeVar("S", bound=StrEnum)
M = TypeVar("M", bound=Model)


class TransitionRefused(Conflict):
    code = "INVALID_STATE_TRANSITION"
    message = "当前状态不允许此操作"


@dataclass(frozen=True)
class Machine(Generic[S]):
    entity: str  # audit entity_type, e.g. "contract"
    allowed: dict[S, frozenset[S]]
    milestones: dict[S, str] = field(default_factory=dict)  # status -> "<x>_at" field stamped on entry

    def can(self, before: S, after: S) -> bool:
        return after in self.allowed.get(before, frozenset())


@dataclass(frozen=True)
class Moved(Generic[M]):
    obj: M
    before: StrEnum
    changed: bool  # False when the row already had the target status


@dataclass
class Move(Generic[M]):
    """One row's move in a batch (``transition_many``): the row, already locked by the caller."""

    obj: M
    to: StrEnum
    updates: dict[str, Any] | None = None
    audit_data: dict[str, Any] | None = None


async def transition(
    conn: BaseDBAsyncClient,
    machine: Machine,
    model: type[M],
    pk: Any,
    to: StrEnum,
    *,
    actor: str,
    reason: str = "",
    updates: dict[str, Any] | None = None,
    audit_data: dict[str, Any] | None = None,
    locked: M | None = None,
) -> Moved[M]:
    """``locked``: the row, already read ``FOR UPDATE`` in this transaction by the caller (not read again)."""
    obj = locked if locked is not None else await model.filter(pk=pk).select_for_update().using_db(conn).first()
    if obj is None:
        raise NotFound()
    return (await transition_many(conn, machine, model, [Move(obj, to, updates, audit_data)], actor=actor,
                                  reason=reason))[0]


async def transition_many(conn: BaseDBAsyncClient, machine: Machine, model: type[M], moves: list[Move[M]], *,
                          actor: str, reason: str = "") -> list[Moved[M]]:
    """Several rows' moves in one go, each checked as ``transition`` checks one: the rows (locked by the
    caller) are written with one UPDATE per set of changed fields and their events appended to the audit
    chain together. Any refused move raises before anything is written."""
    now, results, changed, events = utcnow(), [], {}, []
    for move in moves:
        before = move.obj.status
        if before == move.to:
            results.append(Moved(move.obj, before, False))
            continue
        if not machine.can(before, move.to):
            raise TransitionRefused(f"不能从「{before}」变为「{move.to}」")
        values: dict[str, Any] = {"status": move.to}
        if move.to in machine.milestones:
            values[machine.milestones[move.to]] = now
        values.update(move.updates or {})  # a milestone the caller knows better (e.g. WeChat Pay's success_time) wins
        for name, value in values.items():
            setattr(move.obj, name, value)
        changed.setdefault(tuple(values), []).append(move.obj)
        events.append(dict(actor=actor, action=f"{machine.entity}.{move.to}", entity_type=machine.entity,
                           entity_id=move.obj.pk,
                           data={"from": str(before), "to": str(move.to), "reason": reason, **(move.audit_data or {})}))
        results.append(Moved(move.obj, before, True))
    for names, objs in changed.items():
        if len(objs) == 1:
            await objs[0].save(using_db=conn, update_fields=list(names))
        else:
            await model.bulk_update(objs, fields=list(names), using_db=conn)
    await audit.append_many(conn, events)
    return results
