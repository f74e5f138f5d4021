"""Revealing one of a customer's personal values to a staff member: with a reason, audited, and within a
daily allowance.

A reveal is one transaction: the member's counter for today (China Standard Time) is raised by a
conditional UPDATE (``count < allowance``), and the audit event ``staff.pii_revealed`` (the field, the
customer, the reason, never the value) is written; the value is returned only after both committed. The
counter is a row per member and day (``staff_reveal_counts``), so every worker and host shares the allowance,
and two reveals at the allowance's edge let exactly one through (the UPDATE holds the row's lock until the
commit; the other then finds ``count`` at the allowance). Beyond it: ``RevealAllowanceExceeded`` (429),
itself audited (``staff.pii_reveal_refused``).
"""

from __future__ import annotations

import re

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from core.clock import china_day, utcnow
from core.errors import AppError
from models.accounts import Account
from models.identity import Identity
from models.staff import StaffRevealCount, StaffRevealGrant
from models.users import User
from services.accounts.opening import ACCOUNT_CARD_PURPOSE
from services.context import ServiceContext
from services.db import atomic
from services.identity.id_card import ID_PURPOSE, NAME_PURPOSE
from services.staff import fields, sessions
from services.staff.errors import BadReveal, CustomerNotFound
from services.users import PHONE_PURPOSE

FIELDS = ("name", "phone", "id_number", "account_number", "bound_card")
_FIELD_RE = re.compile(r"(name|phone|id_number)|(account_number|bound_card):([1-9]\d{0,18})")


class RevealAllowanceExceeded(AppError):
    """The member has revealed ``ADMIN_REVEAL_DAILY_ALLOWANCE`` values today: refused until tomorrow (China
    Standard Time), unless a second member approved this one reveal (maker-checker ``pii.reveal``, which
    leaves a ``StaffRevealGrant`` used here once)."""

    status = 429
    code = "STAFF_REVEAL_ALLOWANCE_EXCEEDED"
    message = "今日查看额度已用完，请提交复核申请"


def parse_field(value: str) -> tuple[str, int | None]:
    """``name`` | ``phone`` | ``id_number`` | ``account_number:<id>`` | ``bound_card:<id>``."""
    found = _FIELD_RE.fullmatch(value or "")
    if found is None:
        raise BadReveal("请选择要查看的信息", field="field")
    if found.group(1):
        return found.group(1), None
    return found.group(2), int(found.group(3))


def check_reason(reason: str) -> str:
    return fields.reason(reason, what="查看理由", error=BadReveal)


async def _value(ctx: ServiceContext, user_id: int, name: str, account_id: int | None) -> str:
    """The full value, decrypted; 404 when the customer (or their account) has none."""
    if name in ("name", "id_number"):
        identity = await Identity.get_or_none(user_id=user_id)
        if identity is None:
            raise CustomerNotFound("该客户尚未完成身份核验")
        if name == "name":
            return ctx.pii.decrypt(identity.name_enc, purpose=NAME_PURPOSE)
        return ctx.pii.decrypt(identity.id_number_enc, purpose=ID_PURPOSE)
    if name == "phone":
        user = await User.get_or_none(id=user_id)
        if user is None or not user.phone_enc:
            raise CustomerNotFound("该客户未绑定手机号")
        return ctx.pii.decrypt(user.phone_enc, purpose=PHONE_PURPOSE)
    account = await Account.get_or_none(id=account_id, user_id=user_id)
    if account is None:
        raise CustomerNotFound("账户不存在")
    if name == "account_number":
        return account.number
    return ctx.pii.decrypt(account.bound_card_enc, purpose=ACCOUNT_CARD_PURPOSE)


async def _counter_row(staff_id: int, day) -> None:
    """Today's counter row exists (made outside the reveal's transaction: two first reveals of a day may
    both try, and one finds the other's row)."""
    if await StaffRevealCount.filter(staff_id=staff_id, day=day).exists():
        return
    try:
        await StaffRevealCount.create(staff_id=staff_id, day=day, count=0)
    except IntegrityError:
        pass


async def take_one(conn: BaseDBAsyncClient, staff_id: int, day, allowance: int) -> bool:
    """One more reveal counted for ``staff_id`` on ``day`` if the allowance has room (conditional UPDATE)."""
    changed = await (StaffRevealCount.filter(staff_id=staff_id, day=day, count__lt=allowance).using_db(conn)
                     .update(count=F("count") + 1))
    return changed == 1


async def _use_grant(conn: BaseDBAsyncClient, staff_id: int, user_id: int, field: str) -> StaffRevealGrant | None:
    """An approved reveal beyond the allowance for exactly this member, customer and field, used now (once:
    the conditional UPDATE lets one of two racing reveals have it)."""
    for grant in await StaffRevealGrant.filter(staff_id=staff_id, user_id=user_id, field=field, used_at=None) \
            .using_db(conn).order_by("id"):
        if await StaffRevealGrant.filter(id=grant.id, used_at=None).using_db(conn).update(used_at=utcnow()):
            return grant
    return None


async def grant(conn: BaseDBAsyncClient, *, staff_id: int, user_id: int, field: str,
                proposal_id: int | None) -> StaffRevealGrant:
    """One reveal beyond the allowance for ``staff_id`` (applied by maker-checker, ``pii.reveal``)."""
    return await StaffRevealGrant.create(staff_id=staff_id, user_id=user_id, field=field, proposal_id=proposal_id,
                                         using_db=conn)


async def used_today(staff_id: int) -> int:
    row = await StaffRevealCount.get_or_none(staff_id=staff_id, day=china_day(utcnow()))
    return row.count if row else 0


async def reveal(ctx: ServiceContext, current: sessions.Current, client: sessions.Client, *, user_id: int,
                 field: str, reason: str) -> str:
    """The full value of ``field`` of customer ``user_id`` for ``current``, with ``reason`` (4 to 200
    characters): counted against the member's daily allowance and audited, never the value itself."""
    reason = check_reason(reason)
    name, account_id = parse_field(field)
    if not 0 < user_id < 2**63:
        raise CustomerNotFound()
    value = await _value(ctx, user_id, name, account_id)
    day = china_day(utcnow())
    allowance = ctx.settings.admin_reveal_daily_allowance
    await _counter_row(current.staff.id, day)
    audit_data = {"field": name, "subject": f"user:{user_id}"}
    if account_id is not None:
        audit_data["account_id"] = account_id

    async def work(conn: BaseDBAsyncClient) -> bool:
        extra = {}
        if not await take_one(conn, current.staff.id, day, allowance):
            grant = await _use_grant(conn, current.staff.id, user_id, field)
            if grant is None:
                return False
            extra = {"grant": grant.id, "proposal_id": grant.proposal_id}
        await sessions.record(conn, current, client, "staff.pii_revealed", entity_type="user", entity_id=user_id,
                              reason=reason, **audit_data, **extra)
        return True

    if not await atomic(work):
        await atomic(lambda conn: sessions.record(conn, current, client, "staff.pii_reveal_refused",
                                                  entity_type="user", entity_id=user_id, reason=reason,
                                                  allowance=allowance, **audit_data))
        raise RevealAllowanceExceeded()
    return value
