"""Abuse limits: requests per subject (a client IP, a user, a partner) in a fixed window, counted in the
database so that every worker and every host shares one count.

An operation names its limit in its declaration (``@operation(limit="login")``; every partner operation
has ``partner``), and the contract layer calls ``hit`` before the handler runs. Each call is one
statement: an upsert of the window's counter row that returns the new count (MySQL: ``ON DUPLICATE KEY
UPDATE hits = LAST_INSERT_ID(hits + 1)``; SQLite: ``ON CONFLICT ... RETURNING``). Past the limit the
answer is 429 ``RATE_LIMITED`` with ``Retry-After``: the seconds until the window ends. A fixed window
lets a client send up to twice the limit across a window's edge, which is the usual price of one
statement per request. On a multi-primary cluster two nodes may bump one row at once; the loser's
conflict is retried. Old windows are deleted by the worker (``sweep``).

``RATE_LIMITS`` configures them (``login=30/60,partner=6000/60``: count/seconds, over the defaults);
``RATE_LIMITS=off`` turns them all off, which production refuses.
"""

from __future__ import annotations

import math
import time

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from core.errors import RateLimited
from core.settings import Settings
from services.db import is_conflict, placeholder

# name -> (requests, window in seconds), and what it counts by
DEFAULTS: dict[str, tuple[int, int]] = {
    "login": (30, 60),  # per client IP: WeChat login codes exchanged (each costs a call to WeChat)
    "phone": (10, 3600),  # per user: phone numbers bound
    "identity": (30, 3600),  # per user: ID card, face and bank-card checks (each costs a paid upstream call)
    "upload": (60, 3600),  # per user: images uploaded
    "partner": (6000, 60),  # per partner: signed open-API requests (100 a second, sustained)
}
SUBJECTS = {"login": "ip", "phone": "user", "identity": "user", "upload": "user", "partner": "partner"}


def parse(text: str) -> dict[str, tuple[int, int]]:
    """``RATE_LIMITS``: ``off``, or ``name=count/seconds`` pairs over the defaults."""
    if text.strip().lower() == "off":
        return {}
    limits = dict(DEFAULTS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, rule = part.partition("=")
        count, _, seconds = rule.partition("/")
        if name.strip() not in DEFAULTS or not count.strip().isdigit() or not seconds.strip().isdigit():
            raise ValueError(f"RATE_LIMITS: {part!r} is not one of {sorted(DEFAULTS)} as name=count/seconds")
        if int(count) < 1 or int(seconds) < 1:
            raise ValueError(f"RATE_LIMITS: {part!r} must allow at least 1 request in at least 1 second")
        limits[name.strip()] = (int(count), int(seconds))
    return limits


def rule_of(settings: Settings, name: str) -> tuple[int, int] | None:
    limits = DEFAULTS if settings.rate_limits is None else settings.rate_limits
    return limits.get(name)


async def hit(settings: Settings, name: str, subject: str | int, *, now: float | None = None) -> None:
    """Count one request of ``subject`` under limit ``name``; ``RateLimited`` (429) past it."""
    rule = rule_of(settings, name)
    if rule is None:
        return
    allowed, window = rule
    now = time.time() if now is None else now
    start = int(now // window * window)
    count = await _bump(f"{name}:{subject}:{start}"[:160], start)
    if count > allowed:
        raise RateLimited(headers={"Retry-After": str(max(1, math.ceil(start + window - now)))})


async def _bump(bucket: str, start: int) -> int:
    conn: BaseDBAsyncClient = Tortoise.get_connection("default")
    mark = placeholder(conn)
    for attempt in range(3):
        try:
            if conn.capabilities.dialect == "sqlite":
                rows = await conn.execute_query_dict(
                    f"INSERT INTO rate_counters (bucket, window_start, hits) VALUES ({mark}, {mark}, 1) "  # nosec B608
                    "ON CONFLICT (bucket) DO UPDATE SET hits = hits + 1 RETURNING hits", [bucket, start])
                return int(rows[0]["hits"])
            # the new count comes back as the statement's insert id: 0 for a new row (one hit)
            found = await conn.execute_insert(
                f"INSERT INTO rate_counters (bucket, window_start, hits) VALUES ({mark}, {mark}, 1) "  # nosec B608
                "ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + 1)", [bucket, start])
            return int(found or 1)
        except Exception as exc:  # noqa: BLE001 - two cluster nodes bumped one row: count again
            if attempt == 2 or not is_conflict(exc):
                raise
    raise AssertionError("unreachable")


async def sweep(older_than_s: int = 24 * 3600) -> dict:
    """Delete windows that ended long ago (the worker's ``ratelimit.sweep``)."""
    conn: BaseDBAsyncClient = Tortoise.get_connection("default")
    mark = placeholder(conn)
    deleted = await conn.execute_query(f"DELETE FROM rate_counters WHERE window_start < {mark}",  # nosec B608
                                       [int(time.time()) - older_than_s])
    return {"deleted": deleted[0]}
