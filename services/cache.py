"""A key/value cache in the database, shared by every worker and host (e.g. WeChat's access token)."""

from __future__ import annotations

from datetime import datetime, timezone

from tortoise.exceptions import IntegrityError

from models.infra import CacheEntry


class DbTokenStore:
    async def load(self, key: str) -> tuple[str, float] | None:
        row = await CacheEntry.get_or_none(key=key)
        if row is None:
            return None
        return row.value, row.expires_at.timestamp()

    async def save(self, key: str, token: str, expires_at: float) -> None:
        when = datetime.fromtimestamp(expires_at, tz=timezone.utc)
        updated = await CacheEntry.filter(key=key).update(value=token, expires_at=when)
        if not updated:
            try:
                await CacheEntry.create(key=key, value=token, expires_at=when)
            except IntegrityError:  # another worker created it first
                await CacheEntry.filter(key=key).update(value=token, expires_at=when)
