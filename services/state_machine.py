"""One way to move a stateful entity: ``transition()``.

Each entity family declares its allowed moves and which milestone time each target status stamps.
``transition`` locks the row (``SELECT ... FOR UPDATE``; a no-op on SQLite, which serialises writers
anyway), refuses a move the table does not allow, stamps the milestone, applies extra field updates and
appends a hash-chained audit event, all inside the caller's transaction. A repeat into the status the
row already has is reported, not treated as an error, so callers can make retries idempotent.
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
    before = obj.status
    if before == to:
        return Moved(obj, before, False)
    if not machine.can(before, to):
        raise TransitionRefused(f"不能从「{before}」变为「{to}」")
    now = utcnow()
    values: dict[str, Any] = {"status": to}
    if to in machine.milestones:
        values[machine.milestones[to]] = now
    values.update(updates or {})  # a milestone the caller knows better (e.g. WeChat Pay's success_time) wins
    for name, value in values.items():
        setattr(obj, name, value)
    await obj.save(using_db=conn, update_fields=list(values))
    await audit.append(
        conn,
        actor=actor,
        action=f"{machine.entity}.{to}",
        entity_type=machine.entity,
        entity_id=pk,
        data={"from": str(before), "to": str(to), "reason": reason, **(audit_data or {})},
    )
    return Moved(obj, before, True)
