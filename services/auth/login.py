"""WeChat login: ``wx.login`` code -> jscode2session -> user upserted by openid -> token pair."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from core.clock import utcnow
from integrations.wechat import WeChatAPIError, WeChatUnavailable
from models.users import User
from services.auth.tokens import TokenPair, issue_pair
from services.context import ServiceContext
from services.db import atomic
from services.wechat_errors import translate

SESSION_KEY_PURPOSE = "user.session_key"


@dataclass(frozen=True)
class LoginResult:
    user: User
    tokens: TokenPair
    created: bool


async def login(ctx: ServiceContext, *, code: str) -> LoginResult:
    try:
        session = await ctx.wechat.code2session(code)
    except (WeChatAPIError, WeChatUnavailable) as exc:
        raise translate(exc, field="code") from exc

    openid = session["openid"]
    unionid = session.get("unionid")
    session_key_enc = ctx.pii.encrypt(session["session_key"], purpose=SESSION_KEY_PURPOSE)

    async def work(conn: BaseDBAsyncClient) -> LoginResult:
        # No SELECT ... FOR UPDATE of a row that may not exist: on MySQL that takes a gap lock, and two
        # first logins (any two openids in one gap) then deadlock on their INSERTs. A plain read, then
        # the INSERT (a concurrent first login of the same openid fails it on the unique key) or an
        # UPDATE by primary key, which locks that one row.
        user = await User.filter(openid=openid).using_db(conn).first()
        created = user is None
        if user is None:
            user = await User.create(openid=openid, using_db=conn)
        user.session_key_enc = session_key_enc
        user.last_login_at = utcnow()
        if unionid:
            user.unionid = unionid
        await user.save(using_db=conn, update_fields=["session_key_enc", "last_login_at", "unionid"])
        tokens = await issue_pair(ctx, user, conn=conn)
        return LoginResult(user, tokens, created)

    try:
        return await atomic(work)
    except IntegrityError:
        # Two first logins of one openid raced and the other created the user: log in to that one.
        return await atomic(work)
