"""Login, token refresh, logout, and the user's own profile."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json
from sanic_ext import openapi

from handlers.common import authenticated, parse_body, services
from services.auth import login as login_svc
from services.auth import tokens as token_svc
from services import users as user_svc
from services.identity.status import identity_status

bp = Blueprint("mp_auth")


class LoginBody(BaseModel):
    code: str = Field(min_length=1, max_length=128, description="the code from wx.login")


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class PhoneBody(BaseModel):
    code: str = Field(min_length=1, max_length=128, description="the code from the getPhoneNumber button")


@bp.post("/auth/login")
@openapi.summary("Log in with a wx.login code")
@openapi.description(
    "Exchanges the code with WeChat (jscode2session), creates or updates the user keyed by openid, and "
    "returns an access JWT (<= 15 min) and an opaque refresh token. Errors: 400 WECHAT_CODE_INVALID "
    "(invalid, used or expired code), 429 RATE_LIMITED, 503 UPSTREAM_UNAVAILABLE."
)
@openapi.body({"application/json": LoginBody})
@openapi.tag("auth")
async def login(request: Request) -> HTTPResponse:
    body = parse_body(request, LoginBody)
    ctx = services(request)
    result = await login_svc.login(ctx, code=body.code)
    return json({**result.tokens.as_dict(), "user": user_svc.public_user(ctx, result.user)})


@bp.post("/auth/refresh")
@openapi.summary("Rotate the token pair")
@openapi.description(
    "Exchanges a refresh token for a new pair; the old refresh token stops working. Presenting an "
    "already-rotated token revokes every token of that login (401 REFRESH_TOKEN_REUSED)."
)
@openapi.body({"application/json": RefreshBody})
@openapi.tag("auth")
async def refresh(request: Request) -> HTTPResponse:
    body = parse_body(request, RefreshBody)
    pair = await token_svc.rotate(services(request), body.refresh_token)
    return json(pair.as_dict())


@bp.post("/auth/logout")
@openapi.summary("Log out: revoke this login's refresh tokens")
@openapi.secured("bearer")
@openapi.tag("auth")
@authenticated
async def logout(request: Request) -> HTTPResponse:
    await token_svc.revoke_family(request.ctx.token_family)
    return empty(status=204)


@bp.get("/me")
@openapi.summary("The current user, masked, with which identity checks are done and until when")
@openapi.secured("bearer")
@openapi.tag("me")
@authenticated
async def me(request: Request) -> HTTPResponse:
    ctx = services(request)
    user = await user_svc.get_user(request.ctx.user_id)
    return json({**user_svc.public_user(ctx, user), "identity": await identity_status(ctx, user.id)})


@bp.post("/me/phone")
@openapi.summary("Bind the WeChat phone number")
@openapi.description("Exchanges a getPhoneNumber code with WeChat; the phone is stored encrypted and returned masked.")
@openapi.body({"application/json": PhoneBody})
@openapi.secured("bearer")
@openapi.tag("me")
@authenticated
async def bind_phone(request: Request) -> HTTPResponse:
    body = parse_body(request, PhoneBody)
    masked = await user_svc.bind_phone(services(request), request.ctx.user_id, code=body.code)
    return json({"phone": masked})
