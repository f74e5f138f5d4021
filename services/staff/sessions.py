"""Server-side console sessions, in the database so that every worker and host knows them.

The cookie carries a random token; the row keeps its SHA-256, the session's CSRF token (every form
carries it) and three clocks: refused ``ADMIN_IDLE_TIMEOUT_S`` after its last use, at ``expires_at``
(``ADMIN_SESSION_LIFETIME_S`` after login, however active), or once ended (logout, the member disabled
or given a new TOTP secret).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import utcnow
from core.settings import Settings
from models.staff import Staff, StaffSession
from services import audit
from services.db import atomic

# how often a session's last use is written (a page view within this of the last write does not write)
TOUCH_EVERY_S = 30


@dataclass(frozen=True)
class Client:
    """Who is at the other end, as audit events record it."""

    ip: str
    user_agent: str

    def audit_data(self) -> dict:
        return {"ip": self.ip[:64], "user_agent": self.user_agent[:256]}


@dataclass(frozen=True)
class Current:
    """A staff member acting: through a console session, or (``session`` None) through the command line
    as a named member (``python -m app … --as USERNAME``)."""

    session: StaffSession | None
    staff: Staff

    @property
    def actor(self) -> str:
        return actor_of(self.staff)


def actor_of(staff: Staff) -> str:
    return f"staff:{staff.id}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(conn: BaseDBAsyncClient, settings: Settings, staff: Staff, client: Client) -> tuple[str, StaffSession]:
    """A new session for ``staff`` (in the login's transaction): the cookie's token, and the row."""
    token, now = secrets.token_urlsafe(32), utcnow()
    row = await StaffSession.create(
        token_hash=token_hash(token), staff_id=staff.id, csrf_token=secrets.token_urlsafe(32), ip=client.ip[:64],
        user_agent=client.user_agent[:256], created_at=now, last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.admin_session_lifetime_s), using_db=conn)
    return token, row


async def current(settings: Settings, token: str | None) -> Current | None:
    """The live session of this cookie, its last use moved to now; None when there is none, it ended,
    it is past its lifetime or idle time, or its member is disabled."""
    if not token or len(token) > 128:
        return None
    row = await StaffSession.get_or_none(token_hash=token_hash(token)).select_related("staff")
    now = utcnow()
    if row is None or row.ended_at is not None or row.staff.disabled:
        return None
    if now >= row.expires_at or now - row.last_seen_at >= timedelta(seconds=settings.admin_idle_timeout_s):
        return None
    if now - row.last_seen_at >= timedelta(seconds=TOUCH_EVERY_S):
        await StaffSession.filter(id=row.id).update(last_seen_at=now)
        row.last_seen_at = now
    return Current(row, row.staff)


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())


async def end(me: Current, client: Client) -> None:
    """Logout: the session ends now, audited."""

    async def work(conn: BaseDBAsyncClient) -> None:
        await StaffSession.filter(id=me.session.id, ended_at=None).using_db(conn).update(ended_at=utcnow())
        await audit.append(conn, actor=me.actor, action="staff.logout", entity_type="staff", entity_id=me.staff.id,
                           data={"role": str(me.staff.role), "session_id": me.session.id, **client.audit_data()})

    await atomic(work)


def staff_data(me: Current, client: Client, reason: str = "") -> dict:
    """What every staff audit event carries: who (role, session), from where (IP, user agent), and why."""
    data = {"role": str(me.staff.role), **client.audit_data()}
    if me.session is not None:
        data["session_id"] = me.session.id
    else:
        data["via"] = "cli"
    if reason:
        data["reason"] = reason[:200]
    return data


async def record(conn: BaseDBAsyncClient, me: Current, client: Client, event: str, *, entity_type: str,
                 entity_id: str | int, reason: str = "", **data) -> None:
    """A staff action's audit event, in the action's own transaction: actor ``staff:ID``, the action's
    ``data`` (masked values only) and ``staff_data``."""
    await audit.append(conn, actor=me.actor, action=event, entity_type=entity_type, entity_id=entity_id,
                       data={**data, **staff_data(me, client, reason)})


async def page_viewed(me: Current, client: Client, page: str, **data) -> None:
    """Every console page shown is an audit event (what a member looked at, from where)."""
    await atomic(lambda conn: record(conn, me, client, "staff.page_view", entity_type="staff",
                                     entity_id=me.staff.id, page=page[:128], **data))


async def refused(me: Current, client: Client, permission: str) -> None:
    """A page or action the member's role does not allow: refused (403) and audited."""

    await atomic(lambda conn: record(conn, me, client, "staff.refused", entity_type="staff", entity_id=me.staff.id,
                                     permission=permission))


KEEP_ENDED_S = 90 * 86400  # a session's row is kept this long after it ended or expired (who was logged in when)


async def sweep(now=None) -> int:
    """The worker's ``staff.sessions`` job: delete session rows that ended or expired over ``KEEP_ENDED_S``
    ago (the audit chain keeps every login and logout); a live session is never touched."""
    cutoff = (now or utcnow()) - timedelta(seconds=KEEP_ENDED_S)
    ended = await StaffSession.filter(ended_at__lt=cutoff).delete()
    expired = await StaffSession.filter(ended_at=None, expires_at__lt=cutoff).delete()
    return ended + expired
