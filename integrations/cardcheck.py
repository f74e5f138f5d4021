"""Client for the card network's element check (name, ID number, card number, reserved phone).

The network answers whether the four elements match what the card's bank holds, and the card's
class (Class I/II/III debit or credit). Outages and timeouts raise ``CardCheckUnavailable`` after
bounded retries; the service layer decides what a result means for the bank.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx


class CardCheckUnavailable(Exception):
    pass


@dataclass(frozen=True)
class CardCheckResult:
    request_id: str
    result: str  # MATCH | MISMATCH | CARD_NOT_FOUND
    mismatched_fields: tuple[str, ...]
    card_class: str | None  # I | II | III | credit
    bank_name: str | None


class CardCheckClient:
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
                    raise CardCheckUnavailable(f"card network refused the request: HTTP {resp.status_code}")
                reason = f"HTTP {resp.status_code}"
            if attempt < self._retries:
                # Same request_id on retry: the network answers it idempotently.
                await asyncio.sleep(0.2 * (attempt + 1))
        raise CardCheckUnavailable(reason)
