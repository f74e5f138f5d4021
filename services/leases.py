"""Leases: the one way a row is taken for a while by one worker or request, here and on every host.

A lease is a nullable "until" column on a row (and, where the row says who holds it, a holder column).
The row is free when its until is NULL or in the past, so a holder that dies (killed, its host gone, the
database lost before it could let go) only keeps it until the lease lapses; nothing lives in process
memory and no lock is held across the work.

``Lease.take`` is one conditional UPDATE: ``SET until = now + lease_s[, holder = me] WHERE <key> AND
(until IS NULL OR until < now[ OR holder = me])``, and the affected-row count decides: 1, it is yours;
0, someone else holds it (or no row matches the key). There is no read before the write, so two
claimers cannot both see the row free and both take it: on MySQL the second UPDATE waits on the row
lock and re-reads the row the first committed, finds it held and changes nothing; on a multi-primary
cluster (Galera) the loser's autocommit UPDATE fails certification and its retry finds the row held.
MySQL counts rows *changed*, not matched: a take always writes a new until (microseconds), so a row
that matched is a row changed. ``renewable`` lets the holder take its own lease again (to renew it
while it works); without it a held lease is refused to everyone, its holder too.

Its users, each with its own key and semantics on top:

* ``services.jobs`` (``job_leases``: holder ``claimed_by``, renewable): a job's lease row is created on
  its first claim (``create=``: the primary key lets one of two first claimers win);
* ``services.outbox`` (``outbox_messages``: holder ``claimed_by``, not renewable): the due query
  selects only free messages (``Lease.free``), each is taken by id while still pending, and finishing a
  delivery clears the holder and until whoever holds it;
* ``services.idempotency`` (``idempotency_records.locked_until``, no holder column): a retry takes the
  lapsed lease of a request that ended without a final answer; a record is idle (may be swept or
  reused after it expired) when its lease is free (``Lease.is_free``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.models import Model

from core.clock import utcnow


@dataclass(frozen=True)
class Lease:
    model: type[Model]
    until: str = "claimed_until"  # the column: NULL or in the past means free
    holder: str | None = "claimed_by"  # who holds it; None: the row has no holder column
    renewable: bool = False  # the holder may take its own lease again (renew it)

    def free(self, now: datetime, holder: str | None = None) -> Q:
        """The rows whose lease is free at ``now`` (or, if renewable, held by ``holder``)."""
        free = Q(**{f"{self.until}__isnull": True}) | Q(**{f"{self.until}__lt": now})
        if self.renewable and holder is not None and self.holder is not None:
            free |= Q(**{self.holder: holder})
        return free

    def is_free(self, row: Model, now: datetime) -> bool:
        """The same rule on a row already read (for a decision the conditional UPDATE then confirms)."""
        until = getattr(row, self.until)
        return until is None or until < now

    def held(self, holder: str | None, lease_s: float, now: datetime) -> dict[str, Any]:
        """The columns that say ``holder`` holds the row for ``lease_s`` seconds from ``now``."""
        values: dict[str, Any] = {self.until: now + timedelta(seconds=lease_s)}
        if self.holder is not None:
            values[self.holder] = holder
        return values

    async def take(self, key: Q, *, lease_s: float, holder: str | None = None, now: datetime | None = None,
                   create: dict[str, Any] | None = None) -> bool:
        """Take the lease on the row matching ``key`` for ``lease_s`` seconds; False when it is held.

        ``create``: the row's key columns, to insert it holding the lease when no free row matched (a
        first claim); its unique key refuses the insert when the row exists (held by another) or when
        another first claimer inserted it first."""
        if self.holder is not None and holder is None:
            raise ValueError(f"a lease on {self.model.__name__} needs a holder")
        now = now or utcnow()
        values = self.held(holder, lease_s, now)
        if await self.model.filter(key & self.free(now, holder)).update(**values):
            return True
        if create is None:
            return False
        try:
            await self.model.create(**create, **values)
            return True
        except IntegrityError:
            return False  # it exists and someone else holds it

    async def release(self, key: Q, *, holder: str | None = None, **fields: Any) -> int:
        """Let go of the lease on the rows matching ``key`` (only if ``holder`` still holds it, when
        given), writing ``fields`` in the same UPDATE; returns how many rows were let go."""
        if holder is not None and self.holder is None:
            raise ValueError(f"a lease on {self.model.__name__} has no holder to check")
        where = key if holder is None else key & Q(**{self.holder: holder})
        cleared: dict[str, Any] = {self.until: None}
        if self.holder is not None:
            cleared[self.holder] = None
        return await self.model.filter(where).update(**cleared, **fields)
