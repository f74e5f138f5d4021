"""Translate WeChat's answers into our errors. Handlers never see WeChat codes."""

from __future__ import annotations

import logging

from core.errors import AppError, Forbidden, RateLimited, UpstreamUnavailable
from integrations.wechat import WeChatAPIError, WeChatUnavailable

log = logging.getLogger(__name__)

CODE_ERRCODES = {40029, 40163}  # invalid code, code been used


class WeChatCodeInvalid(AppError):
    status, code, message = 400, "WECHAT_CODE_INVALID", "微信授权码无效或已使用，请重新授权"


class WeChatUserBlocked(Forbidden):
    code, message = "WECHAT_USER_BLOCKED", "微信账号存在风险，暂无法登录"


# What ``translate`` can answer: operations that call WeChat list these among their errors.
WECHAT_ERRORS = (WeChatCodeInvalid, WeChatUserBlocked, RateLimited, UpstreamUnavailable)


def translate(exc: Exception, *, field: str | None = None) -> AppError:
    if isinstance(exc, WeChatUnavailable):
        log.warning("wechat unavailable", extra={"api": exc.api, "reason": exc.reason})
        return UpstreamUnavailable()
    if isinstance(exc, WeChatAPIError):
        if exc.errcode in CODE_ERRCODES:
            return WeChatCodeInvalid(field=field)
        if exc.errcode == 45011:
            return RateLimited(headers={"Retry-After": "60"})
        if exc.errcode == 40226:
            return WeChatUserBlocked()
        # Anything else (bad appid/secret, quota) is our configuration or WeChat's problem, not the user's.
        log.error("wechat rejected a call", extra={"api": exc.api, "errcode": exc.errcode})
        return UpstreamUnavailable()
    raise TypeError(f"not a WeChat error: {exc!r}")
