"""Login, token refresh, logout, and the user's own profile."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty

from handlers.common import services
from core.pii import mask_phone
from handlers.spec import Body, Out, Response, answer, operation
from services import users as user_svc
from services.auth import login as login_svc
from services.auth import tokens as token_svc
from services.auth.tokens import RefreshTokenInvalid, RefreshTokenReused
from services.context import ServiceContext
from services.users import PhoneNotSupported
from services.wechat_errors import WECHAT_ERRORS

bp = Blueprint("mp_auth")


class LoginBody(Body):
    code: str = Field(min_length=1, max_length=128, description="the code from `wx.login` (single use, 5 minutes)")


class RefreshBody(Body):
    refresh_token: str = Field(min_length=1, max_length=256)


class PhoneBody(Body):
    code: str = Field(min_length=1, max_length=128, description="the code from the getPhoneNumber button")


class TokenPairOut(Out):
    access_token: str = Field(description="JWT, at most 15 minutes")
    refresh_token: str = Field(description="opaque; rotates on every use")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds the access token lives")


class UserOut(Out):
    id: int
    phone: str | None = Field(description="masked: 138****5678")
    created_at: datetime

    @classmethod
    def of(cls, ctx: ServiceContext, user: Any) -> UserOut:  # type: ignore[override]
        phone = user_svc.phone_of(ctx, user)
        return super().of(user, phone=mask_phone(phone) if phone else None)


class LoginOut(TokenPairOut):
    user: UserOut

    @classmethod
    def of(cls, ctx: ServiceContext, result: login_svc.LoginResult) -> LoginOut:  # type: ignore[override]
        return super().of(result.tokens, user=UserOut.of(ctx, result.user))


class IdCardCheck(Out):
    done: bool = Field(description="verified and not expired")
    verified_at: datetime | None
    valid_until: str | None = Field(description="YYYY-MM-DD, or 长期 (long-term)")


class FaceCheck(Out):
    done: bool = Field(description="passed and still fresh")
    valid_until: datetime | None


class BankCardCheck(Out):
    done: bool
    card_number: str | None = Field(description="masked: 622202******1234")
    card_class: Literal["I", "II", "III", "credit"] | None
    bank_name: str | None


class IdentityOut(Out):
    name: str | None = Field(description="masked: 张*丰")
    id_number: str | None = Field(description="masked: 1101**********002X")
    id_card: IdCardCheck
    face: FaceCheck
    bank_card: BankCardCheck

    @classmethod
    def of(cls, status: Any) -> IdentityOut:  # type: ignore[override]
        verified = status.id_verified_at is not None
        valid_until = (status.id_valid_until.isoformat() if status.id_valid_until else "长期") if verified else None
        return cls(
            name=status.name, id_number=status.id_number,
            id_card=IdCardCheck(done=status.id_done, verified_at=status.id_verified_at, valid_until=valid_until),
            face=FaceCheck(done=status.face_done, valid_until=status.face_valid_until),
            bank_card=BankCardCheck(done=status.card_done, card_number=status.card_number,
                                    card_class=status.card_class, bank_name=status.bank_name))


class MeOut(UserOut):
    identity: IdentityOut

    @classmethod
    def of(cls, profile: user_svc.Profile) -> MeOut:  # type: ignore[override]
        # the profile comes masked already (read in one round trip): Out.of, not UserOut.of
        return super(UserOut, cls).of(profile, identity=IdentityOut.of(profile.identity))


class PhoneOut(Out):
    phone: str = Field(description="masked: 138****5678")


@bp.post("/auth/login")
@operation(
    limit="login",
    summary="Log in with a wx.login code",
    description="Exchanges the code with WeChat (jscode2session), creates or updates the user keyed by openid, "
    "and returns an access JWT (<= 15 min) and an opaque refresh token.",
    tag="auth",
    body=LoginBody,
    responses={200: Response(LoginOut)},
    errors=WECHAT_ERRORS,
)
async def login(request: Request, body: LoginBody) -> HTTPResponse:
    ctx = services(request)
    result = await login_svc.login(ctx, code=body.code)
    return answer(LoginOut.of(ctx, result))


@bp.post("/auth/refresh")
@operation(
    summary="Rotate the token pair",
    description="Exchanges a refresh token for a new pair; the old refresh token stops working. Presenting an "
    "already-rotated token revokes every token of that login (401 REFRESH_TOKEN_REUSED).",
    tag="auth",
    body=RefreshBody,
    responses={200: Response(TokenPairOut)},
    errors=(RefreshTokenInvalid, RefreshTokenReused),
)
async def refresh(request: Request, body: RefreshBody) -> HTTPResponse:
    pair = await token_svc.rotate(services(request), body.refresh_token)
    return answer(TokenPairOut.model_validate(pair))


@bp.post("/auth/logout")
@operation(
    summary="Log out: revoke this login's refresh tokens",
    description="The access tokens of this login stop working within seconds on every server "
    "(`REVOCATION_POLL_S`, 2 by default), at once on the one that answered.",
    tag="auth",
    auth=True,
    responses={204: Response(description="logged out")},
)
async def logout(request: Request) -> HTTPResponse:
    await token_svc.revoke_family(services(request), request.ctx.token_family)
    return empty(status=204)


@bp.get("/me")
@operation(
    summary="The current user, masked, with which identity checks are done and until when",
    tag="me",
    auth=True,
    responses={200: Response(MeOut)},
    errors=((404, "NOT_FOUND"),),
)
async def me(request: Request) -> HTTPResponse:
    return answer(MeOut.of(await user_svc.profile(services(request), request.ctx.user_id)))


@bp.post("/me/phone")
@operation(
    limit="phone",
    summary="Bind the WeChat phone number",
    description="Exchanges a getPhoneNumber code with WeChat; the phone is stored encrypted and returned masked.",
    tag="me",
    auth=True,
    body=PhoneBody,
    responses={200: Response(PhoneOut)},
    errors=(*WECHAT_ERRORS, PhoneNotSupported, (404, "NOT_FOUND")),
)
async def bind_phone(request: Request, body: PhoneBody) -> HTTPResponse:
    masked = await user_svc.bind_phone(services(request), request.ctx.user_id, code=body.code)
    return answer(PhoneOut(phone=masked))
