"""Helpers for the partner open API: a partner with credentials, requests signed as docs/open-api.md
says (implemented here on its own, with hashlib and hmac: a bug in the server's signing cannot hide by
being repeated), a car bound for auto-debit, and debits."""

from __future__ import annotations

import hashlib
import hmac
import json as jsonlib
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus, urlsplit

import httpx

from tests.account_helpers import open_account, top_up
from tests.contract_helpers import fresh_face, sign, signature_upload


def canonical_query(query: str) -> str:
    pairs = sorted((unquote_plus(n), unquote_plus(v)) for n, _, v in (p.partition("=") for p in query.split("&") if p))
    return "&".join(f"{quote(n, safe='-_.~')}={quote(v, safe='-_.~')}" for n, v in pairs)


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signed_string(method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join([method, path, canonical_query(query), timestamp, nonce, hashlib.sha256(body).hexdigest()])


def partner_headers(app_id: str, secret: str, method: str, url: str, body: bytes = b"", *,
                    timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The four signing headers for a request to ``url`` (a path with its query) with ``body``."""
    parts = urlsplit(url)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(12)
    text = signed_string(method.upper(), parts.path, parts.query, ts, nonce, body)
    return {"X-App-Id": app_id, "X-Timestamp": ts, "X-Nonce": nonce, "X-Signature": hmac_hex(secret, text)}


@dataclass
class PartnerCreds:
    app_id: str
    secret: str
    scopes: list[str]

    def headers(self, method: str, url: str, body: bytes = b"", *, timestamp: int | None = None,
                nonce: str | None = None, secret: str | None = None) -> dict[str, str]:
        return partner_headers(self.app_id, secret or self.secret, method, url, body, timestamp=timestamp, nonce=nonce)


async def new_partner(ctx, scopes=("etc:debit", "parking:debit", "fuel:debit", "carwash:debit", "etc:read"),
                      callback_url: str | None = None, card_networks: tuple[str, ...] = ()) -> PartnerCreds:
    from services.partners import registry

    made = await registry.create(ctx, name="测试合作方", scopes=list(scopes), callback_url=callback_url,
                                 card_networks=list(card_networks))
    return PartnerCreds(made.partner.app_id, made.secret, list(made.partner.scopes))


async def call(client: httpx.AsyncClient, partner: PartnerCreds, method: str, url: str, body: dict | bytes | None = None,
               **sign_kw) -> httpx.Response:
    raw = body if isinstance(body, bytes) else (jsonlib.dumps(body).encode() if body is not None else b"")
    headers = partner.headers(method, url, raw, **sign_kw)
    if body is not None:
        headers["Content-Type"] = "application/json"
    return await client.request(method, url, content=raw, headers=headers)


def response_signature_ok(partner: PartnerCreds, resp: httpx.Response, request_nonce: str) -> bool:
    text = "\n".join(["RESPONSE", f"{resp.status_code:03d}", request_nonce, resp.headers["X-Timestamp"],
                      resp.headers["X-Nonce"], hashlib.sha256(resp.content).hexdigest()])
    return hmac.compare_digest(hmac_hex(partner.secret, text), resp.headers.get("X-Signature", ""))


TEST_CARD_NETWORK = "1101"  # every test ETC card's network number (Beijing)


def etc_card() -> str:
    from tests.logscan import record

    return record(TEST_CARD_NETWORK + "".join(secrets.choice("0123456789") for _ in range(16)))


_plates = iter(range(1, 10**6))


def new_plate() -> str:
    """A plate no other test has used in this run (京 + authority letter + 5 digits)."""
    n = next(_plates) + secrets.randbelow(1000) * 1000
    return f"京{'ABCDEFGHJKLMNPQRSTUVWXYZ'[n % 24]}{n % 100000:05d}"


@dataclass
class BoundCar:
    user: object
    person: object
    account: dict
    vehicle: dict
    binding: dict
    card_number: str


async def register_vehicle(client, user, plate: str | None = None, color: str = "blue") -> dict:
    resp = await client.post("/api/v1/vehicles", headers=user.headers,
                             json={"plate_number": plate or new_plate(), "plate_color": color})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


async def start_binding(client, user, vehicle_id: int, account_id: int, card_number: str) -> httpx.Response:
    return await client.post("/api/v1/etc-bindings", headers=user.headers, json={
        "vehicle_id": vehicle_id, "card_number": card_number, "account_id": account_id})


async def sign_authorisation(client, sandbox, user, contract_id: int) -> None:
    resp = await sign(client, user, contract_id, verify_id=await fresh_face(client, sandbox, user),
                      upload_id=await signature_upload(client, user))
    assert resp.status_code == 200, resp.text


async def bound_car(client, sandbox, *, balance_fen: int = 0, user=None, person=None, account=None) -> BoundCar:
    """A user with an active binding: Class II account (with ``balance_fen`` topped up), a car, its ETC card."""
    if account is None:
        user, person, account = await open_account(client, sandbox, card_balance_fen=max(balance_fen, 1),
                                                   user=user, person=person)
    if balance_fen:
        assert (await top_up(client, user, account["id"], balance_fen)).status_code == 201
    vehicle = await register_vehicle(client, user)
    card = etc_card()
    resp = await start_binding(client, user, vehicle["id"], account["id"], card)
    assert resp.status_code == 201, resp.text
    binding = resp.json()
    await sign_authorisation(client, sandbox, user, binding["authorisation_contract_id"])
    activated = await client.post(f"/api/v1/etc-bindings/{binding['id']}/activate", headers=user.headers)
    assert activated.status_code == 200 and activated.json()["status"] == "active", activated.text
    return BoundCar(user, person, account, vehicle, activated.json(), card)


def an_hour_ago() -> str:
    from datetime import datetime, timedelta, timezone

    return (datetime.now(timezone(timedelta(hours=8))) - timedelta(hours=1)).isoformat(timespec="seconds")


def debit_body(car: BoundCar, amount_fen: int = 1_500, *, out_trade_no: str | None = None, category: str = "toll",
               by: str = "card") -> dict:
    body = {"out_trade_no": out_trade_no or "T" + secrets.token_hex(10), "category": category,
            "amount_fen": amount_fen, "occurred_at": an_hour_ago(), "merchant": "京港澳高速杜家坎站"}
    if by == "card":
        body["card_number"] = car.card_number
    else:
        body["plate_number"], body["plate_color"] = car.vehicle["plate_number"], car.vehicle["plate_color"]
    return body
