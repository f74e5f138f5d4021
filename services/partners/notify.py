"""Signed notifications to partners (docs/open-api.md, "Notifications"), through the outbox.

An event is written in the transaction of the change it reports, one outbox message per partner that
should hear of it, with its ``event_id`` fixed then: every retry carries the same id, and the partner
deduplicates on it. A binding event goes only to the issuer of that card: an active partner with a
callback URL, an ETC scope (``etc:debit`` or ``etc:read``) and the card's network number among its
``card_networks``; ``arrears.settled`` goes to the partner whose debits were owed.

Delivery signs the body with the partner's current secret and POSTs it to the callback URL as it is at
that moment (``integrations.webhooks``: never to a private, loopback or link-local address; loopback is
allowed in sandbox mode). Any 2xx is an acknowledgement; anything else is retried with the outbox's
backoff. A partner disabled or without a callback URL by then, or a URL that points inside the bank's
network, is given up at once.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import urlsplit

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import CHINA_TZ, utcnow
from integrations.webhooks import AddressRefused
from models.etc import EtcBinding
from models.infra import OutboxMessage
from models.partners import Partner, PartnerStatus
from services import outbox
from services.context import ServiceContext
from services.etc.vehicles import plate_parts
from services.outbox import Handler, Permanent
from services.partners import signing
from services.partners.auth import SECRET_PURPOSE

KIND = "partner_notification"
ETC_SCOPES = {"etc:debit", "etc:read"}


def _event(type_: str, data: dict) -> dict:
    return {"event_id": "ev_" + secrets.token_hex(12), "type": type_,
            "occurred_at": utcnow().astimezone(CHINA_TZ).isoformat(timespec="seconds"), "data": data}


def card_network(binding: EtcBinding) -> str:
    """The card's 4-digit network number: the mask keeps the first six digits of the card number."""
    return binding.card_masked[:4]


def entitled(partner: Partner, binding: EtcBinding) -> bool:
    """Only the issuer of the card hears of its binding: a partner with an ETC scope that names the
    card's network among its own. A car park or fuel station debiting by plate learns nothing of it."""
    return bool(ETC_SCOPES & set(partner.scopes or ())) and card_network(binding) in (partner.card_networks or ())


async def binding_event(conn: BaseDBAsyncClient, type_: str, binding: EtcBinding) -> int:
    plate, color = plate_parts(binding.plate)
    # what the issuer needs to match its card and OBU: the masked card, the plate it issued for, the status
    data = {"binding_id": binding.id, "card_number_masked": binding.card_masked, "plate_number": plate,
            "plate_color": color, "status": str(binding.status)}
    partners = await Partner.filter(status=PartnerStatus.ACTIVE, callback_url__isnull=False).using_db(conn)
    told = 0
    for partner in partners:
        if entitled(partner, binding):
            await outbox.enqueue(conn, KIND, {"partner_id": partner.id, "event": _event(type_, data)})
            told += 1
    return told


async def arrears_settled(conn: BaseDBAsyncClient, partner_id: int, binding_id: int, amount_fen: int,
                          out_trade_nos: list[str]) -> None:
    await outbox.enqueue(conn, KIND, {"partner_id": partner_id, "event": _event(
        "arrears.settled", {"binding_id": binding_id, "amount_fen": amount_fen, "out_trade_nos": out_trade_nos})})


def signed_headers(app_id: str, secret: str, url: str, body: bytes) -> dict[str, str]:
    parts = urlsplit(url)
    timestamp, nonce = str(int(time.time())), signing.new_nonce()
    text = signing.request_string("POST", parts.path or "/", parts.query, timestamp, nonce, body)
    return {"X-App-Id": app_id, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": signing.sign(secret, text)}


def outbox_handlers(ctx: ServiceContext) -> dict[str, Handler]:
    async def deliver(payload: dict) -> None:
        partner = await Partner.get_or_none(id=payload["partner_id"])
        if partner is None or partner.status != PartnerStatus.ACTIVE or not partner.callback_url:
            raise Permanent("partner disabled or without a callback URL")
        body = json.dumps(payload["event"], ensure_ascii=False, separators=(",", ":")).encode()
        secret = ctx.pii.decrypt(partner.secret_enc, purpose=SECRET_PURPOSE)
        url = partner.callback_url
        try:
            status = await ctx.webhooks.post(url, headers=signed_headers(partner.app_id, secret, url, body), body=body)
        except AddressRefused as exc:
            raise Permanent(str(exc)) from exc
        if not 200 <= status < 300:
            raise RuntimeError(f"callback answered HTTP {status}")

    return {KIND: deliver}


async def redeliver(conn: BaseDBAsyncClient, message: OutboxMessage) -> OutboxMessage:
    """The same notification queued again (the console's "redeliver"), inside the caller's transaction: a
    new outbox message with the same partner and the same event (its ``event_id`` too, so a partner that
    had stored it finds a duplicate), noting the delivery it repeats. The outbox delivers it like any other."""
    return await outbox.enqueue(conn, KIND, {"partner_id": message.payload["partner_id"],
                                             "event": message.payload["event"], "redelivery_of": message.id})
