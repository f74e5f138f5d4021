"""Creating partners, rotating their secrets, disabling them (``python -m app partner ...``).

A secret is 32 random bytes (``sk_`` + URL-safe base64), returned once and stored encrypted. Rotating
keeps the old secret valid for a grace period, so a partner can switch without a failed request.
A callback URL must be ``https`` in production (``http`` is allowed in sandbox mode, for the emulator);
where it points is checked again at every delivery (``services.partners.notify``); it can be set or
cleared after creation (``partner set-callback``), since a partner's own URL may need its app id. A
partner that issues ETC cards names its card networks (4-digit network numbers): binding events of
those cards go to it, and to no one else. Each of these commands is an audit event (actor ``operator``),
in the same transaction as the change; done from the staff console (``by``: the member and their client),
that event is the member's (actor ``staff:ID``, role, session, IP, reason: ``services.staff.sessions.record``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import utcnow
from core.errors import ValidationFailed
from models.partners import Partner, PartnerStatus
from services import audit
from services.context import ServiceContext
from services.db import atomic
from services.partners.auth import SECRET_PURPOSE
from services.staff import sessions

# a staff member acting from the console, and from where (``services.staff.sessions``)
StaffActor = tuple[sessions.Current, sessions.Client]

SCOPES = ("etc:debit", "parking:debit", "fuel:debit", "carwash:debit", "etc:read")
DEFAULT_GRACE_S = 24 * 3600


class PartnerNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Credentials:
    partner: Partner
    secret: str  # shown once


def new_secret() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValidationFailed(f"scopes must be some of {', '.join(SCOPES)}", field="scopes")
    return sorted(set(scopes))


def check_callback_url(url: str | None, *, production: bool) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    allowed = ("https",) if production else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname or parts.username or parts.password or len(url) > 512:
        raise ValidationFailed("callback URL must be an https URL without credentials" if production
                               else "callback URL must be an http(s) URL without credentials", field="callback_url")
    return url


def check_card_networks(networks: list[str] | None) -> list[str]:
    """ETC card network numbers: the first 4 digits of the cards a partner issues."""
    networks = sorted({n.strip() for n in networks or () if n.strip()})
    if any(not (len(n) == 4 and n.isascii() and n.isdigit()) for n in networks):
        raise ValidationFailed("card networks are 4-digit ETC network numbers", field="card_networks")
    return networks


async def _audit(conn: BaseDBAsyncClient, partner: Partner, action: str, actor: str, *, by: StaffActor | None = None,
                 reason: str = "", **data) -> None:
    """The change's one audit event: the operator's (CLI), or the staff member's when ``by`` is given."""
    if by is not None:
        await sessions.record(conn, by[0], by[1], f"partner.{action}", entity_type="partner",
                              entity_id=partner.app_id, reason=reason, **data)
        return
    await audit.append(conn, actor=actor, action=f"partner.{action}", entity_type="partner", entity_id=partner.app_id,
                       data=data)


async def create(ctx: ServiceContext, *, name: str, scopes: list[str], callback_url: str | None = None,
                 card_networks: list[str] | None = None, actor: str = "operator") -> Credentials:
    secret = new_secret()
    fields = dict(app_id="pt" + secrets.token_hex(8), name=name[:64], scopes=check_scopes(scopes),
                  callback_url=check_callback_url(callback_url, production=ctx.settings.is_production),
                  card_networks=check_card_networks(card_networks),
                  secret_enc=ctx.pii.encrypt(secret, purpose=SECRET_PURPOSE))

    async def work(conn: BaseDBAsyncClient) -> Partner:
        partner = await Partner.create(**fields, using_db=conn)
        await _audit(conn, partner, "created", actor, name=partner.name, scopes=partner.scopes,
                     callback_url=partner.callback_url, card_networks=partner.card_networks)
        return partner

    return Credentials(await atomic(work), secret)


async def _get(app_id: str) -> Partner:
    partner = await Partner.get_or_none(app_id=app_id)
    if partner is None:
        raise PartnerNotFound(app_id)
    return partner


async def rotate_secret(ctx: ServiceContext, app_id: str, *, grace_s: int = DEFAULT_GRACE_S,
                        actor: str = "operator") -> Credentials:
    partner = await _get(app_id)
    secret, now = new_secret(), utcnow()
    until = now + timedelta(seconds=grace_s)

    async def work(conn: BaseDBAsyncClient) -> None:
        await Partner.filter(id=partner.id).using_db(conn).update(
            previous_secret_enc=partner.secret_enc, previous_valid_until=until,
            secret_enc=ctx.pii.encrypt(secret, purpose=SECRET_PURPOSE), rotated_at=now)
        await _audit(conn, partner, "secret_rotated", actor, previous_valid_until=until.isoformat())

    await atomic(work)
    return Credentials(await Partner.get(id=partner.id), secret)


async def set_scopes(app_id: str, scopes: list[str], *, actor: str) -> Partner:
    """What the partner may call from now on (maker-checker: ``services.staff.actions``, ``partner.scopes``)."""
    partner = await _get(app_id)
    scopes = check_scopes(scopes)

    async def work(conn: BaseDBAsyncClient) -> None:
        await Partner.filter(id=partner.id).using_db(conn).update(scopes=scopes)
        await _audit(conn, partner, "scopes_set", actor, previous=partner.scopes, scopes=scopes)

    await atomic(work)
    return await Partner.get(id=partner.id)


async def set_callback(ctx: ServiceContext, app_id: str, callback_url: str | None, *,
                       actor: str = "operator", by: StaffActor | None = None, reason: str = "") -> Partner:
    """Set where the partner's notifications go, or clear it (``None``: no notifications are sent);
    ``by``: a staff member from the console (their audit event, with ``reason``)."""
    partner = await _get(app_id)
    url = check_callback_url(callback_url, production=ctx.settings.is_production)

    async def work(conn: BaseDBAsyncClient) -> None:
        await Partner.filter(id=partner.id).using_db(conn).update(callback_url=url)
        await _audit(conn, partner, "callback_set" if url else "callback_cleared", actor,
                     previous=partner.callback_url, callback_url=url, by=by, reason=reason)

    await atomic(work)
    return await Partner.get(id=partner.id)


async def disable(app_id: str, *, actor: str = "operator", by: StaffActor | None = None, reason: str = "") -> Partner:
    """Stop the partner's requests and notifications; ``by``: a staff member (their audit event, ``reason``).
    Disabling a disabled partner changes nothing and writes nothing."""
    partner = await _get(app_id)

    async def work(conn: BaseDBAsyncClient) -> None:
        changed = await Partner.filter(id=partner.id, status=PartnerStatus.ACTIVE).using_db(conn).update(
            status=PartnerStatus.DISABLED, disabled_at=utcnow())
        if changed or by is None:
            await _audit(conn, partner, "disabled", actor, by=by, reason=reason)

    await atomic(work)
    return await Partner.get(id=partner.id)
