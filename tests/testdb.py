"""The MySQL database the test suite runs on: one it created itself, or none at all.

The suite drops and rebuilds its database's schema on every run (which also proves the migrations),
so it must never be pointed at a database holding anything else. ``TEST_DATABASE_URL`` names the
database; the suite

* creates it when it does not exist, and marks it as its own with the table ``MARKER_TABLE``;
* reuses it (dropped and created afresh) when it carries that mark from an earlier run;
* refuses to start, touching nothing, when it exists without the mark, even if it is empty.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import pymysql

MARKER_TABLE = "_openbank_test_suite"
_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class NotOurDatabase(Exception):
    """The named database exists and was not created by this test suite."""


def _parts(url: str) -> tuple[dict, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not _NAME_RE.match(name):
        raise NotOurDatabase(f"TEST_DATABASE_URL must name a database ([A-Za-z0-9_]), got {name!r}")
    conn_args = dict(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        charset="utf8mb4",
        autocommit=True,
    )
    return conn_args, name


def _exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
    return cur.fetchone() is not None


def _is_ours(cur, name: str, marker: str) -> bool:
    cur.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s", (name, marker)
    )
    return cur.fetchone() is not None


def claim(url: str, *, marker: str = MARKER_TABLE) -> str:
    """Give the suite an empty database of its own at ``url``; returns its name. (The benchmarks use
    the same rule for theirs, with their own ``marker``.)

    Raises ``NotOurDatabase`` (having changed nothing) when the database exists without our mark."""
    conn_args, name = _parts(url)
    conn = pymysql.connect(**conn_args)
    try:
        with conn.cursor() as cur:
            if _exists(cur, name):
                if not _is_ours(cur, name, marker):
                    cur.execute(
                        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s", (name,)
                    )
                    (tables,) = cur.fetchone()
                    raise NotOurDatabase(
                        f"refusing to run the tests on database {name!r}: it exists ({tables} table(s)) and was "
                        f"not created by this test suite, which drops its tables. Point TEST_DATABASE_URL at a "
                        f"database name that does not exist yet; the suite creates it and reuses it afterwards."
                    )
                cur.execute(f"DROP DATABASE `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            cur.execute(
                f"CREATE TABLE `{name}`.`{marker}` (created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, "
                "note VARCHAR(255)) ENGINE=InnoDB"
            )
            cur.execute(
                f"INSERT INTO `{name}`.`{marker}` (note) VALUES (%s)",
                ("created by the openbank-mp tooling; dropped and rebuilt by every run",),
            )
    finally:
        conn.close()
    return name
