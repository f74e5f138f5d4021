"""A commit that survives while its answer is lost, without a cluster.

What a Galera node killed during ``COMMIT`` can do (docs/galera.md): the write set was replicated and
is kept, the client sees its connection drop. Here the transaction commits for real and then
``services.db.atomic`` sees the driver's "lost connection" (2013), once, for the first commit after which
``made()`` holds (the one that wrote what the test is about). Only ``atomic``'s transactions pass here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pymysql

from services import db


def lose_the_answer_after_commit(monkeypatch, made: Callable[[], Awaitable[bool]]) -> list[str]:
    """Arm the fault; the returned list gets one entry when it has fired."""
    real = db.in_transaction
    fired: list[str] = []

    class Committing:
        def __init__(self, *args, **kwargs) -> None:
            self._inner = real(*args, **kwargs)

        async def __aenter__(self):
            return await self._inner.__aenter__()

        async def __aexit__(self, exc_type, exc, tb):
            suppress = await self._inner.__aexit__(exc_type, exc, tb)  # COMMIT (or ROLLBACK) for real
            if exc_type is None and not fired and await made():
                fired.append("commit kept, answer lost")
                raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
            return suppress

    monkeypatch.setattr(db, "in_transaction", Committing)
    return fired
