"""Client for the card network: the element check (name, ID number, card number, reserved phone) and
transfers between a card and the bank (a pull from the card, a push to it).

The element check answers whether the four elements match what the card's bank holds, and the card's
class (Class I/II/III debit or credit). Outages and timeouts raise ``CardNetworkUnavailable`` after
bounded retries; the service layer decides what a result means for the bank.

A transfer is sent once: when its answer is lost (a timeout, a dropped connection, a 5xx) the
outcome is unknown (``TransferOutcomeUnknown``) and the caller settles it by asking the network
about that request id (``get_transfer``), never by sending money again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import quote

import httpx


class CardNetworkUnavailable(Exception):
    pass


class TransferNotSent(CardNetworkUnavailable):
    """The connection to the network could not be made: the transfer certainly did not reach it."""


class TransferOutcomeUnknown(Exception):
    """The transfer may or may not have happened: ask the network about its request id."""


@dataclass(frozen=True)
class TransferAnswer:
    request_id: str
    status: str  # SUCCEEDED | DECLINED
    reason: str | None  # INSUFFICIENT_FUNDS | CARD_BLOCKED | CARD_NOT_FOUND when declined
    amount_fen: int
    direction: str  # debit (from the card) | credit (to the card)

    @classmethod
    def of(cls, data: dict) -> TransferAnswer:
        return cls(data["request_id"], data["status"], data.get("reason"), int(data["amount_fen"]), data["direction"])


@dataclass(frozen=True)
class CardCheckResult:
    request_id: str
    result: str  # MATCH | MISMATCH | CARD_NOT_FOUND
    mismatched_fields: tuple[str, ...]
    card_class: str | None  # I | II | III | credit
    bank_name: str | None


class CardNetworkClient:
    def __init__(self, *, base_url: str, api_key: str, http: httpx.AsyncClient, retries: int = 2) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self._http = http
        self._retries = retries

    async def verify_elements(
        self, *, request_id: str, name: str, id_number: str, card_number: str, phone: str
    ) -> CardCheckResult:
        body = {"request_id": request_id, "name": name, "id_number": id_number, "card_number": card_number, "phone": phone}
        for attempt in range(self._retries + 1):
            try:
                resp = await self._http.post(
                    f"{self.base_url}/v1/verify-elements", json=body, headers={"Authorization": f"Bearer {self._key}"}
                )
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                # Safe to send again: the network answers a repeated request_id with its first answer.
                reason = type(exc).__name__
            else:
                if resp.status_code == 200:
                    data = resp.json()
                    return CardCheckResult(
                        request_id=data["request_id"],
                        result=data["result"],
                        mismatched_fields=tuple(data.get("mismatched_fields") or ()),
                        card_class=data.get("card_class"),
                        bank_name=data.get("bank_name"),
                    )
                if resp.status_code < 500:
                    raise CardNetworkUnavailable(f"card network refused the request: HTTP {resp.status_code}")
                reason = f"HTTP {resp.status_code}"
            if attempt < self._retries:
                # Same request_id on retry: the network answers it idempotently.
                await asyncio.sleep(0.2 * (attempt + 1))
        raise CardNetworkUnavailable(reason)

    async def transfer(
        self, *, request_id: str, card_number: str, direction: str, amount_fen: int, memo: str | None = None
    ) -> TransferAnswer:
        """Move money from (``debit``) or to (``credit``) a card. Sent once; see the module docstring."""
        body = {"request_id": request_id, "card_number": card_number, "direction": direction, "amount_fen": amount_fen}
        if memo:
            body["memo"] = memo
        try:
            resp = await self._http.post(f"{self.base_url}/v1/transfers", json=body, headers=self._auth())
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransferNotSent(type(exc).__name__) from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise TransferOutcomeUnknown(type(exc).__name__) from exc
        if resp.status_code == 200:
            try:
                return TransferAnswer.of(resp.json())
            except (ValueError, KeyError, TypeError) as exc:
                raise TransferOutcomeUnknown("unreadable answer") from exc
        raise TransferOutcomeUnknown(f"HTTP {resp.status_code}")

    async def get_transfer(self, request_id: str) -> TransferAnswer | None:
        """What the network did with ``request_id``; None when it never received it."""
        reason = "no attempt"
        for attempt in range(self._retries + 1):
            try:
                resp = await self._http.get(f"{self.base_url}/v1/transfers/{quote(request_id, safe='')}",
                                            headers=self._auth())
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                reason = type(exc).__name__
            else:
                if resp.status_code == 200:
                    try:
                        return TransferAnswer.of(resp.json())
                    except (ValueError, KeyError, TypeError):
                        reason = "unreadable answer"
                elif resp.status_code == 404:
                    return None
                elif resp.status_code < 500:
                    raise CardNetworkUnavailable(f"card network refused the query: HTTP {resp.status_code}")
                else:
                    reason = f"HTTP {resp.status_code}"
            if attempt < self._retries:
                await asyncio.sleep(0.2 * (attempt + 1))
        raise CardNetworkUnavailable(reason)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}
