"""One place for "now", so tests and code agree on time zones (UTC everywhere, +08:00 only on display)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def china_today():
    """The banking day in China, for daily limits and counters."""
    return datetime.now(CHINA_TZ).date()
