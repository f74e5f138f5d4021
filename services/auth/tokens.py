"""Token pairs: a short access JWT and an opaque, rotating refresh token.

Each login starts a refresh-token *family*. Exchanging a refresh token marks it rotated and issues its
successor in the same family. Presenting a rotated token again means it leaked (or a client raced
itself): the whole family is revoked, so whoever holds the newest token is logged out too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import utcnow
from core.errors import Unauthorized
from core.tokens import AccessClaims, TokenInvalid, hash_refresh_token, new_refresh_token
from models.users import RefreshToken, User
from services.context import ServiceContext
from services.db import atomic


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: ClassVar[str] = "Bearer"


class RefreshTokenInvalid(Unauthorized):
    code = "REFRESH_TOKEN_INVALID"
    message = "登录已失效，请重新登录"


class RefreshTokenReused(Unauthorized):
    code = "REFRESH_TOKEN_REUSED"
    message = "登录凭证已被使用，为保护账户安全已退出登录"


async def issue_pair(
    ctx: ServiceContext, user: User, *, family: str | None = None, conn: BaseDBAsyncClient | None = None
) -> TokenPair:
    family = family or uuid.uuid4().hex
    raw = new_refresh_token()
    await RefreshToken.create(
        user=user,
        family=family,
        token_hash=hash_refresh_token(raw),
        expires_at=utcnow() + timedelta(seconds=ctx.settings.refresh_ttl_s),
        using_db=conn,
    )
    access = ctx.jwt.issue(str(user.id), family=family)
    return TokenPair(access, raw, ctx.jwt.ttl_s)


async def rotate(ctx: ServiceContext, refresh_token: str) -> TokenPair:
    token_hash = hash_refresh_token(refresh_token)

    async def work(conn: BaseDBAsyncClient) -> TokenPair | Unauthorized:
        row = await RefreshToken.filter(token_hash=token_hash).select_for_update().using_db(conn).first()
        now = utcnow()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return RefreshTokenInvalid()
        if row.rotated_at is not None:
            # Reuse of a rotated token: revoke the family, and commit that before refusing.
            await RefreshToken.filter(family=row.family, revoked_at=None).using_db(conn).update(revoked_at=now)
            reused = RefreshTokenReused()
            reused.family = row.family
            return reused
        row.rotated_at = now
        await row.save(using_db=conn, update_fields=["rotated_at"])
        user = await User.get(id=row.user_id).using_db(conn)
        return await issue_pair(ctx, user, family=row.family, conn=conn)

    outcome = await atomic(work)
    if isinstance(outcome, RefreshTokenReused):
        ctx.revocations.add(outcome.family)  # committed: this worker refuses its access tokens at once
    if isinstance(outcome, Unauthorized):
        raise outcome
    return outcome


async def revoke_family(ctx: ServiceContext, family: str) -> int:
    """End a login: its refresh tokens now, its access tokens on every worker within a poll."""
    revoked = await RefreshToken.filter(family=family, revoked_at=None).update(revoked_at=utcnow())
    ctx.revocations.add(family)
    return revoked


def authenticate(ctx: ServiceContext, authorization: str | None) -> AccessClaims:
    """Check a ``Bearer`` access token; any failure is the same 401 (the reason goes to logs only)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized(code="UNAUTHORIZED")
    try:
        claims = ctx.jwt.verify(authorization[len("Bearer ") :].strip())
    except TokenInvalid as exc:
        raise Unauthorized("登录已过期，请重新登录", code="TOKEN_INVALID") from exc
    if ctx.revocations.is_revoked(claims.sid):  # logged out, or its refresh token leaked
        raise Unauthorized("登录已过期，请重新登录", code="TOKEN_INVALID")
    return claims
