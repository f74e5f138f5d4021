"""Money is an integer number of fen, never a float: the bound one movement may carry, and yuan as text.

``MAX_AMOUNT_FEN`` (¥10 billion) bounds every amount a caller may send, so that any sum of them stays far
inside a signed BIGINT. ``yuan`` writes fen as yuan from the integer itself: a float would round amounts
past 2^53 fen and is one conversion away from a wrong cent.
"""

from __future__ import annotations

MAX_AMOUNT_FEN = 10**12


def yuan(fen: int, *, grouped: bool = True) -> str:
    """``-123456`` -> ``"-1,234.56"`` (``grouped=False``: ``"-1234.56"``)."""
    whole, cents = divmod(abs(fen), 100)
    sign = "-" if fen < 0 else ""
    return f"{sign}{whole:,}.{cents:02d}" if grouped else f"{sign}{whole}.{cents:02d}"
