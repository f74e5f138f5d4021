"""Newest-first pages by id (keyset pagination): the cursor is opaque to the caller, here the id of the
last row of the previous page, so a page is one indexed range scan however deep the caller goes and rows
added meanwhile never shift it."""

from __future__ import annotations

from typing import Any

from tortoise.queryset import QuerySet

from core.errors import ValidationFailed

MAX_PAGE = 100


class CursorInvalid(ValidationFailed):
    code, message = "CURSOR_INVALID", "分页游标无效"


def decode_cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and 1 <= len(value) <= 19) or not 1 <= int(value) < 2**63:
        raise CursorInvalid(field="cursor")
    return int(value)


async def newest_first(query: QuerySet, *, cursor: str | None, limit: int) -> tuple[list[Any], str | None]:
    """A page of ``query`` newest first, and the cursor of the next page (None at the end)."""
    before = decode_cursor(cursor)
    if before is not None:
        query = query.filter(id__lt=before)
    page = await query.order_by("-id").limit(limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return page, (str(page[-1].id) if more else None)
