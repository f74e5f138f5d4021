"""HTTP clients for ``/open/v1``: :class:`PartnerClient` (sync) and :class:`AsyncPartnerClient` (asyncio).

Every attempt is signed afresh (new timestamp, new nonce) over the exact path and query httpx puts on
the request line and the exact body bytes sent. Retries are safe by construction: only connection
failures, timeouts and 5xx answers are retried, always with the same body, so the same ``out_trade_no``
or ``out_refund_no``; the bank answers a repeat with the first result (``replayed``). A 4xx is never
retried. Every response is checked against its signature; an unsigned or badly signed success raises
:class:`SignatureError`, an unsigned error (a 401 for a request that failed authentication, a proxy's
5xx) is raised as :class:`OpenApiError` with ``verified=False``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import httpx

from ._version import __version__
from .errors import NetworkError, OpenApiError, ProtocolError, SignatureError
from .models import Debit, Refund, StatementRow, parse_statement
from .signing import new_nonce, sign_request, verify_response

__all__ = ["AsyncPartnerClient", "Category", "PartnerClient"]

Category = Literal["toll", "parking", "fuel", "carwash"]

_KEY_RE = re.compile(r"[A-Za-z0-9_-]{6,64}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Failures after which the request may not have reached the bank, or its answer was lost: safe to repeat.
# Not retried: UnsupportedProtocol, LocalProtocolError, ProxyError (configuration errors).
_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    replayed: bool


class _Base:
    """What the sync and async clients share: building signed requests, judging answers, the bodies."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        secret: str | Sequence[str],
        *,
        retries: int = 3,
        verify_responses: bool = True,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._app_id = app_id
        # The first secret signs; any of them verifies answers (keep the old one during a rotation).
        self._secrets = [secret] if isinstance(secret, str) else list(secret)
        if not self._secrets:
            raise ValueError("give the partner secret")
        self._retries = max(0, retries)
        self._verify = verify_responses
        self._backoff = backoff
        self._max_backoff = max_backoff

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": f"openbank-partner-sdk/{__version__}"}

    def _sign(self, request: httpx.Request) -> str:
        """Sign one attempt in place over what goes on the wire; returns its nonce."""
        nonce = new_nonce()
        target = request.url.raw_path.decode("ascii")
        request.headers.update(sign_request(self._secrets[0], self._app_id, request.method, target,
                                            request.content, nonce=nonce))
        return nonce

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: about backoff·2^attempt seconds, capped."""
        return min(self._max_backoff, self._backoff * 2**attempt) * random.uniform(0.5, 1.0)

    def _should_retry(self, response: httpx.Response | None, attempt: int) -> bool:
        return attempt < self._retries and (response is None or response.status_code >= 500)

    def _finish(self, response: httpx.Response, nonce: str) -> _Answer:
        body = response.content
        status = response.status_code
        verified = False
        if self._verify:
            if "X-Signature" in response.headers:
                verify_response(self._secrets, status, nonce, response.headers, body)
                verified = True
            elif response.is_success:
                raise SignatureError(f"the bank's {status} answer is not signed: not trusting it")
        replayed = response.headers.get("Idempotent-Replayed", "").strip().lower() == "true"
        if not response.is_success:
            raise OpenApiError.from_answer(status, body, verified=verified, replayed=replayed)
        return _Answer(status, body, replayed)

    def _gave_up(self, exc: Exception, attempts: int) -> NetworkError:
        return NetworkError(f"no answer from the bank after {attempts} attempt(s) ({exc!r}); the request may "
                            "or may not have taken effect: repeat it with the same business key and body")

    @staticmethod
    def _json(answer: _Answer) -> Any:
        try:
            return json.loads(answer.body)
        except ValueError as exc:
            raise ProtocolError(f"the bank's {answer.status} answer is not JSON") from exc

    # The bodies. Serialised once per call, so every retry sends the very same bytes.

    @staticmethod
    def _debit_body(
        out_trade_no: str, *, category: str, amount_fen: int, occurred_at: datetime | str, merchant: str,
        card_number: str | None, plate_number: str | None, plate_color: str | None, detail: str | None,
        location: tuple[float, float] | None = None,
    ) -> bytes:
        _check_key("out_trade_no", out_trade_no)
        if (card_number is None) == (plate_number is None):
            raise ValueError("give either card_number or plate_number and plate_color")
        if (plate_number is None) != (plate_color is None):
            raise ValueError("plate_number and plate_color go together")
        _check_amount(amount_fen)
        if isinstance(occurred_at, datetime):
            if occurred_at.utcoffset() is None:
                raise ValueError("occurred_at needs a time zone (RFC 3339 with an offset)")
            occurred_at = occurred_at.isoformat()
        body: dict[str, Any] = {"out_trade_no": out_trade_no}
        if card_number is not None:
            body["card_number"] = card_number
        else:
            body["plate_number"] = plate_number
            body["plate_color"] = plate_color
        body.update(category=category, amount_fen=amount_fen, occurred_at=occurred_at, merchant=merchant)
        if detail is not None:
            body["detail"] = detail
        if location is not None:
            lat, lng = (float(v) for v in location)
            if not (-90 <= lat <= 90 and -180 <= lng <= 180):
                raise ValueError("location is (lat, lng) in WGS-84 degrees")
            body["location"] = {"lat": lat, "lng": lng}
        return _dump(body)

    @staticmethod
    def _refund_body(out_trade_no: str, out_refund_no: str, amount_fen: int, reason: str | None) -> bytes:
        _check_key("out_trade_no", out_trade_no)
        _check_key("out_refund_no", out_refund_no)
        _check_amount(amount_fen)
        body: dict[str, Any] = {"out_refund_no": out_refund_no, "amount_fen": amount_fen}
        if reason is not None:
            body["reason"] = reason
        return _dump(body)

    @staticmethod
    def _statement_date(day: date | str) -> str:
        if isinstance(day, datetime):
            raise TypeError("pass the statement's date (a China Standard Time day), not a datetime")
        text = day.isoformat() if isinstance(day, date) else day
        if not _DATE_RE.fullmatch(text):
            raise ValueError("a statement date is YYYY-MM-DD")
        return text


class PartnerClient(_Base):
    """Synchronous client. Use as a context manager, or call :meth:`close`.

    ``base_url`` is the bank's origin (``https://bank.example``): the paths ``/open/v1/...`` are appended
    and signed as sent. ``secret`` is the partner secret, or a list whose first item signs requests and
    whose items all verify answers. ``retries`` is the number of repeats after the first attempt;
    ``transport`` an httpx transport (tests use :class:`httpx.MockTransport`).
    """

    def __init__(
        self,
        base_url: str,
        app_id: str,
        secret: str | Sequence[str],
        *,
        timeout: float = 10,
        retries: int = 3,
        verify_responses: bool = True,
        transport: httpx.BaseTransport | None = None,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        super().__init__(base_url, app_id, secret, retries=retries, verify_responses=verify_responses,
                         backoff=backoff, max_backoff=max_backoff)
        self._http = httpx.Client(timeout=timeout, transport=transport, headers=self._headers())

    def __enter__(self) -> PartnerClient:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def debit(
        self,
        out_trade_no: str,
        *,
        category: Category,
        amount_fen: int,
        occurred_at: datetime | str,
        merchant: str,
        card_number: str | None = None,
        plate_number: str | None = None,
        plate_color: str | None = None,
        detail: str | None = None,
        location: tuple[float, float] | None = None,
    ) -> Debit:
        """Debit the account bound to an ETC card (``card_number``) or a vehicle (``plate_number`` and
        ``plate_color``). Returns the debit (status ``succeeded``); a refusal for money raises
        :class:`OpenApiError` 422 ``INSUFFICIENT_FUNDS`` / ``LIMIT_EXCEEDED`` (booked as arrears); one the
        bank's risk control refuses raises 403 ``RISK_BLOCKED`` / ``RISK_REVIEW`` (recorded, neither booked nor owed).
        ``location``: where it happened, ``(lat, lng)`` in WGS-84 degrees (the toll gantry, the car park);
        the bank's risk control compares a vehicle's successive places with the time between them.
        If this raises :class:`NetworkError`, call again later with the same arguments."""
        body = self._debit_body(out_trade_no, category=category, amount_fen=amount_fen, occurred_at=occurred_at,
                                merchant=merchant, card_number=card_number, plate_number=plate_number,
                                plate_color=plate_color, detail=detail, location=location)
        answer = self._call("POST", "/open/v1/debits", body=body)
        return Debit.from_json(self._json(answer), replayed=answer.replayed)

    def get_debit(self, out_trade_no: str) -> Debit:
        """Look a debit up (404 ``DEBIT_NOT_FOUND`` when the bank has none under that number)."""
        _check_key("out_trade_no", out_trade_no)
        return Debit.from_json(self._json(self._call("GET", f"/open/v1/debits/{out_trade_no}")))

    def refund(self, out_trade_no: str, out_refund_no: str, amount_fen: int, reason: str | None = None) -> Refund:
        """Refund part or all of a debit; idempotent on ``out_refund_no`` (422 ``REFUND_EXCEEDS_DEBIT``)."""
        body = self._refund_body(out_trade_no, out_refund_no, amount_fen, reason)
        answer = self._call("POST", f"/open/v1/debits/{out_trade_no}/refund", body=body)
        return Refund.from_json(self._json(answer), replayed=answer.replayed)

    def statement(self, day: date | str) -> list[StatementRow]:
        """Every debit and refund booked on ``day`` (China Standard Time), parsed from the CSV."""
        answer = self._call("GET", "/open/v1/statements", params={"date": self._statement_date(day)})
        return parse_statement(answer.body)

    def _call(self, method: str, path: str, *, params: dict[str, str] | None = None, body: bytes = b"") -> _Answer:
        headers = {"Content-Type": "application/json"} if body else None
        attempt = 0
        while True:
            request = self._http.build_request(method, self._base_url + path, params=params,
                                               content=body or None, headers=headers)
            nonce = self._sign(request)
            try:
                response: httpx.Response | None = self._http.send(request)
            except _RETRYABLE as exc:
                if not self._should_retry(None, attempt):
                    raise self._gave_up(exc, attempt + 1) from exc
                response = None
            if response is not None and not self._should_retry(response, attempt):
                return self._finish(response, nonce)
            delay = self._delay(attempt)
            if delay > 0:
                time.sleep(delay)
            attempt += 1


class AsyncPartnerClient(_Base):
    """The asyncio twin of :class:`PartnerClient`: same arguments, same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        secret: str | Sequence[str],
        *,
        timeout: float = 10,
        retries: int = 3,
        verify_responses: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        super().__init__(base_url, app_id, secret, retries=retries, verify_responses=verify_responses,
                         backoff=backoff, max_backoff=max_backoff)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, headers=self._headers())

    async def __aenter__(self) -> AsyncPartnerClient:  # noqa: PYI034
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def debit(
        self,
        out_trade_no: str,
        *,
        category: Category,
        amount_fen: int,
        occurred_at: datetime | str,
        merchant: str,
        card_number: str | None = None,
        plate_number: str | None = None,
        plate_color: str | None = None,
        detail: str | None = None,
        location: tuple[float, float] | None = None,
    ) -> Debit:
        """See :meth:`PartnerClient.debit`."""
        body = self._debit_body(out_trade_no, category=category, amount_fen=amount_fen, occurred_at=occurred_at,
                                merchant=merchant, card_number=card_number, plate_number=plate_number,
                                plate_color=plate_color, detail=detail, location=location)
        answer = await self._call("POST", "/open/v1/debits", body=body)
        return Debit.from_json(self._json(answer), replayed=answer.replayed)

    async def get_debit(self, out_trade_no: str) -> Debit:
        """See :meth:`PartnerClient.get_debit`."""
        _check_key("out_trade_no", out_trade_no)
        return Debit.from_json(self._json(await self._call("GET", f"/open/v1/debits/{out_trade_no}")))

    async def refund(self, out_trade_no: str, out_refund_no: str, amount_fen: int, reason: str | None = None) -> Refund:
        """See :meth:`PartnerClient.refund`."""
        body = self._refund_body(out_trade_no, out_refund_no, amount_fen, reason)
        answer = await self._call("POST", f"/open/v1/debits/{out_trade_no}/refund", body=body)
        return Refund.from_json(self._json(answer), replayed=answer.replayed)

    async def statement(self, day: date | str) -> list[StatementRow]:
        """See :meth:`PartnerClient.statement`."""
        answer = await self._call("GET", "/open/v1/statements", params={"date": self._statement_date(day)})
        return parse_statement(answer.body)

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: bytes = b"") -> _Answer:
        headers = {"Content-Type": "application/json"} if body else None
        attempt = 0
        while True:
            request = self._http.build_request(method, self._base_url + path, params=params,
                                               content=body or None, headers=headers)
            nonce = self._sign(request)
            try:
                response: httpx.Response | None = await self._http.send(request)
            except _RETRYABLE as exc:
                if not self._should_retry(None, attempt):
                    raise self._gave_up(exc, attempt + 1) from exc
                response = None
            if response is not None and not self._should_retry(response, attempt):
                return self._finish(response, nonce)
            delay = self._delay(attempt)
            if delay > 0:
                await asyncio.sleep(delay)
            attempt += 1


def _check_key(name: str, value: object) -> None:
    """Business keys go into paths: hold them to the documented pattern before anything is sent."""
    if not isinstance(value, str) or not _KEY_RE.fullmatch(value):
        raise ValueError(f"{name} must be 6-64 characters of A-Z a-z 0-9 _ -")


def _check_amount(amount_fen: object) -> None:
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen < 1:
        raise ValueError("amount_fen is a positive whole number of fen")


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
