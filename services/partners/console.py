"""What the staff console shows of partners, and the staff actions on them (``handlers/admin/partners.py``).

A partner's page: its scopes, callback URL, card networks, its secret's versions (when each was made and
until when the previous one is still accepted; never a secret), its recent debits (the card masked) and
its webhook deliveries: the outbox messages of kind ``partner_notification`` for it
(``services.partners.notify``), each with its status, attempts and last error.

Redelivering queues the same notification again through the outbox (``notify.redeliver``), in one
transaction with the member's audit event ``partner.webhook_redelivered``. A delivery still pending is
already going to be tried again: it is refused (409) rather than doubled. Setting the callback URL and
disabling go through ``services.partners.registry`` with the member as the actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import utcnow
from core.errors import Conflict, NotFound
from models.infra import OutboxAttempt, OutboxMessage, OutboxStatus
from models.partners import Partner, PartnerDebit, PartnerStatus
from services.db import atomic
from services.partners import notify, registry
from services.staff import sessions

RECENT_DEBITS = 20
DELIVERIES = 50
SCAN_BATCH, SCAN_MAX = 500, 10_000  # deliveries are found among the newest partner notifications


class PartnerMissing(NotFound):
    code, message = "PARTNER_NOT_FOUND", "合作方不存在"


class DeliveryMissing(NotFound):
    code, message = "DELIVERY_NOT_FOUND", "该合作方没有这条推送"


class DeliveryPending(Conflict):
    code, message = "DELIVERY_PENDING", "这条推送仍在投递中，会自动重试"


class PartnerDisabled(Conflict):
    code, message = "PARTNER_DISABLED", "合作方已停用"


@dataclass(frozen=True)
class SecretVersion:
    label: str  # "当前" | "上一版"
    created_at: datetime | None
    valid_until: datetime | None  # the previous secret's end of grace; None: the current one
    valid_now: bool


@dataclass(frozen=True)
class Debit:
    out_trade_no: str
    card_masked: str
    category: str
    amount_fen: int
    status: str
    merchant: str
    booked_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    redelivery_of: int | None
    can_redeliver: bool


@dataclass(frozen=True)
class PartnerPage:
    partner: Partner
    secrets: list[SecretVersion]
    debits: list[Debit]
    deliveries: list[Delivery]


async def all_partners() -> list[Partner]:
    return await Partner.all().order_by("-id")


async def get(app_id: str) -> Partner:
    partner = await Partner.get_or_none(app_id=app_id[:18])
    if partner is None:
        raise PartnerMissing()
    return partner


def secret_versions(partner: Partner) -> list[SecretVersion]:
    versions = [SecretVersion("当前", partner.rotated_at or partner.created_at, None, True)]
    if partner.previous_secret_enc:
        until = partner.previous_valid_until
        versions.append(SecretVersion("上一版", None, until,  # when it was made is not kept
                                      until is not None and until > utcnow()))
    return versions


async def recent_debits(partner: Partner) -> list[Debit]:
    rows = await PartnerDebit.filter(partner_id=partner.id).order_by("-id").limit(RECENT_DEBITS) \
        .select_related("binding")
    return [Debit(d.out_trade_no, d.binding.card_masked, d.category, d.amount_fen, str(d.status), d.merchant,
                  d.booked_at) for d in rows]


async def messages_of(partner_id: int, *, limit: int = DELIVERIES) -> list[OutboxMessage]:
    """This partner's notifications, newest first (looked for among the newest ``SCAN_MAX``)."""
    found: list[OutboxMessage] = []
    before: int | None = None
    scanned = 0
    while len(found) < limit and scanned < SCAN_MAX:
        query = OutboxMessage.filter(kind=notify.KIND)
        if before is not None:
            query = query.filter(id__lt=before)
        rows = await query.order_by("-id").limit(SCAN_BATCH)
        found += [m for m in rows if m.payload.get("partner_id") == partner_id]
        scanned += len(rows)
        if len(rows) < SCAN_BATCH:
            break
        before = rows[-1].id
    return found[:limit]


def delivery_of(message: OutboxMessage) -> Delivery:
    event = message.payload.get("event") or {}
    return Delivery(message.id, str(event.get("event_id", "")), str(event.get("type", "")), str(message.status),
                    message.attempts, message.last_error, message.created_at, message.finished_at,
                    message.payload.get("redelivery_of"), message.status != OutboxStatus.PENDING)


async def page_of(app_id: str) -> PartnerPage:
    partner = await get(app_id)
    return PartnerPage(partner, secret_versions(partner), await recent_debits(partner),
                       [delivery_of(m) for m in await messages_of(partner.id)])


async def delivery(partner: Partner, message_id: int) -> OutboxMessage:
    """The partner's own delivery ``message_id``; another partner's (or any other message) is 404."""
    if not 0 < message_id < 2**63:
        raise DeliveryMissing()
    message = await OutboxMessage.get_or_none(id=message_id, kind=notify.KIND)
    if message is None or message.payload.get("partner_id") != partner.id:
        raise DeliveryMissing()
    return message


async def attempts_of(message_id: int) -> list[OutboxAttempt]:
    return await OutboxAttempt.filter(message_id=message_id).order_by("id")


async def redeliver(current: sessions.Current, client: sessions.Client, app_id: str, message_id: int, *,
                    reason: str) -> OutboxMessage:
    partner = await get(app_id)
    message = await delivery(partner, message_id)
    if message.status == OutboxStatus.PENDING:
        raise DeliveryPending()
    if partner.status != PartnerStatus.ACTIVE:
        raise PartnerDisabled()
    event = message.payload.get("event") or {}

    async def work(conn: BaseDBAsyncClient) -> OutboxMessage:
        again = await notify.redeliver(conn, message)
        await sessions.record(conn, current, client, "partner.webhook_redelivered", entity_type="partner",
                              entity_id=partner.app_id, reason=reason, delivery_id=message.id,
                              redelivery_id=again.id, event_id=str(event.get("event_id", ""))[:40],
                              event_type=str(event.get("type", ""))[:40])
        return again

    return await atomic(work)


async def set_callback(ctx, current: sessions.Current, client: sessions.Client, app_id: str, url: str | None, *,
                       reason: str) -> Partner:
    await get(app_id)
    return await registry.set_callback(ctx, app_id, url, by=(current, client), reason=reason)


async def disable(current: sessions.Current, client: sessions.Client, app_id: str, *, reason: str) -> Partner:
    partner = await get(app_id)
    if partner.status != PartnerStatus.ACTIVE:
        raise PartnerDisabled()
    return await registry.disable(app_id, by=(current, client), reason=reason)
