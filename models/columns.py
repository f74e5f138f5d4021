"""Column types shared by the model modules.

``ExactCharField`` is for identifiers a caller chooses and we look up or keep unique: a partner's
``out_trade_no`` and ``out_refund_no``, request nonces, ``Idempotency-Key`` values, WeChat Pay order
and refund numbers. They compare byte for byte. SQLite does that by default; MySQL compares text with
the table's collation (``utf8mb4_unicode_ci``), which folds case and accents, so ``X1`` and ``x1`` would
be one debit and ``AbC`` a replay of the nonce ``abc``. On MySQL the column is ``utf8mb4_bin``.
"""

from __future__ import annotations

from tortoise import fields


class ExactCharField(fields.CharField):
    """A ``CharField`` compared exactly (case- and accent-sensitive) on every database."""

    class _db_mysql:
        def __init__(self, field: fields.CharField) -> None:
            self.field = field

        @property
        def SQL_TYPE(self) -> str:
            return f"VARCHAR({self.field.max_length}) COLLATE utf8mb4_bin"
