"""One place for "now", so tests and code agree on time zones (UTC everywhere, +08:00 only on display)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def china_day(at: datetime | None = None) -> date:
    """The banking day in China (UTC+8) that ``at`` falls on (now when omitted): daily limits and counters,
    statements, ID expiry and age. Callers with a clock of their own pass ``at``, so a test that moves it
    moves the day too."""
    return (utcnow() if at is None else at).astimezone(CHINA_TZ).date()
