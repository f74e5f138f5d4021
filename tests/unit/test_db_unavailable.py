"""Which failures mean "the database is not there" (503 ``DB_UNAVAILABLE``, outcome unknown, retry) rather than a
bug (500), and which are conflicts ``atomic`` runs again."""

from __future__ import annotations

import pymysql
import pytest
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from services.db import is_conflict, is_unavailable


@pytest.mark.parametrize("exc", [
    pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1'"),
    OperationalError(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")),
    OperationalError(pymysql.err.OperationalError(2006, "MySQL server has gone away")),
    pymysql.err.OperationalError(1053, "Server shutdown in progress"),
    pymysql.err.OperationalError(1047, "WSREP has not yet prepared node for application use"),
    # a Galera node cut from the Primary Component while a statement (or its COMMIT) was in flight
    OperationalError(pymysql.err.OperationalError(1180, "Not connected to Primary Component")),
    pymysql.err.OperationalError(1180, "Got error 6 \"No such device or address\" during COMMIT"),
    DBConnectionError("pool closed"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
])
def test_an_unreachable_database_is_unavailable(exc):
    assert is_unavailable(exc)


def test_a_cause_further_down_counts():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("while acquiring a connection") from inner
    except RuntimeError as outer:
        assert is_unavailable(outer)


@pytest.mark.parametrize("exc", [
    pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"),
    IntegrityError(pymysql.err.IntegrityError(1062, "Duplicate entry")),
    ValueError("a bug"),
    KeyError(2003),  # an int argument is not enough: it must be the driver's error
])
def test_other_failures_are_not(exc):
    assert not is_unavailable(exc)
    assert is_conflict(exc) == (isinstance(exc, pymysql.err.OperationalError) and exc.args[0] == 1213)


@pytest.mark.parametrize("code", [1213, 1205, 9007, 8002])
def test_conflicts_are_retryable_and_not_an_outage(code):
    exc = OperationalError(pymysql.err.OperationalError(code, "conflict"))
    assert is_conflict(exc) and not is_unavailable(exc)


def test_a_node_out_of_the_primary_component_is_not_run_again_as_a_conflict():
    # its COMMIT may have been kept elsewhere: re-running the unit could do it twice
    assert not is_conflict(pymysql.err.OperationalError(1180, "Not connected to Primary Component"))
