"""What the console's filters and forms are checked with, in one place: a bounded text, a day, a choice
from a set, and a staff member's reason. Each refusal is a ``ValidationFailed`` (or the ``error`` given)
naming the field."""

from __future__ import annotations

from datetime import date

from core.errors import AppError, ValidationFailed

REASON_MIN, REASON_MAX = 4, 200


def text(args: dict, name: str, max_len: int) -> str:
    value = (args.get(name) or "").strip()
    if len(value) > max_len:
        raise ValidationFailed(f"「{name}」最多 {max_len} 个字符", field=name)
    return value


def day(args: dict, name: str) -> date | None:
    """``YYYY-MM-DD``, or None when absent."""
    value = (args.get(name) or "").strip()
    if not value:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"「{name}」须为日期 YYYY-MM-DD", field=name) from None


def choice(args: dict, name: str, allowed) -> str:
    value = (args.get(name) or "").strip()
    if value and value not in allowed:
        raise ValidationFailed(f"「{name}」取值无效", field=name)
    return value


def reason(value: str, *, field: str = "reason", what: str = "原因",
           error: type[AppError] = ValidationFailed) -> str:
    """Why a member acts: 4 to 200 characters, stripped."""
    value = (value or "").strip()
    if not REASON_MIN <= len(value) <= REASON_MAX:
        raise error(f"请填写{what}（{REASON_MIN} 到 {REASON_MAX} 个字符）", field=field)
    return value
