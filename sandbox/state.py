"""Persistent state of the sandbox emulators, kept in one SQLite file (aiosqlite, WAL mode).

Nothing lives in process memory (except a per-process connection and the cached image-signing key),
because the backend may run several Sanic worker processes that each mount the sandbox blueprint:
they all share the file given by ``SandboxConfig.state_path``. Each process, when it opens the file,
adds columns a state file of an older sandbox lacks and runs the seed it was given (the configured
subscribe templates and pages, see :func:`sandbox.subscribe.make_seed`).

Concurrency rules:
- one aiosqlite connection per process, in autocommit mode; an ``asyncio.Lock`` serialises its use,
  so a coroutine never runs a statement inside another coroutine's open transaction;
- anything that must be atomic across processes is either one statement (``UPDATE … RETURNING``)
  or runs in ``BEGIN IMMEDIATE`` (see :meth:`State.tx`); ``busy_timeout`` makes the other
  processes wait for the write lock instead of failing.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

import aiosqlite

BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    appid TEXT NOT NULL,
    openid TEXT NOT NULL,
    unionid TEXT,
    session_key TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (appid, openid)
);
CREATE TABLE IF NOT EXISTS login_codes (
    code TEXT PRIMARY KEY,
    appid TEXT NOT NULL,
    openid TEXT NOT NULL,
    unionid TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS phone_codes (
    code TEXT PRIMARY KEY,
    appid TEXT NOT NULL,
    phone TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS access_tokens (
    token TEXT PRIMARY KEY,
    appid TEXT NOT NULL,
    family TEXT NOT NULL,            -- 'basic' (cgi-bin/token) or 'stable' (cgi-bin/stable_token)
    forced INTEGER NOT NULL DEFAULT 0, -- stable token issued by force_refresh
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS access_tokens_by_app ON access_tokens (appid, family, issued_at);
CREATE TABLE IF NOT EXISTS face_verifications (
    verify_id TEXT PRIMARY KEY,
    appid TEXT NOT NULL,
    openid TEXT NOT NULL,
    out_seq_no TEXT NOT NULL,
    cert_type TEXT NOT NULL,
    cert_name TEXT NOT NULL,
    cert_no TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    verify_ret INTEGER,              -- NULL while the user has not finished
    finished_at REAL,
    UNIQUE (appid, out_seq_no)
);
CREATE TABLE IF NOT EXISTS subscribe_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    appid TEXT NOT NULL,
    touser TEXT NOT NULL,
    template_id TEXT NOT NULL,
    page TEXT,
    data_json TEXT NOT NULL,
    miniprogram_state TEXT,
    lang TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS subscribe_messages_by_user ON subscribe_messages (touser);
-- What each user accepted with wx.requestSubscribeMessage (POST /sandbox/control/subscriptions): one
-- message per acceptance of a one-time template, spent by subscribe/send (see sandbox.subscribe).
CREATE TABLE IF NOT EXISTS subscriptions (
    appid TEXT NOT NULL,
    openid TEXT NOT NULL,
    template_id TEXT NOT NULL,
    remaining INTEGER NOT NULL,      -- acceptances not yet spent by a message
    accepted_at REAL NOT NULL,       -- the last acceptance
    spent_at REAL,                   -- the last message that spent one
    PRIMARY KEY (appid, openid, template_id)
);
CREATE TABLE IF NOT EXISTS bank_cards (
    card_number TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    id_number TEXT NOT NULL,
    phone TEXT NOT NULL,
    card_class TEXT NOT NULL,
    balance_fen INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    blocked INTEGER NOT NULL DEFAULT 0     -- 1: every transfer is declined with CARD_BLOCKED
);
CREATE TABLE IF NOT EXISTS cardnet_requests (
    request_id TEXT PRIMARY KEY,
    response_json TEXT NOT NULL,
    at REAL NOT NULL
);
-- Money movements on the card network: one row per request_id received, declined ones included,
-- written in the same transaction as the balance change (see sandbox.cardnet.execute_transfer).
CREATE TABLE IF NOT EXISTS cardnet_transfers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order they were received in
    request_id TEXT NOT NULL UNIQUE,
    card_number TEXT NOT NULL,
    direction TEXT NOT NULL,               -- 'debit' (from the card) or 'credit' (to it)
    amount_fen INTEGER NOT NULL,
    memo TEXT,
    status TEXT NOT NULL,                  -- 'SUCCEEDED' or 'DECLINED'
    reason TEXT,
    response_json TEXT NOT NULL,           -- the answer, given again for a repeat of the request_id
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cardnet_transfers_by_card ON cardnet_transfers (card_number, id);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    errcode INTEGER,
    http_status INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_path ON calls (path, id);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    errcode INTEGER,
    http_status INTEGER,
    delay_s REAL,
    remaining INTEGER NOT NULL,
    created_at REAL NOT NULL,
    phase TEXT NOT NULL DEFAULT 'before',  -- 'before' (instead of the work) or 'after' (once it is done)
    drop_conn INTEGER NOT NULL DEFAULT 0,  -- close the connection without a reply
    body_json TEXT                         -- reply HTTP 200 with exactly this JSON body
);
CREATE INDEX IF NOT EXISTS faults_by_path ON faults (path, remaining, id);
CREATE TABLE IF NOT EXISTS subscribe_templates (
    appid TEXT NOT NULL,
    template_id TEXT NOT NULL,
    title TEXT NOT NULL,
    keywords_json TEXT NOT NULL,     -- {"thing1": "label", "amount2": "label", ...}
    source TEXT NOT NULL,            -- 'config' (seeded from SandboxConfig) or 'control' (registered at run time)
    updated_at REAL NOT NULL,
    PRIMARY KEY (appid, template_id)
);
"""

# Columns added after the first release: a state file created by an older sandbox gets them on open
# (CREATE TABLE IF NOT EXISTS does not change an existing table).
ADDED_COLUMNS = {
    "faults": (
        ("phase", "TEXT NOT NULL DEFAULT 'before'"),
        ("drop_conn", "INTEGER NOT NULL DEFAULT 0"),
        ("body_json", "TEXT"),
    ),
    "bank_cards": (("blocked", "INTEGER NOT NULL DEFAULT 0"),),
}


@dataclass(frozen=True)
class Fault:
    """One pending injected fault, as consumed by :meth:`State.take_fault`."""

    id: int
    when: str  # 'before' | 'after'
    errcode: int | None
    http_status: int | None
    delay_s: float | None
    drop: bool
    body: dict[str, Any] | None


class State:
    """Access to the shared SQLite state; one instance per blueprint, one connection per process."""

    def __init__(self, path: str, seed: Callable[[Tx], Awaitable[None]] | None = None):
        self.path = path
        # Writes the configured defaults (templates, pages) into the DB, in one transaction, each
        # time a process opens the file; it must leave run-time changes made by the control API alone.
        self._seed = seed
        self._db: aiosqlite.Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._open_lock: asyncio.Lock | None = None
        self._pid: int | None = None
        self._image_key: bytes | None = None
        # API paths registered by the blueprints (static metadata, used to validate fault paths)
        self.api_paths: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None and self._pid == os.getpid():
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._db is not None and self._pid == os.getpid():
                return
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            db = await aiosqlite.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            db.row_factory = sqlite3.Row
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await self._retry_locked(lambda: db.execute("PRAGMA journal_mode = WAL"))
            await db.execute("PRAGMA synchronous = NORMAL")
            await self._retry_locked(lambda: db.executescript(SCHEMA))
            await self._retry_locked(lambda: self._add_columns(db))
            await db.execute(
                "INSERT OR IGNORE INTO settings (key, value) VALUES ('image_hmac_key', ?)",
                (secrets.token_hex(32),),
            )
            async with db.execute("SELECT value FROM settings WHERE key = 'image_hmac_key'") as cur:
                row = await cur.fetchone()
            self._image_key = bytes.fromhex(row["value"])
            if self._seed is not None:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    await self._seed(Tx(db))
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
            self._lock = asyncio.Lock()
            self._db = db
            self._pid = os.getpid()

    @staticmethod
    async def _retry_locked(action, attempts: int = 50) -> None:
        # Changing the journal mode or the schema needs an exclusive lock; several workers
        # starting at once may collide even with busy_timeout set.
        for i in range(attempts):
            try:
                await action()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or i == attempts - 1:
                    raise
                await asyncio.sleep(0.05)

    @staticmethod
    async def _add_columns(db: aiosqlite.Connection) -> None:
        for table, columns in ADDED_COLUMNS.items():
            async with db.execute(f"PRAGMA table_info({table})") as cur:
                present = {row["name"] for row in await cur.fetchall()}
            for name, decl in columns:
                if name in present:
                    continue
                try:
                    await db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):  # another process added it first
                        raise

    async def close(self) -> None:
        db, pid = self._db, self._pid
        self._db = None  # idempotent: a second call (e.g. a repeated shutdown signal) does nothing
        self._pid = None
        if db is not None and pid == os.getpid():
            lock = self._lock
            if lock is not None:
                async with lock:  # let a statement in flight finish first
                    await db.close()
            else:
                await db.close()

    async def _conn(self) -> aiosqlite.Connection:
        if self._db is None or self._pid != os.getpid():
            await self.open()
        assert self._db is not None
        return self._db

    @property
    def image_key(self) -> bytes:
        assert self._image_key is not None, "state not opened"
        return self._image_key

    async def get_image_key(self) -> bytes:
        await self._conn()
        return self.image_key

    # -- statements --------------------------------------------------------------------------

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        db = await self._conn()
        async with self._lock:  # type: ignore[union-attr]
            async with db.execute(sql, tuple(params)) as cur:
                return await cur.fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        db = await self._conn()
        async with self._lock:  # type: ignore[union-attr]
            async with db.execute(sql, tuple(params)) as cur:
                return list(await cur.fetchall())

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement (its own transaction); return the number of rows changed."""
        db = await self._conn()
        async with self._lock:  # type: ignore[union-attr]
            async with db.execute(sql, tuple(params)) as cur:
                return cur.rowcount

    @asynccontextmanager
    async def tx(self) -> AsyncIterator["Tx"]:
        """A write transaction (BEGIN IMMEDIATE: takes the cross-process write lock up front).

        Safe against cancellation (Sanic cancels a handler whose client hung up): aiosqlite runs a
        queued statement even when the coroutine awaiting it was cancelled, so a cancelled ``BEGIN``
        still opens the transaction and a cancelled ``COMMIT`` still commits. Hence BEGIN and COMMIT
        sit inside the ``try`` and any exception queues a ROLLBACK behind them (statements run in
        order): the transaction is then either committed whole or rolled back whole, and the
        connection is never left inside an open transaction holding the write lock."""
        db = await self._conn()
        async with self._lock:  # type: ignore[union-attr]
            try:
                await db.execute("BEGIN IMMEDIATE")
                yield Tx(db)
                await db.execute("COMMIT")
            except BaseException:
                try:
                    await db.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass  # no transaction open: BEGIN failed, or the COMMIT queued before went through
                raise

    # -- shared helpers ----------------------------------------------------------------------

    async def record_call(self, path: str, errcode: int | None, http_status: int) -> None:
        await self.execute(
            "INSERT INTO calls (path, errcode, http_status, at) VALUES (?, ?, ?, ?)",
            (path, errcode, http_status, time.time()),
        )

    async def take_fault(self, path: str) -> Fault | None:
        """Consume one pending fault for ``path`` (atomically, across processes)."""
        row = await self.fetchone(
            """
            UPDATE faults SET remaining = remaining - 1
            WHERE id = (SELECT id FROM faults WHERE path = ? AND remaining > 0 ORDER BY id LIMIT 1)
            RETURNING id, errcode, http_status, delay_s, phase, drop_conn, body_json
            """,
            (path,),
        )
        if row is None:
            return None
        return Fault(
            id=row["id"],
            when=row["phase"],
            errcode=row["errcode"],
            http_status=row["http_status"],
            delay_s=row["delay_s"],
            drop=bool(row["drop_conn"]),
            body=None if row["body_json"] is None else json.loads(row["body_json"]),
        )

    async def get_setting(self, key: str, default: Any) -> Any:
        row = await self.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        if row is None:
            return default
        return type(default)(row["value"]) if default is not None else row["value"]

    async def set_setting(self, key: str, value: Any) -> None:
        await self.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )


class Tx:
    """Statements inside :meth:`State.tx` (the lock is already held)."""

    def __init__(self, db: aiosqlite.Connection):
        self._db = db

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self._db.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self._db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        async with self._db.execute(sql, tuple(params)) as cur:
            return cur.rowcount
