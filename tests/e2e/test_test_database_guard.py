"""The test suite only ever touches a MySQL database it created itself.

Pointed at a database that holds tables of its own (or that merely exists without the suite's mark),
``pytest`` refuses before any test runs, names the database, and leaves it exactly as it was."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pymysql
import pytest

from tests.conftest import MYSQL_URL
from tests.e2e.servers import ROOT
from tests.testdb import MARKER_TABLE, _parts, claim

pytestmark = pytest.mark.skipif(not MYSQL_URL, reason="needs MySQL (TEST_DATABASE_URL)")


def _server():
    conn_args, _ = _parts(MYSQL_URL)
    return pymysql.connect(**conn_args)


def _url_for(name: str) -> str:
    return MYSQL_URL.rsplit("/", 1)[0] + "/" + name


def _tables(cur, name: str) -> list[str]:
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (name,))
    return [r[0] for r in cur.fetchall()]


def _run_suite_against(name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TEST_DATABASE_URL": _url_for(name), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/unit/test_validators.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def foreign_db():
    """A database somebody else owns, with a table and a row of their own."""
    name = "openbank_foreign_" + secrets.token_hex(4)
    conn = _server()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"CREATE TABLE `{name}`.customers (id INT PRIMARY KEY, name VARCHAR(32))")
        cur.execute(f"INSERT INTO `{name}`.customers VALUES (1, 'keep me')")
    try:
        yield name, conn
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def test_suite_refuses_a_database_with_tables_of_its_own_and_touches_nothing(foreign_db):
    name, conn = foreign_db
    result = _run_suite_against(name)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert name in out and "refusing" in out, out
    with conn.cursor() as cur:
        assert _tables(cur, name) == ["customers"]
        cur.execute(f"SELECT id, name FROM `{name}`.customers")
        assert cur.fetchall() == ((1, "keep me"),)


def test_suite_refuses_an_existing_empty_database_it_did_not_create(foreign_db):
    name, conn = foreign_db
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE `{name}`.customers")
    result = _run_suite_against(name)
    assert result.returncode != 0 and name in result.stdout + result.stderr
    with conn.cursor() as cur:
        assert _tables(cur, name) == []


def test_suite_creates_its_own_database_and_reuses_it_afterwards():
    name = "openbank_guard_" + secrets.token_hex(4)
    conn = _server()
    try:
        assert claim(_url_for(name)) == name
        with conn.cursor() as cur:
            assert _tables(cur, name) == [MARKER_TABLE]
            cur.execute(f"CREATE TABLE `{name}`.leftover (id INT)")  # what a run leaves behind
        assert claim(_url_for(name)) == name  # ours: dropped and made afresh
        with conn.cursor() as cur:
            assert _tables(cur, name) == [MARKER_TABLE]
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
