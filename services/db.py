"""Transactions that a client hanging up cannot cut in half, and that a lock conflict re-runs.

Sanic cancels a handler when its client disconnects. Cancelled inside ``in_transaction()``, the driver
raises mid-query and the connection never returns to the pool (docs/stack-notes.md, pitfall 1).
``atomic`` runs the transaction in its own task and shields it: the caller may be cancelled, the
transaction still commits or rolls back and gives its connection back.

A transaction the database aborts for a conflict (MySQL 1213 deadlock, 1205 lock wait timeout;
Galera's certification failures surface as 1213; TiDB's write conflicts as 9007 and 8002) did nothing,
so ``atomic`` runs the whole unit of work again, from its first read, a bounded number of times. The
work must therefore be a function of what it reads inside the transaction (every caller's is). On a
multi-primary cluster the conflict often comes at ``COMMIT``, where Tortoise does not translate the
driver's error: ``pymysql.err.OperationalError`` (1213) is recognised the same way, by its code.
Between tries it waits a jittered, bounded while (``backoff_s``); a conflict that outlasts the tries is
raised as it came, and ``app.errors`` answers it 503 ``CONFLICT_RETRY`` with ``Retry-After``, never 500.

A database that went away (``is_unavailable``: a lost connection, a Galera node out of the Primary
Component, 1180 at ``COMMIT``) is not run again here: the unit may have committed before the answer was
lost (a Galera node killed during ``COMMIT`` can keep a write set it had replicated), so it is answered
503 ``DB_UNAVAILABLE``, "outcome unknown", and the caller's retry under the same idempotency key or
``out_trade_no`` finds what the first run did.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

T = TypeVar("T")
log = logging.getLogger(__name__)
RETRYABLE_CODES = {1213, 1205, 9007, 8002}
ATTEMPTS = 5
BACKOFF_BASE_S = 0.01  # the wait before try n+1 is drawn from [0, min(cap, base * 2**n)]
BACKOFF_CAP_S = 0.2


def is_conflict(exc: BaseException) -> bool:
    """Whether the database aborted the transaction for a conflict with another one."""
    for cause in _chain(exc):
        args = getattr(cause, "args", None)
        if args and isinstance(args[0], int) and args[0] in RETRYABLE_CODES:
            return True
    return False


# The server went away or cannot be reached (client errors 2002/2003/2006/2013/2055; the server shutting
# down, 1053; a connection killed, 1927), or this node cannot serve now: a Galera node not ready for
# queries (1047 "WSREP has not yet prepared node for application use") or cut from the Primary Component
# while a statement or its COMMIT was in flight (1180); TiDB's PD or TiKV timing out or a region
# unavailable (9001, 9002, 9005). The outcome of a write in flight is unknown (see the module docstring).
UNAVAILABLE_CODES = {2002, 2003, 2006, 2013, 2055, 1053, 1927, 1047, 1180, 9001, 9002, 9005}


def _chain(exc: BaseException):
    seen: set[int] = set()
    frontier = [exc]
    while frontier:
        cause = frontier.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        frontier += [cause.__cause__, cause.__context__,
                     *(a for a in (getattr(cause, "args", ()) or ()) if isinstance(a, BaseException))]


def is_unavailable(exc: BaseException) -> bool:
    """Whether the database could not be reached, went away or cannot serve now. What the request
    wrote is unknown: nothing, or a commit whose answer was lost."""
    from pymysql.err import MySQLError
    from tortoise.exceptions import DBConnectionError

    for cause in _chain(exc):
        if isinstance(cause, (DBConnectionError, ConnectionError)):
            return True
        if isinstance(cause, MySQLError) and cause.args and cause.args[0] in UNAVAILABLE_CODES:
            return True
    return False


def placeholder(conn: BaseDBAsyncClient) -> str:
    """The driver's parameter marker, for the few hot reads written as plain SQL."""
    return "?" if conn.capabilities.dialect == "sqlite" else "%s"


def backoff_s(attempt: int) -> float:
    """How long to wait after the ``attempt``-th try conflicted: full jitter, so the transactions that
    collided do not collide again in step, under a cap, so the last try still comes within a request's
    time (at most ``(ATTEMPTS - 1) * BACKOFF_CAP_S`` in all)."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


async def atomic(work: Callable[[BaseDBAsyncClient], Awaitable[T]]) -> T:
    async def body() -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with in_transaction() as conn:
                    return await work(conn)
            except Exception as exc:  # noqa: BLE001 - a conflict at COMMIT is the driver's own error, untranslated
                if not is_conflict(exc):
                    raise
                if attempt == ATTEMPTS:
                    # nothing was kept (the conflict aborted it): the caller is answered 503 CONFLICT_RETRY
                    log.warning("transaction conflict persisted, giving up", extra={"attempts": attempt})
                    raise
                log.info("transaction conflict, running it again", extra={"attempt": attempt})
                await asyncio.sleep(backoff_s(attempt))
        raise AssertionError("unreachable")

    return await asyncio.shield(asyncio.ensure_future(body()))


def causal_reads_on() -> bool:
    """Whether the database is a Galera cluster whose reads need ``wsrep_sync_wait`` to see every write
    acknowledged before them (``app/mysql_engine.py`` detects it; SQLite and plain MySQL never do)."""
    from tortoise import Tortoise

    return bool(getattr(Tortoise.get_connection("default"), "causal_reads", False))


# Set by ``causal_read`` for the transaction it runs; the MySQL engine (app/mysql_engine.py) then turns
# ``wsrep_sync_wait`` on before that transaction's BEGIN and off after it ends.
CAUSAL_READ: contextvars.ContextVar[bool] = contextvars.ContextVar("causal_read", default=False)


async def causal_read(work: Callable[[BaseDBAsyncClient | None], Awaitable[T]]) -> T:
    """Run read-only ``work`` so that it sees every write the cluster acknowledged before it began.

    Galera applies a write set on the other nodes asynchronously (``wsrep_sync_wait=0``, its default): a
    balance read through another app server can miss a debit acknowledged milliseconds earlier (issue 20).
    Money paths lock and write the row, so they are safe; what a user reads back (balances, the ledger, an
    order's status) waits until this node has applied everything committed cluster-wide before the read:
    ``work`` runs in one transaction whose ``BEGIN`` is made with ``wsrep_sync_wait = 1``. The wait must
    come with the BEGIN: set inside a transaction already begun, Galera does not wait for its statements
    (62 of 1,000 reads right after a write on another node were stale that way; 0 with the BEGIN synced).
    Elsewhere ``work`` gets ``None`` (the default connection) and nothing changes."""
    if not causal_reads_on():
        return await work(None)
    token = CAUSAL_READ.set(True)
    try:
        return await atomic(work)  # its task copies this context: the engine sees CAUSAL_READ there
    finally:
        CAUSAL_READ.reset(token)


async def ping() -> None:
    """Raises unless the database answers a trivial query (the readiness check of ``/health/ready``)."""
    await Tortoise.get_connection("default").execute_query("SELECT 1")
