"""Plumbing shared by the emulated WeChat server APIs: the error body, access-token checks,
fault injection and the call log.

WeChat answers errors with HTTP 200 and ``{"errcode": N, "errmsg": "... rid: <id>"}``
(https://developers.weixin.qq.com/miniprogram/dev/framework/server-ability/backend-api.html,
global error codes: https://developers.weixin.qq.com/doc/oplatform/Return_codes/Return_code_descriptions_new.html).

Errcodes the sandbox uses (besides those fixed by WeChat's docs):
- a missing ``access_token`` query parameter answers 40001 like an unknown one (real WeChat says
  41001 "access_token missing"; the sandbox follows the project brief);
- ``-1`` "system error" when the emulator itself fails unexpectedly (logged with a traceback).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from functools import partial
from typing import Any, Awaitable, Callable

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json as json_response, text

from sandbox.state import State

log = logging.getLogger("sandbox.wechat")

dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    42001: "access_token expired",
    43002: "require POST method",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    47003: "argument invalid!",
    84001: "invalid verify_id",
    84002: "verify_id expired",
    101000: "image url or data error",
    101001: "certificate not found",
    101002: "not enough market quota",
    101003: "img_url is not supported by the offline sandbox, upload img instead",
}


def rid() -> str:
    """A request id shaped like WeChat's (``6650a8f2-1c7b3a9e-5d2f0c11``)."""
    return f"{int(time.time()):08x}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def errmsg(errcode: int, detail: str | None = None) -> str:
    base = ERRMSG.get(errcode, "sandbox injected error")
    if detail:
        base = f"{base} {detail}"
    return f"{base} rid: {rid()}"


class WxError(Exception):
    """Raised by an API implementation to answer ``{"errcode", "errmsg"}`` with HTTP 200."""

    def __init__(self, errcode: int, detail: str | None = None):
        super().__init__(errcode, detail)
        self.errcode = errcode
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "errmsg": errmsg(self.errcode, self.detail)}


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def parse_json_body(request: Request) -> dict[str, Any]:
    """The JSON object in the body, whatever the Content-Type (wechatpy sends none)."""
    if not request.body:
        raise WxError(44002)
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise WxError(47001, "body is not JSON") from None
    if not isinstance(data, dict):
        raise WxError(47001, "body is not a JSON object")
    return data


def require_str(data: dict[str, Any], name: str, errcode: int = 47001) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise WxError(errcode, f"{name} missing or not a string")
    return value


def normalise_path(path: str) -> str:
    """``/sandbox/wechat/sns/jscode2session`` → ``sns/jscode2session``; ``/sandbox/cardnet/x`` → ``cardnet/x``."""
    path = (path or "").strip().split("?", 1)[0].strip("/")
    if path.startswith("sandbox/"):
        path = path[len("sandbox/"):]
    if path.startswith("wechat/"):
        path = path[len("wechat/"):]
    return path


async def check_access_token(state: State, request: Request) -> str:
    """Return the appid the ``access_token`` query parameter was issued to, or raise 40001/42001."""
    token = request.args.get("access_token")
    if not token:
        raise WxError(40001)
    row = await state.fetchone("SELECT appid, expires_at FROM access_tokens WHERE token = ?", (token,))
    if row is None:
        raise WxError(40001)
    if row["expires_at"] <= time.time():
        raise WxError(42001)
    return row["appid"]


async def apply_fault(state: State, path: str) -> HTTPResponse | dict[str, Any] | None:
    """Consume and apply the next injected fault for ``path``: sleep, then maybe answer with it."""
    fault = await state.take_fault(path)
    if fault is None:
        return None
    if fault["delay_s"]:
        await asyncio.sleep(float(fault["delay_s"]))
    if fault["http_status"]:
        status = int(fault["http_status"])
        return text(f"sandbox injected fault: HTTP {status}\n", status=status)
    if fault["errcode"] is not None:
        return WxError(int(fault["errcode"]), "(sandbox injected fault)").body()
    return None


Impl = Callable[..., Awaitable[dict[str, Any] | HTTPResponse]]


def add_wechat_api(
    bp: Blueprint,
    state: State,
    path: str,
    impl: Impl,
    *,
    methods: tuple[str, ...] = ("POST",),
    needs_token: bool = True,
) -> None:
    """Register ``impl`` at ``/<path>`` of the WeChat blueprint with the common behaviour:
    fault injection, POST-only check (43002), access-token check, error mapping and call log.

    ``impl(request)`` or, when ``needs_token``, ``impl(request, appid)`` returns the JSON body
    (a dict) or a ready response, or raises :class:`WxError`.
    """
    allowed = {m.upper() for m in methods}
    route_methods = sorted(allowed | ({"GET"} if "POST" in allowed else set()))

    async def handler(request: Request) -> HTTPResponse:
        body: dict[str, Any] | HTTPResponse | None = await apply_fault(state, path)
        if body is None:
            try:
                if request.method.upper() not in allowed:
                    raise WxError(43002)
                if needs_token:
                    appid = await check_access_token(state, request)
                    body = await impl(request, appid)
                else:
                    body = await impl(request)
            except WxError as exc:
                body = exc.body()
            except Exception:  # noqa: BLE001 - the emulator must answer like WeChat, not 500
                log.exception("sandbox WeChat API %s failed", path)
                body = WxError(-1).body()
        if isinstance(body, HTTPResponse):
            response = body
            errcode = None
            if response.content_type and "json" in response.content_type and response.body:
                try:
                    errcode = json.loads(response.body).get("errcode", 0)
                except (ValueError, AttributeError):
                    errcode = None
        else:
            response = json_response(body, dumps=dumps)
            errcode = int(body.get("errcode", 0))
        await state.record_call(path, errcode, response.status)
        return response

    state.api_paths.add(path)
    bp.add_route(handler, "/" + path, methods=route_methods, name="api_" + path.replace("/", "_"))
