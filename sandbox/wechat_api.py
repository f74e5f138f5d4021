"""Emulated WeChat mini-program server API, mounted at ``/sandbox/wechat`` (stands for
``https://api.weixin.qq.com``): login, access tokens, phone number; subscribe messages, OCR and face
verification 2.0 come from :mod:`sandbox.subscribe`, :mod:`sandbox.ocr` and :mod:`sandbox.face`;
any other path answers 48001 (see :mod:`sandbox.wxcommon`).

WeChat docs:
- code2Session: https://developers.weixin.qq.com/miniprogram/dev/server/API/user-login/api_code2session
- getAccessToken: https://developers.weixin.qq.com/miniprogram/dev/server/API/mp-access-token/api_getaccesstoken
- getStableAccessToken: https://developers.weixin.qq.com/miniprogram/dev/server/API/mp-access-token/api_getstableaccesstoken
- getPhoneNumber: https://developers.weixin.qq.com/miniprogram/dev/server/API/user-info/phone-number/api_getphonenumber

Sandbox choices:
- jscode2session checks, in order: appid (41002 missing / 40013 unknown), secret (41004 / 40125),
  grant_type == authorization_code (40002), js_code (41008 missing); then the code: used → 40163,
  unknown / minted for another appid / expired → 40029. A code is consumed by one atomic UPDATE.
- cgi-bin/token: each call issues a new token (7200 s); earlier tokens of that appid stay valid for
  at most 300 s more.
- stable_token: normal mode returns the current stable token while it has ≥ 300 s left (with its
  remaining ``expires_in``), else issues a new one. ``force_refresh: true`` issues a new token and
  cuts the previous ones to ≤ 300 s. Force refreshes are limited per appid to
  ``stable_token_daily_force_limit`` per rolling 24 h (45009) and spaced by
  ``stable_token_refresh_interval_s`` (45011); both default to WeChat's 20 and 30 s and can be
  changed at run time with ``POST /sandbox/control/settings`` (set the interval to 0 in tests).
- subscribe/send: see :mod:`sandbox.subscribe` (40003, 40037, 47003, 41030).
- getuserphonenumber: missing ``code`` → 47001; unknown/used/expired/other appid → 40029.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import time
from typing import Any

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from sandbox.config import SandboxConfig
from sandbox.control_kit import PHONE_RE, Body, ControlRoutes, LenientBody, answer, appid_of, parse
from sandbox.state import State
from sandbox import face, ocr, subscribe
from sandbox.wxcommon import WxError, add_unknown_api_route, add_wechat_api, ok, parse_json_body, require_str

ACCESS_TOKEN_TTL = 7200
TOKEN_OVERLAP = 300
STABLE_MIN_LEFT = 300


def new_access_token() -> str:
    return secrets.token_urlsafe(96)  # 128 characters, like WeChat's long tokens


def check_app(config: SandboxConfig, appid: str | None, secret: str | None) -> str:
    if not appid:
        raise WxError(41002)
    expected = config.apps.get(appid)
    if expected is None:
        raise WxError(40013)
    if not secret:
        raise WxError(41004)
    if not hmac.compare_digest(expected.encode(), secret.encode()):
        raise WxError(40125)
    return appid


def create_wechat_blueprint(config: SandboxConfig, state: State) -> Blueprint:
    bp = Blueprint("sandbox_wechat", url_prefix="/wechat")

    # -- sns/jscode2session ------------------------------------------------------------------

    async def jscode2session(request: Request) -> dict[str, Any]:
        args = request.args
        appid = check_app(config, args.get("appid"), args.get("secret"))
        if args.get("grant_type") != "authorization_code":
            raise WxError(40002)
        code = args.get("js_code")
        if not code:
            raise WxError(41008)
        now = time.time()
        row = await state.fetchone(
            "UPDATE login_codes SET used_at = ? "
            "WHERE code = ? AND appid = ? AND used_at IS NULL AND expires_at > ? "
            "RETURNING openid, unionid",
            (now, code, appid, now),
        )
        if row is None:
            known = await state.fetchone("SELECT appid, used_at FROM login_codes WHERE code = ?", (code,))
            if known is not None and known["appid"] == appid and known["used_at"] is not None:
                raise WxError(40163)
            raise WxError(40029)
        session_key = base64.b64encode(secrets.token_bytes(16)).decode()
        await state.execute(
            "UPDATE users SET session_key = ? WHERE appid = ? AND openid = ?",
            (session_key, appid, row["openid"]),
        )
        body: dict[str, Any] = {"session_key": session_key, "openid": row["openid"]}
        if row["unionid"]:
            body["unionid"] = row["unionid"]
        return body

    add_wechat_api(bp, state, "sns/jscode2session", jscode2session, methods=("GET",), needs_token=False)

    # -- cgi-bin/token -----------------------------------------------------------------------

    async def token(request: Request) -> dict[str, Any]:
        args = request.args
        if args.get("grant_type") != "client_credential":
            raise WxError(40002)
        appid = check_app(config, args.get("appid"), args.get("secret"))
        now = time.time()
        value = new_access_token()
        async with state.tx() as tx:
            await tx.execute(
                "UPDATE access_tokens SET expires_at = MIN(expires_at, ?) WHERE appid = ? AND family = 'basic'",
                (now + TOKEN_OVERLAP, appid),
            )
            await tx.execute(
                "INSERT INTO access_tokens (token, appid, family, issued_at, expires_at) "
                "VALUES (?, ?, 'basic', ?, ?)",
                (value, appid, now, now + ACCESS_TOKEN_TTL),
            )
        return {"access_token": value, "expires_in": ACCESS_TOKEN_TTL}

    add_wechat_api(bp, state, "cgi-bin/token", token, methods=("GET",), needs_token=False)

    # -- cgi-bin/stable_token ----------------------------------------------------------------

    async def stable_token(request: Request) -> dict[str, Any]:
        data = parse_json_body(request)
        if data.get("grant_type") != "client_credential":
            raise WxError(40002)
        appid = check_app(config, data.get("appid"), data.get("secret"))
        force = data.get("force_refresh", False)
        if not isinstance(force, bool):
            raise WxError(47001, "force_refresh must be a boolean")
        interval = await state.get_setting("stable_token_refresh_interval_s", config.stable_token_refresh_interval_s)
        daily = await state.get_setting("stable_token_daily_force_limit", config.stable_token_daily_force_limit)
        now = time.time()
        async with state.tx() as tx:
            current = await tx.fetchone(
                "SELECT token, expires_at FROM access_tokens WHERE appid = ? AND family = 'stable' "
                "ORDER BY issued_at DESC LIMIT 1",
                (appid,),
            )
            if not force and current is not None and current["expires_at"] - now >= STABLE_MIN_LEFT:
                return {"access_token": current["token"], "expires_in": int(current["expires_at"] - now)}
            if force:
                recent = await tx.fetchone(
                    "SELECT COUNT(*) AS n, MAX(issued_at) AS last FROM access_tokens "
                    "WHERE appid = ? AND family = 'stable' AND forced = 1 AND issued_at > ?",
                    (appid, now - 86400),
                )
                if recent["n"] >= daily:
                    raise WxError(45009)
                if recent["last"] is not None and now - recent["last"] < interval:
                    raise WxError(45011)
                await tx.execute(
                    "UPDATE access_tokens SET expires_at = MIN(expires_at, ?) WHERE appid = ? AND family = 'stable'",
                    (now + TOKEN_OVERLAP, appid),
                )
            value = new_access_token()
            await tx.execute(
                "INSERT INTO access_tokens (token, appid, family, forced, issued_at, expires_at) "
                "VALUES (?, ?, 'stable', ?, ?, ?)",
                (value, appid, 1 if force else 0, now, now + ACCESS_TOKEN_TTL),
            )
        return {"access_token": value, "expires_in": ACCESS_TOKEN_TTL}

    add_wechat_api(bp, state, "cgi-bin/stable_token", stable_token, needs_token=False)

    # -- wxa/business/getuserphonenumber -----------------------------------------------------

    async def getuserphonenumber(request: Request, appid: str) -> dict[str, Any]:
        data = parse_json_body(request)
        code = require_str(data, "code")
        now = time.time()
        row = await state.fetchone(
            "UPDATE phone_codes SET used_at = ? "
            "WHERE code = ? AND appid = ? AND used_at IS NULL AND expires_at > ? RETURNING phone",
            (now, code, appid, now),
        )
        if row is None:
            raise WxError(40029)
        phone = row["phone"]
        return ok(
            phone_info={
                "phoneNumber": phone,
                "purePhoneNumber": phone,
                "countryCode": "86",
                "watermark": {"timestamp": int(now), "appid": appid},
            }
        )

    add_wechat_api(bp, state, "wxa/business/getuserphonenumber", getuserphonenumber)

    subscribe.register(bp, state)
    ocr.register(bp, state)
    face.register(bp, state)
    add_unknown_api_route(bp, state)  # last: any other path under /sandbox/wechat
    return bp



# -- control routes: the codes the user's phone gets, tokens, settings ---------------------------

OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_CODE_TTL = 300


class LoginCodeBody(LenientBody):
    appid: str | None = Field(None, description="appid is not configured in the sandbox")
    openid: str | None = Field(None, pattern=OPENID_RE.pattern, description="openid is not valid")
    unionid: str | None = Field(None, pattern=OPENID_RE.pattern, description="unionid is not valid")
    expires_in: int = Field(DEFAULT_CODE_TTL, ge=0, le=86400, description="expires_in must be an integer in [0, 86400]")


class PhoneCodeBody(LenientBody):
    phone: str = Field(pattern=PHONE_RE.pattern, description="phone must match ^1[3-9]\\d{9}$")
    appid: str | None = Field(None, description="appid is not configured in the sandbox")
    expires_in: int = Field(DEFAULT_CODE_TTL, ge=0, le=86400, description="expires_in must be an integer in [0, 86400]")


class ExpireTokensBody(LenientBody):
    appid: str | None = Field(None, min_length=1, max_length=64, description="appid is not valid")


class SettingsBody(Body):
    stable_token_refresh_interval_s: int | None = Field(
        None, ge=0, le=10**6, description="stable_token_refresh_interval_s must be an integer in [0, 1000000]")
    stable_token_daily_force_limit: int | None = Field(
        None, ge=0, le=10**6, description="stable_token_daily_force_limit must be an integer in [0, 1000000]")


def new_code() -> str:
    return secrets.token_hex(16)


def new_openid() -> str:
    return "o" + secrets.token_urlsafe(21)[:27]


def add_control_routes(routes: ControlRoutes, config: SandboxConfig, state: State) -> None:
    route = routes.route

    @route("/login-code", ["POST"])
    async def login_code(request: Request) -> HTTPResponse:
        body = parse(LoginCodeBody, request)
        appid = appid_of(config, body.appid)
        openid = body.openid or new_openid()
        now = time.time()
        code = new_code()
        async with state.tx() as tx:
            await tx.execute(
                "INSERT INTO users (appid, openid, unionid, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (appid, openid) DO UPDATE SET unionid = COALESCE(excluded.unionid, users.unionid)",
                (appid, openid, body.unionid, now),
            )
            await tx.execute(
                "INSERT INTO login_codes (code, appid, openid, unionid, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (code, appid, openid, body.unionid, now, now + body.expires_in),
            )
        return answer({"code": code, "openid": openid, "appid": appid})

    @route("/phone-code", ["POST"])
    async def phone_code(request: Request) -> HTTPResponse:
        body = parse(PhoneCodeBody, request)
        appid = appid_of(config, body.appid)
        now = time.time()
        code = new_code()
        await state.execute(
            "INSERT INTO phone_codes (code, appid, phone, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (code, appid, body.phone, now, now + body.expires_in),
        )
        return answer({"code": code})

    @route("/expire-tokens", ["POST"])
    async def expire_tokens(request: Request) -> HTTPResponse:
        appid = parse(ExpireTokensBody, request).appid
        now = time.time()
        if appid is None:
            n = await state.execute("UPDATE access_tokens SET expires_at = ? WHERE expires_at > ?", (now, now))
        else:
            n = await state.execute(
                "UPDATE access_tokens SET expires_at = ? WHERE expires_at > ? AND appid = ?", (now, now, appid)
            )
        return answer({"expired": n})

    defaults = {
        "stable_token_refresh_interval_s": config.stable_token_refresh_interval_s,
        "stable_token_daily_force_limit": config.stable_token_daily_force_limit,
    }

    async def current_settings() -> dict[str, int]:
        return {k: await state.get_setting(k, v) for k, v in defaults.items()}

    @route("/settings", ["GET"])
    async def settings_get(request: Request) -> HTTPResponse:
        return answer(await current_settings())

    @route("/settings", ["POST"])
    async def settings_set(request: Request) -> HTTPResponse:
        body = parse(SettingsBody, request)
        for key in defaults:
            value = getattr(body, key)
            if value is not None:
                await state.set_setting(key, value)
        return answer(await current_settings())
