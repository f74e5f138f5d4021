"""Exceptions raised by the SDK. Catch :class:`OpenBankError` to catch them all."""

from __future__ import annotations

import json
from typing import Any


class OpenBankError(Exception):
    """Base class of every exception the SDK raises on purpose."""


class SignatureError(OpenBankError):
    """A signature, timestamp or signing header did not check out.

    Raised for a bank response that is unsigned or badly signed (do not trust its content) and for a
    notification that fails verification (answer it with a 401 and do not act on it).
    """


class ProtocolError(OpenBankError):
    """A correctly signed message that does not follow the documented shape (not JSON, missing fields,
    unexpected statement columns). Points at a version mismatch between SDK and bank."""


class NetworkError(OpenBankError):
    """No answer from the bank, even after the retries (connection refused, reset, timed out).

    The request may or may not have taken effect. Calling again with the same ``out_trade_no`` /
    ``out_refund_no`` and the same body is always safe: the bank answers a repeat with the first result.
    """


class OpenApiError(OpenBankError):
    """An error answer of the bank: ``{"error": {"code", "message", "field"?}}``.

    ``verified`` is True when the answer carried a valid signature. Answers to requests that failed
    authentication (401 ``PARTNER_AUTH_REQUIRED``, ``APP_ID_UNKNOWN``, ``TIMESTAMP_OUT_OF_RANGE``,
    ``SIGNATURE_INVALID``) are never signed, nor are errors of proxies in front of the bank (a 502 page):
    those come with ``verified=False``. ``replayed`` is True when the bank answered a repeated request
    with the stored first result (a debit refused for ``INSUFFICIENT_FUNDS`` stays refused).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        verified: bool = False,
        replayed: bool = False,
        body: Any = None,
    ) -> None:
        super().__init__(status, code, message, field)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.verified = verified
        self.replayed = replayed
        self.body = body

    @property
    def outcome_unknown(self) -> bool:
        """True for a 5xx (503 ``DB_UNAVAILABLE``, ``CONFLICT_RETRY``...): the bank could not say how the
        request ended, and it may have taken effect. Not "nothing was done": send it again later with the
        same ``out_trade_no`` / ``out_refund_no`` and body, never under a new number."""
        return self.status >= 500

    def __str__(self) -> str:
        where = f" (field: {self.field})" if self.field else ""
        return f"{self.status} {self.code}: {self.message}{where}"

    @classmethod
    def from_answer(cls, status: int, body: bytes, *, verified: bool, replayed: bool) -> OpenApiError:
        """Build one from an HTTP error answer, also when it is not the bank's JSON (a proxy's page)."""
        try:
            parsed = json.loads(body)
            error = parsed["error"]
            return cls(status, str(error["code"]), str(error.get("message", "")), error.get("field"),
                       verified=verified, replayed=replayed, body=parsed)
        except (ValueError, TypeError, KeyError, AttributeError):
            text = body.decode("utf-8", "replace").strip()
            return cls(status, f"HTTP_{status}", text[:200] or "no error body", None,
                       verified=verified, replayed=replayed, body=text)
