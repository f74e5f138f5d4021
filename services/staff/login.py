"""A staff login: username, password (argon2id) and a TOTP code (RFC 6238), with a lockout.

* The code may be from the current 30-second step or one either side (clock drift, ``valid_window=1``),
  and a code is good once: the step it was accepted for is stored, and only a later step's code is
  taken next time (one conditional UPDATE, so two workers cannot both accept it).
* Failures in a row are counted in the member's row; from ``ADMIN_LOCKOUT_AFTER`` on, the member is
  locked for ``ADMIN_LOCKOUT_BASE_S`` seconds, doubling with each further failure up to
  ``ADMIN_LOCKOUT_MAX_S``. While locked nothing is checked, a right password included. The row is the
  state, so every worker and host sees the same lockout. A successful login resets the count.
* A wrong username, password, code, a replayed code and a disabled member all get the same answer, and a
  username no member has is counted and locked out the same way (``staff_login_shadows``), so the
  lockout does not tell which usernames exist.
* Every outcome is an audit event with the member, role, IP and user agent.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass
from datetime import timedelta

import pyotp
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from core.clock import utcnow
from core.settings import Settings
from models.staff import Staff, StaffLoginShadow, StaffSession
from services import audit
from services.context import ServiceContext
from services.db import atomic
from services.staff.directory import HASHER, totp_secret
from services.staff.errors import LoginFailed, LoginLocked
from services.staff.sessions import Client, actor_of, open_session

VALID_WINDOW = 1  # steps either side of now
# verified against for an unknown username, so that answering takes as long as for a known one
_DUMMY_HASH = HASHER.hash("not a password of anyone")
USERNAME_MAX = Staff._meta.fields_map["username"].max_length


@dataclass(frozen=True)
class LoggedIn:
    token: str
    session: StaffSession
    staff: Staff


def _password_ok(stored: str, given: str) -> bool:
    try:
        return HASHER.verify(stored, given)
    except (VerificationError, InvalidHashError):
        return False


def matching_step(secret: str, code: str, *, now=None) -> int | None:
    """The time step whose code ``code`` is, within ``VALID_WINDOW`` of now; None when none is."""
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    here = totp.timecode(now or utcnow())
    for step in (here, here - 1, here + 1)[: 1 + 2 * VALID_WINDOW]:
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None


def lockout_s(settings: Settings, failures: int) -> int:
    """How long ``failures`` failed logins in a row lock a member (0: not locked)."""
    over = failures - settings.admin_lockout_after
    if over < 0:
        return 0
    return min(settings.admin_lockout_max_s, settings.admin_lockout_base_s * 2 ** min(over, 30))


async def log_in(ctx: ServiceContext, *, username: str, password: str, code: str, client: Client) -> LoggedIn:
    settings, now = ctx.settings, utcnow()
    username = username.strip()[:64]
    # no member has a longer name (the column's width): looked up, it would be the model's 422, not this answer
    staff = await Staff.get_or_none(username=username) if 0 < len(username) <= USERNAME_MAX else None
    if staff is None:
        return await _unknown(settings, username, password, client)
    if staff.locked_until is not None and staff.locked_until > now:
        wait = max(1, math.ceil((staff.locked_until - now).total_seconds()))
        await _record(staff, "staff.login_locked", {"retry_after_s": wait}, client)
        raise LoginLocked(wait)
    reason = None
    if not await asyncio.to_thread(_password_ok, staff.password_hash, password[:1024]):
        reason = "password"
    elif staff.disabled:
        reason = "disabled"
    else:
        step = matching_step(totp_secret(ctx, staff), code.strip(), now=now)
        if step is None:
            reason = "totp"
        elif not await _claim_step(staff, step):
            reason = "totp_replayed"
    if reason is not None:
        wait = await _failed(settings, staff, reason, client)
        if wait:
            raise LoginLocked(wait)
        raise LoginFailed()
    return await _succeeded(settings, staff, client)


async def _unknown(settings: Settings, username: str, password: str, client: Client) -> LoggedIn:
    """A username no member has: answered, counted and locked out as a member's would be (the lockout
    must not tell an attacker which usernames exist), the password checked against a dummy hash."""
    key, now = hashlib.sha256(username.encode()).hexdigest(), utcnow()
    shadow = await StaffLoginShadow.get_or_none(username_hash=key)
    if shadow is not None and shadow.locked_until is not None and shadow.locked_until > now:
        wait = max(1, math.ceil((shadow.locked_until - now).total_seconds()))
        await _record(None, "staff.login_locked", {"username": username, "retry_after_s": wait}, client)
        raise LoginLocked(wait)
    await asyncio.to_thread(_password_ok, _DUMMY_HASH, password[:1024])

    async def work(conn: BaseDBAsyncClient) -> int:
        row = await StaffLoginShadow.filter(username_hash=key).using_db(conn).select_for_update().first()
        if row is None:
            try:
                row = await StaffLoginShadow.create(username_hash=key, using_db=conn)
            except IntegrityError:  # another worker made it first: this one counts on the next try
                return 0
        row.failed_logins += 1
        wait = lockout_s(settings, row.failed_logins)
        row.locked_until = utcnow() + timedelta(seconds=wait) if wait else None
        await row.save(using_db=conn, update_fields=["failed_logins", "locked_until", "updated_at"])
        return wait

    wait = await atomic(work)
    await _record(None, "staff.login_failed", {"username": username, "reason": "unknown_username"}, client)
    if wait:
        raise LoginLocked(wait)
    raise LoginFailed()


async def _claim_step(staff: Staff, step: int) -> bool:
    """Take ``step`` as the last one used, if it is later than the last one: a code counts once."""
    later = Q(totp_last_step__isnull=True) | Q(totp_last_step__lt=step)
    return bool(await Staff.filter(later, id=staff.id).update(totp_last_step=step))


async def _failed(settings: Settings, staff: Staff, reason: str, client: Client) -> int:
    """Count one failure in the row (under its lock); the lockout it starts, in seconds (0: none)."""

    async def work(conn: BaseDBAsyncClient) -> int:
        row = await Staff.filter(id=staff.id).using_db(conn).select_for_update().first()
        row.failed_logins += 1
        wait = lockout_s(settings, row.failed_logins)
        row.locked_until = utcnow() + timedelta(seconds=wait) if wait else None
        await row.save(using_db=conn, update_fields=["failed_logins", "locked_until", "updated_at"])
        data = {"reason": reason, "failures": row.failed_logins, **_who(row, client)}
        await audit.append(conn, actor=actor_of(row), action="staff.login_failed", entity_type="staff",
                           entity_id=row.id, data=data)
        if wait:
            await audit.append(conn, actor=actor_of(row), action="staff.locked", entity_type="staff",
                               entity_id=row.id, data={"locked_s": wait, "failures": row.failed_logins,
                                                       **_who(row, client)})
        return wait

    return await atomic(work)


async def _succeeded(settings: Settings, staff: Staff, client: Client) -> LoggedIn:
    async def work(conn: BaseDBAsyncClient) -> LoggedIn:
        row = await Staff.filter(id=staff.id).using_db(conn).select_for_update().first()
        row.failed_logins, row.locked_until, row.last_login_at = 0, None, utcnow()
        await row.save(using_db=conn, update_fields=["failed_logins", "locked_until", "last_login_at", "updated_at"])
        token, session = await open_session(conn, settings, row, client)
        await audit.append(conn, actor=actor_of(row), action="staff.login", entity_type="staff", entity_id=row.id,
                           data={"session_id": session.id, **_who(row, client)})
        return LoggedIn(token, session, row)

    return await atomic(work)


def _who(staff: Staff, client: Client) -> dict:
    return {"username": staff.username, "role": str(staff.role), **client.audit_data()}


async def _record(staff: Staff | None, action: str, data: dict, client: Client) -> None:
    async def work(conn: BaseDBAsyncClient) -> None:
        who = _who(staff, client) if staff is not None else client.audit_data()
        await audit.append(conn, actor=actor_of(staff) if staff is not None else "anonymous", action=action,
                           entity_type="staff", entity_id=staff.id if staff is not None else "-",
                           data={**data, **who})

    await atomic(work)
