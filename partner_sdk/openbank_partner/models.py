"""What the bank answers, as dataclasses. Amounts are integer fen; times stay RFC 3339 strings as sent.

Every object keeps the JSON it was built from in ``raw`` (fields a newer bank adds show up there).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .errors import ProtocolError

__all__ = [
    "CHINA_STANDARD_TIME",
    "STATEMENT_COLUMNS",
    "Debit",
    "Notification",
    "Refund",
    "StatementRow",
    "china_today",
    "parse_statement",
]

#: Statements cut days in China Standard Time (UTC+8, no daylight saving).
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")

STATEMENT_COLUMNS = (
    "type", "out_trade_no", "out_refund_no", "category", "status", "amount_fen", "occurred_at", "booked_at",
    "card_number_masked", "plate_number", "plate_color", "merchant",
)


def china_today(now: datetime | None = None) -> date:
    """Today's date in China Standard Time: the ``date`` a statement of today's bookings takes."""
    return (now or datetime.now(timezone.utc)).astimezone(CHINA_STANDARD_TIME).date()


@dataclass(frozen=True)
class Debit:
    """A debit. ``status``: ``succeeded``, ``arrears`` (refused for money, owed by the customer; see
    ``refusal_code``) or ``settled`` (arrears paid). ``replayed``: the bank answered a repeat of the
    request with the stored first result (the debit was booked once, by an earlier attempt or call)."""

    out_trade_no: str
    status: str
    category: str
    amount_fen: int
    refunded_fen: int
    binding_id: int | str | None
    card_number_masked: str | None
    plate_number: str | None
    plate_color: str | None
    merchant: str
    occurred_at: str
    booked_at: str | None
    refusal_code: str | None
    replayed: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Any, *, replayed: bool = False) -> Debit:
        try:
            return cls(
                out_trade_no=obj["out_trade_no"], status=obj["status"], category=obj["category"],
                amount_fen=int(obj["amount_fen"]), refunded_fen=int(obj.get("refunded_fen") or 0),
                binding_id=obj.get("binding_id"), card_number_masked=obj.get("card_number_masked"),
                plate_number=obj.get("plate_number"), plate_color=obj.get("plate_color"),
                merchant=obj.get("merchant", ""), occurred_at=obj.get("occurred_at", ""),
                booked_at=obj.get("booked_at"), refusal_code=obj.get("refusal_code"),
                replayed=replayed, raw=obj,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"not a debit object: {exc!r}") from exc


@dataclass(frozen=True)
class Refund:
    """A refund of (part of) a debit; ``debit`` is the debit after it (see ``debit.refunded_fen``)."""

    out_refund_no: str
    out_trade_no: str
    amount_fen: int
    status: str
    refunded_at: str
    debit: Debit
    replayed: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Any, *, replayed: bool = False) -> Refund:
        try:
            return cls(
                out_refund_no=obj["out_refund_no"], out_trade_no=obj["out_trade_no"], amount_fen=int(obj["amount_fen"]),
                status=obj["status"], refunded_at=obj.get("refunded_at", ""),
                debit=Debit.from_json(obj["debit"]), replayed=replayed, raw=obj,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"not a refund object: {exc!r}") from exc


@dataclass(frozen=True)
class StatementRow:
    """One row of a daily statement: a debit (``out_refund_no`` is None) or a refund. Empty cells are None."""

    type: str
    out_trade_no: str
    out_refund_no: str | None
    category: str
    status: str
    amount_fen: int
    occurred_at: str
    booked_at: str
    card_number_masked: str | None
    plate_number: str | None
    plate_color: str | None
    merchant: str


def parse_statement(content: bytes | str) -> list[StatementRow]:
    """Parse a statement CSV (UTF-8, header row first; a byte-order mark is tolerated)."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in STATEMENT_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ProtocolError(f"statement lacks the columns {', '.join(missing)}")
    rows = []
    for line, rec in enumerate(reader, start=2):
        try:
            cells = {c: rec[c] if rec[c] is not None else "" for c in STATEMENT_COLUMNS}
            rows.append(StatementRow(
                type=cells["type"], out_trade_no=cells["out_trade_no"], out_refund_no=cells["out_refund_no"] or None,
                category=cells["category"], status=cells["status"], amount_fen=int(cells["amount_fen"]),
                occurred_at=cells["occurred_at"], booked_at=cells["booked_at"],
                card_number_masked=cells["card_number_masked"] or None,
                plate_number=cells["plate_number"] or None, plate_color=cells["plate_color"] or None,
                merchant=cells["merchant"],
            ))
        except ValueError as exc:
            raise ProtocolError(f"statement line {line}: {exc}") from exc
    return rows


@dataclass(frozen=True)
class Notification:
    """An event the bank POSTed. ``type``: ``binding.activated``, ``binding.suspended``, ``binding.unbound``
    (``data``: binding_id, card_number_masked, plate_number, plate_color, status) or ``arrears.settled``
    (``data``: binding_id, amount_fen, out_trade_nos). The bank redelivers an event until it gets a 2xx,
    always under the same ``event_id``: deduplicate on it."""

    event_id: str
    type: str
    occurred_at: str
    data: dict[str, Any]
    app_id: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
