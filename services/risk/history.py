"""What the rules look back on: the decisions recorded before (``RiskEvent``), counted ones only.

Two readers answer the same four questions. ``DbHistory`` asks the database, inside the deciding
transaction (the live path). ``MemoryHistory`` holds a stretch of events in memory and is fed them in
time order (``python -m app risk rules test`` replays tens of thousands of movements in seconds that
way). ``tests/unit/test_risk_history.py`` feeds both the same random events and checks that every
answer agrees, so a rule decides the same live and in a replay.

Live, the newest events have no upper time bound: a movement that committed while this one waited for
its lock counts, even if its clock read a microsecond later. A replay asks "before this one".
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count, Max, Min, Sum

from models.risk import RiskEvent

COLUMN = {"account": "account_id", "user": "user_id"}  # every other key is a column of its own name


def column(key: str) -> str:
    return COLUMN.get(key, key)


@dataclass(frozen=True)
class Seen:
    """One recorded event as the history needs it."""

    id: int
    subject: str
    at: datetime
    amount_fen: int
    category: str | None
    keys: dict[str, str]  # key (rules.KEYS) -> value; user and account as strings
    lat: float | None = None
    lng: float | None = None


class History(Protocol):
    async def velocity(self, key: str, value: str, subjects: Sequence[str], since: datetime) -> tuple[int, int]:
        """Counted events of ``subjects`` with this key value after ``since``: how many, how much."""

    async def largest(self, account: str, subjects: Sequence[str], category: str | None,
                      since: datetime) -> tuple[int, int]:
        """The account's counted events of ``subjects`` (in ``category``, when given) after ``since``:
        how many, and the largest amount."""

    async def last_located(self, key: str, value: str, since: datetime) -> tuple[datetime, float, float] | None:
        """The latest counted event with this key value that carried a location, after ``since``."""

    async def first_seen(self, key: str, value: str, user: str | None) -> datetime | None:
        """When this key value was first recorded (with ``user``, when given), counted or not."""


class DbHistory:
    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn

    def _q(self, **filters):
        return RiskEvent.filter(**filters).using_db(self.conn)

    async def velocity(self, key, value, subjects, since):
        rows = await self._q(**{column(key): value}, at__gt=since, counted=True, subject__in=list(subjects)) \
            .annotate(n=Count("id"), total=Sum("amount_fen")).values("n", "total")
        row = rows[0] if rows else {}
        return int(row.get("n") or 0), int(row.get("total") or 0)

    async def largest(self, account, subjects, category, since):
        filters = {"account_id": int(account), "at__gt": since, "counted": True, "subject__in": list(subjects)}
        if category is not None:
            filters["category"] = category
        rows = await self._q(**filters).annotate(n=Count("id"), top=Max("amount_fen")).values("n", "top")
        row = rows[0] if rows else {}
        return int(row.get("n") or 0), int(row.get("top") or 0)

    async def last_located(self, key, value, since):
        row = await self._q(**{column(key): value}, at__gt=since, counted=True, lat__isnull=False) \
            .order_by("-at", "-id").first().values("at", "lat", "lng")
        return (row["at"], row["lat"], row["lng"]) if row else None

    async def first_seen(self, key, value, user):
        filters = {column(key): value}
        if user is not None:
            filters["user_id"] = int(user)
        rows = await self._q(**filters).annotate(first=Min("at")).values("first")
        return rows[0]["first"] if rows and rows[0]["first"] is not None else None


class MemoryHistory:
    """Events added in time order; each answer covers what was added before the question."""

    def __init__(self) -> None:
        # (key, value, subject) -> times and running amount totals, in the order added (time order)
        self._times: dict[tuple, list[datetime]] = defaultdict(list)
        self._totals: dict[tuple, list[int]] = defaultdict(list)
        self._amounts: dict[tuple, list[tuple[datetime, str | None, int]]] = defaultdict(list)  # (account, subject)
        self._located: dict[tuple, list[tuple[datetime, float, float]]] = defaultdict(list)
        self._first: dict[tuple, datetime] = {}

    def add(self, event: Seen, *, counted: bool) -> None:
        user = event.keys.get("user")
        for key, value in event.keys.items():
            self._first.setdefault((key, value, None), event.at)
            if user is not None:
                self._first.setdefault((key, value, user), event.at)
        if not counted:
            return
        for key, value in event.keys.items():
            slot = (key, value, event.subject)
            self._times[slot].append(event.at)
            totals = self._totals[slot]
            totals.append((totals[-1] if totals else 0) + event.amount_fen)
            if event.lat is not None and event.lng is not None:
                self._located[(key, value)].append((event.at, event.lat, event.lng))
        if "account" in event.keys:
            self._amounts[(event.keys["account"], event.subject)].append((event.at, event.category, event.amount_fen))

    async def velocity(self, key, value, subjects, since):
        count = amount = 0
        for subject in subjects:
            times = self._times.get((key, value, subject))
            if not times:
                continue
            start = bisect.bisect_right(times, since)
            totals = self._totals[(key, value, subject)]
            count += len(times) - start
            amount += totals[-1] - (totals[start - 1] if start else 0)
        return count, amount

    async def largest(self, account, subjects, category, since):
        count = top = 0
        for subject in subjects:
            for at, cat, amount in reversed(self._amounts.get((account, subject), ())):
                if at <= since:
                    break
                if category is None or cat == category:
                    count, top = count + 1, max(top, amount)
        return count, top

    async def last_located(self, key, value, since):
        located = self._located.get((key, value))
        if not located or located[-1][0] <= since:
            return None
        return located[-1]

    async def first_seen(self, key, value, user):
        return self._first.get((key, value, user))


def seen_of(row: RiskEvent) -> Seen:
    return Seen(row.id, row.subject, row.at, row.amount_fen, row.category, keys_of(row), row.lat, row.lng)


def keys_of(row: RiskEvent) -> dict[str, str]:
    from services.risk.rules import KEYS

    found = {}
    for key in KEYS:
        value = getattr(row, column(key))
        if value is not None:
            found[key] = str(value)
    return found


def replayable(rows: Iterable[RiskEvent]) -> list[RiskEvent]:
    return sorted(rows, key=lambda r: (r.at, r.id))
