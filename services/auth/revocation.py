"""Access tokens of a revoked login stop working within seconds, with no database read per request.

An access JWT lives at most ``ACCESS_TTL_S`` (15 minutes) and is checked by signature alone. A login is
revoked by revoking its refresh-token family (logout, or a rotated refresh token presented again): the
family's rows get ``revoked_at``. Each worker keeps the families revoked within the last access-token
lifetime in memory (older ones' access tokens have expired anyway) and reloads that set every
``REVOCATION_POLL_S`` seconds (2 by default) with one indexed query; ``authenticate`` checks the token's
``sid`` against it, a set lookup. So a revocation reaches every worker on every host within one poll,
and the worker that revoked knows at once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core.clock import utcnow
from core.loops import forever
from models.users import RefreshToken


class Revocations:
    def __init__(self, *, window_s: float, poll_s: float) -> None:
        self.window_s = window_s  # how far back a revocation still matters: the access tokens' lifetime
        self.poll_s = poll_s
        self._families: frozenset[str] = frozenset()
        self._added: set[str] = set()  # revoked here since the last load

    def is_revoked(self, family: str) -> bool:
        return family in self._families or family in self._added

    def add(self, family: str) -> None:
        self._added.add(family)

    async def load(self) -> int:
        since = utcnow() - timedelta(seconds=self.window_s + self.poll_s)
        families = await RefreshToken.filter(revoked_at__gt=since).distinct().values_list("family", flat=True)
        added, self._families = set(self._added), frozenset(families)
        self._added -= added & self._families  # the database has them now
        return len(self._families)

    async def run(self, stop: asyncio.Event) -> None:
        """Reload until ``stop``; a failed load keeps the last set and is tried again (``core.loops.forever``)."""
        async def one_turn() -> None:
            await self.load()

        await forever("revocations", one_turn, stop, idle_s=self.poll_s)
