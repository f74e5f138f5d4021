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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from tortoise.backends.base.client import BaseDBAsyncClient

from models.risk import RiskEvent
from services.db import placeholder

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

    async def first_seen(self, key: str, value: str, user: str | None,
                         subjects: Sequence[str] | None = None) -> datetime | None:
        """When this key value was first recorded (with ``user``, in ``subjects``, when given), counted
        or not."""


class DbHistory:
    """The live reader: plain SQL on the deciding transaction's connection (these run on every money
    movement, so they skip the ORM's query building). ``windows``: the starts of the velocity windows
    the rules will ask about; the first velocity question on a key answers them all in one query."""

    def __init__(self, conn: BaseDBAsyncClient, windows: Sequence[datetime] = ()) -> None:
        self.conn = conn
        self.windows = tuple(windows)
        self.mark = placeholder(conn)
        self._velocity: dict[tuple, dict[datetime, tuple[int, int]]] = {}

    async def _rows(self, sql: str, params: list) -> list[dict]:
        return (await self.conn.execute_query_dict(sql, params)) or []

    async def velocity(self, key, value, subjects, since):
        memo = (key, value, tuple(sorted(subjects)))
        known = self._velocity.setdefault(memo, {})
        if since not in known:
            sinces = sorted({since, *self.windows})
            m = self.mark
            sums = ", ".join(f"SUM(CASE WHEN at > {m} THEN 1 ELSE 0 END) AS n{i}, "
                             f"SUM(CASE WHEN at > {m} THEN amount_fen ELSE 0 END) AS f{i}" for i in range(len(sinces)))
            params = [p for s in sinces for p in (s, s)] + [value, sinces[0], *subjects]
            [row] = await self._rows(
                f"SELECT {sums} FROM risk_events WHERE {column(key)} = {m} AND at > {m} AND counted = 1 "  # nosec B608
                f"AND subject IN ({', '.join([m] * len(subjects))})", params)
            for i, s in enumerate(sinces):
                known[s] = (int(row[f"n{i}"] or 0), int(row[f"f{i}"] or 0))
        return known[since]

    async def largest(self, account, subjects, category, since):
        m = self.mark
        sql = (f"SELECT COUNT(*) AS n, MAX(amount_fen) AS top FROM risk_events WHERE account_id = {m} AND at > {m} "  # nosec B608
               f"AND counted = 1 AND subject IN ({', '.join([m] * len(subjects))})")
        params = [int(account), since, *subjects]
        if category is not None:
            sql += f" AND category = {m}"
            params.append(category)
        [row] = await self._rows(sql, params)
        return int(row["n"] or 0), int(row["top"] or 0)

    async def last_located(self, key, value, since):
        m = self.mark
        rows = await self._rows(
            f"SELECT at, lat, lng FROM risk_events WHERE {column(key)} = {m} AND at > {m} AND counted = 1 "  # nosec B608
            f"AND lat IS NOT NULL ORDER BY at DESC, id DESC LIMIT 1", [value, since])
        return (aware(rows[0]["at"]), rows[0]["lat"], rows[0]["lng"]) if rows else None

    async def first_seen(self, key, value, user, subjects=None):
        m = self.mark
        sql, params = f"SELECT MIN(at) AS first FROM risk_events WHERE {column(key)} = {m}", [value]  # nosec B608
        if user is not None:
            sql += f" AND user_id = {m}"
            params.append(int(user))
        if subjects is not None:
            sql += f" AND subject IN ({', '.join([m] * len(subjects))})"
            params += list(subjects)
        [row] = await self._rows(sql, params)
        return aware(row["first"]) if row["first"] is not None else None


def aware(value: datetime | str) -> datetime:
    """A time read back in plain SQL: MySQL gives it naive (UTC), SQLite as text."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


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
            self._first.setdefault((key, value, None, event.subject), event.at)
            if user is not None:
                self._first.setdefault((key, value, user), event.at)
                self._first.setdefault((key, value, user, event.subject), event.at)
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

    async def first_seen(self, key, value, user, subjects=None):
        if subjects is None:
            return self._first.get((key, value, user))
        seen = [at for subject in subjects if (at := self._first.get((key, value, user, subject))) is not None]
        return min(seen, default=None)


def keys_of(row: RiskEvent) -> dict[str, str]:
    from services.risk.rules import KEYS

    found = {}
    for key in KEYS:
        value = getattr(row, column(key))
        if value is not None:
            found[key] = str(value)
    return found
