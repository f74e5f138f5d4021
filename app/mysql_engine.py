"""Tortoise's MySQL backend with two additions a cluster needs: a bound on every read from the server,
and knowing whether the server is a Galera node (for ``services.db.causal_read``).

**Read timeout.** ``connect_timeout`` bounds only the TCP connect. A pooled connection whose link is cut
silently (a partition drops packets; nothing refuses them) waits on its socket for as long as the cut
lasts: an app server cut from its node held requests for a whole partition (issue 20). aiomysql has no
read timeout (PyMySQL's ``read_timeout``), so every connection the pool hands out reads with a deadline:
a read that gets no byte for ``read_timeout`` seconds raises ``TimeoutError``, which aiomysql turns into
error 2013 ("Lost connection to MySQL server during query") after closing the connection. The pool then
drops it (so it recovers by itself once the link heals) and 2013 is a 503 ``DB_UNAVAILABLE``. Taking a
connection from the pool is bounded by ``connect_timeout`` (error 2003 past it): aiomysql connects while
holding the pool's lock, so behind a cut link the requests would otherwise queue one connect after another.
The bound is per read, so it must exceed the longest statement the server may take to answer: a lock
wait, and on Galera a commit held until a lost node is evicted (``evs.suspect_timeout``, 5-7 s by
default; docs/galera.md). ``read_timeout=0`` turns it off (a long batch command).

**Galera.** ``causal_reads=auto`` (the default) asks the server once, at connect, whether ``wsrep_on``
is set; ``on`` and ``off`` decide without asking. Plain MySQL, MariaDB without Galera and TiDB answer no.

Both are ``DATABASE_URL`` parameters, like ``connect_timeout``: ``mysql://…/db?read_timeout=10``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymysql.err import OperationalError
from tortoise.backends.base.client import TransactionContext, TransactionContextPooled
from tortoise.backends.mysql.client import MySQLClient, TransactionWrapper

from services.db import CAUSAL_READ

DEFAULT_READ_TIMEOUT_S = 10.0


class _ReadDeadline:
    """A connection's stream reader whose ``readexactly`` (all aiomysql reads) gives up after a while."""

    def __init__(self, reader: asyncio.StreamReader, timeout_s: float) -> None:
        self._reader, self._timeout_s = reader, timeout_s

    async def readexactly(self, n: int) -> bytes:
        # TimeoutError is an OSError: aiomysql's _read_bytes closes the connection and raises 2013
        return await asyncio.wait_for(self._reader.readexactly(n), self._timeout_s)

    def __getattr__(self, name: str) -> Any:  # at_eof, exception, eof_received, set_exception, …
        return getattr(self._reader, name)


def _bounded_pool(pool_class: type, read_timeout_s: float) -> type:
    class BoundedPool(pool_class):
        async def _acquire(self):
            # aiomysql opens a new connection while holding the pool's lock: with the link cut, every request
            # queues behind one connect attempt after another (5 s each), so the wait itself is bounded too
            wait_s = float(self._conn_kwargs.get("connect_timeout") or 5)
            try:
                conn = await asyncio.wait_for(super()._acquire(), wait_s)
            except TimeoutError as exc:
                raise OperationalError(2003, f"no database connection within {wait_s:g} s") from exc
            if read_timeout_s > 0 and not isinstance(conn._reader, _ReadDeadline):
                conn._reader = _ReadDeadline(conn._reader, read_timeout_s)
            return conn

    return BoundedPool


class _Transaction(TransactionWrapper):
    """A transaction that, for ``services.db.causal_read``, begins with ``wsrep_sync_wait = 1`` (Galera waits
    only at the BEGIN, not for statements inside a transaction already begun) and resets it at the end."""

    _synced = False

    async def begin(self) -> None:
        if CAUSAL_READ.get():
            await self._connection.query("SET SESSION wsrep_sync_wait = 1")
            self._synced = True
        await super().begin()

    async def commit(self) -> None:
        try:
            await super().commit()
        finally:
            await self._unsync()

    async def rollback(self) -> None:
        try:
            await super().rollback()
        finally:
            await self._unsync()

    async def _unsync(self) -> None:
        if not self._synced:
            return
        self._synced = False
        try:
            await self._connection.query("SET SESSION wsrep_sync_wait = 0")
        except Exception:  # noqa: BLE001 - never hand the setting on: a connection that cannot reset is dropped
            self._connection.close()


class BoundedMySQLClient(MySQLClient):
    def __init__(self, **kwargs: Any) -> None:
        self.read_timeout_s = float(kwargs.pop("read_timeout", DEFAULT_READ_TIMEOUT_S) or 0)
        self.causal_reads_setting = str(kwargs.pop("causal_reads", "auto")).lower()
        if self.causal_reads_setting not in ("auto", "on", "off"):
            raise ValueError(f"causal_reads must be auto, on or off, got {self.causal_reads_setting!r}")
        self.causal_reads = self.causal_reads_setting == "on"
        super().__init__(**kwargs)

    def _in_transaction(self) -> TransactionContext:
        return TransactionContextPooled(_Transaction(self), self._pool_init_lock)

    async def create_connection(self, with_db: bool) -> None:
        await super().create_connection(with_db)
        if self._pool is not None:
            # aiomysql builds its connections inside the pool and takes no read timeout: bound the reads of
            # each one the pool hands out (the pool object stays the same; only its acquire step grows)
            self._pool.__class__ = _bounded_pool(type(self._pool), self.read_timeout_s)
        if self.causal_reads_setting == "auto":
            async with self.acquire_connection() as conn, conn.cursor() as cur:
                await cur.execute("SHOW VARIABLES LIKE 'wsrep_on'")
                row = await cur.fetchone()
            self.causal_reads = bool(row) and str(row[1]).upper() == "ON"


client_class = BoundedMySQLClient
