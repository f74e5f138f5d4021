"""Block and allow lists: what ops put on them, keyed the way movements carry their values.

An ID number, a bank card and an ETC card are listed by their blind indexes (never in clear), a plate
as ETC keys a vehicle (``<plate>_<colour>``), a device by the id the mini-program sends, an IP as
written, a merchant by its name as partners send it, a partner by its app id. Adding a
value already listed replaces its action, note and expiry. Each change is an audit event: the operator's
(CLI), or, from the staff console (``by``: the member and their client), the member's (actor ``staff:ID``,
role, session, IP, reason: ``services.staff.sessions.record``).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import utcnow
from core.errors import ValidationFailed
from core.validators import ETC_CARD_RE, card_number_ok, parse_id_number
from models.risk import RiskListEntry
from services import audit
from services.context import ServiceContext
from services.db import atomic
from services.accounts.opening import ACCOUNT_CARD_PURPOSE
from services.etc import bindings, vehicles
from services.identity.id_card import ID_PURPOSE
from services.risk.rules import LISTS
from services.staff import sessions

StaffActor = tuple[sessions.Current, sessions.Client]  # a staff member acting from the console, and from where

LISTABLE = LISTS
HIDDEN = ("id", "bank_card", "etc_card")  # listed by blind index: an operator sees its first characters


class ListValueInvalid(ValidationFailed):
    code, message = "RISK_LIST_VALUE_INVALID", "名单值不正确"


def key_of(ctx: ServiceContext, list_name: str, value: str, *, plate_color: str | None = None) -> str:
    """The value as movements carry it (a card's blind index, a plate's ``<plate>_<colour>``)."""
    if list_name not in LISTABLE:
        raise ListValueInvalid(f"名单只有 {', '.join(LISTABLE)}", field="list")
    if list_name == "etc_card":
        if not ETC_CARD_RE.fullmatch(value):
            raise ListValueInvalid("ETC 卡号是 20 位数字", field="value")
        return bindings.card_index(ctx, value)
    if list_name == "bank_card":
        if not card_number_ok(value):
            raise ListValueInvalid("银行卡号不正确", field="value")
        return ctx.pii.blind_index(value, purpose=ACCOUNT_CARD_PURPOSE)
    if list_name == "id":
        rid = parse_id_number(value)
        if rid is None:
            raise ListValueInvalid("身份证号码不正确", field="value")
        return ctx.pii.blind_index(rid.number, purpose=ID_PURPOSE)
    if list_name == "ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ListValueInvalid("IP 地址不正确", field="value") from None
    if list_name == "plate":
        vehicles.check_plate(value, plate_color or "")
        return vehicles.plate_key(value, plate_color)
    if not 1 <= len(value) <= 64:
        raise ListValueInvalid(field="value")
    return value


async def _audit(conn: BaseDBAsyncClient, action: str, entry_id: int, actor: str, by: StaffActor | None,
                 reason: str, data: dict) -> None:
    if by is not None:
        await sessions.record(conn, by[0], by[1], action, entity_type="risk_list_entry", entity_id=entry_id,
                              reason=reason, **data)
    else:
        await audit.append(conn, actor=actor, action=action, entity_type="risk_list_entry", entity_id=entry_id,
                           data=data)


def shown(list_name: str, value: str) -> str:
    """What an operator sees of a listed value (a card's blind index is not shown)."""
    return f"{value[:8]}…" if list_name in HIDDEN else value


async def put(ctx: ServiceContext, list_name: str, value: str, *, action: str, note: str = "",
              expires_in_s: int | None = None, plate_color: str | None = None, actor: str = "operator", by: StaffActor | None = None,
              reason: str = "") -> RiskListEntry:
    if action not in ("block", "allow"):
        raise ListValueInvalid("action 是 block 或 allow", field="action")
    key = key_of(ctx, list_name, value, plate_color=plate_color)
    expires: datetime | None = utcnow() + timedelta(seconds=expires_in_s) if expires_in_s else None

    async def work(conn: BaseDBAsyncClient) -> RiskListEntry:
        entry = await RiskListEntry.filter(list=list_name, value=key).select_for_update().using_db(conn).first()
        if entry is None:
            entry = await RiskListEntry.create(list=list_name, value=key, action=action, note=note[:200],
                                               expires_at=expires, using_db=conn)
        else:
            entry.action, entry.note, entry.expires_at = action, note[:200], expires
            await entry.save(using_db=conn, update_fields=["action", "note", "expires_at"])
        await _audit(conn, f"risk.list.{action}", entry.id, actor, by, reason,
                     {"list": list_name, "value": shown(list_name, key),
                      "expires_at": expires.isoformat() if expires else None})
        return entry

    return await atomic(work)


async def remove(ctx: ServiceContext | None, list_name: str, value: str | None = None, *,
                 plate_color: str | None = None, entry_id: int | None = None, actor: str = "operator",
                 by: StaffActor | None = None, reason: str = "") -> bool:
    """Take a value off its list: named by its value (as ``put`` takes it), or by the entry's id
    (``entry_id``: the console's list, which never shows a card's or ID number's value)."""
    where = {"id": entry_id} if entry_id is not None else \
        {"list": list_name, "value": key_of(ctx, list_name, value or "", plate_color=plate_color)}

    async def work(conn: BaseDBAsyncClient) -> bool:
        entry = await RiskListEntry.filter(**where).select_for_update().using_db(conn).first()
        if entry is None:
            return False
        await RiskListEntry.filter(id=entry.id).using_db(conn).delete()
        await _audit(conn, "risk.list.removed", entry.id, actor, by, reason,
                     {"list": entry.list, "value": shown(entry.list, entry.value)})
        return True

    return await atomic(work)
