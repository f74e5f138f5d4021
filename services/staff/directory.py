"""Staff members: created, disabled and given a new TOTP secret from the command line
(``python -m app staff ...``), each an audit event naming the operator at the keyboard.

A new member's password and TOTP secret are generated here and returned once; only the argon2id hash
of the password and the encrypted secret are stored.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from core.clock import utcnow
from core.errors import ValidationFailed
from models.enums import StaffRole
from models.staff import Staff, StaffSession
from services import audit
from services.context import ServiceContext
from services.db import atomic
from services.staff.errors import StaffExists, StaffNotFound

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")
TOTP_PURPOSE = "staff.totp"  # bound into the ciphertext: the secret decrypts from this column only
# argon2id (the library's default type), its default cost (RFC 9106's second recommendation, 64 MiB)
HASHER = PasswordHasher()


@dataclass(frozen=True)
class NewCredentials:
    staff: Staff
    password: str | None  # None when only the TOTP secret was renewed
    totp_secret: str


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def totp_secret(ctx: ServiceContext, staff: Staff) -> str:
    return ctx.pii.decrypt(staff.totp_secret_enc, purpose=TOTP_PURPOSE)


async def create(ctx: ServiceContext, username: str, role: str, *, operator: str) -> NewCredentials:
    if not USERNAME_RE.fullmatch(username):
        raise ValidationFailed("用户名须为 3-32 位小写字母、数字或 . _ -", field="username")
    try:
        role = StaffRole(role)
    except ValueError:
        raise ValidationFailed(f"角色须为 {', '.join(StaffRole)} 之一", field="role") from None
    password, secret = secrets.token_urlsafe(18), pyotp.random_base32()
    password_hash = await asyncio.to_thread(hash_password, password)

    async def work(conn: BaseDBAsyncClient) -> Staff:
        staff = await Staff.create(username=username, password_hash=password_hash, role=role,
                                   totp_secret_enc=ctx.pii.encrypt(secret, purpose=TOTP_PURPOSE), using_db=conn)
        await audit.append(conn, actor=operator, action="staff.created", entity_type="staff", entity_id=staff.id,
                           data={"username": username, "role": str(role)})
        return staff

    try:
        staff = await atomic(work)
    except IntegrityError:
        raise StaffExists() from None
    return NewCredentials(staff, password, secret)


async def acting(username: str) -> Staff:
    """The member a command acts as (``--as USERNAME``): they must exist and not be disabled."""
    staff = await Staff.get_or_none(username=(username or "").strip()[:32])
    if staff is None or staff.disabled:
        raise StaffNotFound()
    return staff


async def _named(conn: BaseDBAsyncClient, username: str) -> Staff:
    staff = await Staff.filter(username=username).using_db(conn).select_for_update().first()
    if staff is None:
        raise StaffNotFound()
    return staff


async def _end_sessions(conn: BaseDBAsyncClient, staff: Staff) -> int:
    return await StaffSession.filter(staff_id=staff.id, ended_at=None).using_db(conn).update(ended_at=utcnow())


async def disable(username: str, *, operator: str) -> Staff:
    """No more logins, and every open session of theirs ends now."""

    async def work(conn: BaseDBAsyncClient) -> Staff:
        staff = await _named(conn, username)
        staff.disabled = True
        await staff.save(using_db=conn, update_fields=["disabled", "updated_at"])
        ended = await _end_sessions(conn, staff)
        await audit.append(conn, actor=operator, action="staff.disabled", entity_type="staff", entity_id=staff.id,
                           data={"username": username, "role": str(staff.role), "sessions_ended": ended})
        return staff

    return await atomic(work)


async def reset_totp(ctx: ServiceContext, username: str, *, operator: str) -> NewCredentials:
    """A new TOTP secret (a lost phone): the old one stops working and every open session ends."""
    secret = pyotp.random_base32()

    async def work(conn: BaseDBAsyncClient) -> Staff:
        staff = await _named(conn, username)
        staff.totp_secret_enc = ctx.pii.encrypt(secret, purpose=TOTP_PURPOSE)
        staff.totp_last_step = None
        await staff.save(using_db=conn, update_fields=["totp_secret_enc", "totp_last_step", "updated_at"])
        ended = await _end_sessions(conn, staff)
        await audit.append(conn, actor=operator, action="staff.totp_reset", entity_type="staff", entity_id=staff.id,
                           data={"username": username, "role": str(staff.role), "sessions_ended": ended})
        return staff

    return NewCredentials(await atomic(work), None, secret)
