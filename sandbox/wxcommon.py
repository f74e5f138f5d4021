"""Plumbing shared by the emulated WeChat server APIs: the error body, access-token checks,
fault injection and the call log.

WeChat answers errors with HTTP 200 and ``{"errcode": N, "errmsg": "... rid: <id>"}``
(https://developers.weixin.qq.com/miniprogram/dev/framework/server-ability/backend-api.html,
global error codes: https://developers.weixin.qq.com/doc/oplatform/Return_codes/Return_code_descriptions_new.html).

Errcodes the sandbox uses (besides those fixed by each API's doc):
- a missing ``access_token`` query parameter answers 41001 "access_token missing" and an unknown
  one 40001, as WeChat's global error codes say
  (https://developers.weixin.qq.com/doc/oplatform/developers/errCode/errCode.html);
- a known API called with a method it does not take answers 43002 "require POST method" (POST
  APIs) or 43001 "require GET method" (GET APIs), both global codes;
- an unknown path under ``/sandbox/wechat/`` (any method) answers HTTP 200 with 48001 "api
  unauthorized". WeChat documents no code for a path that is not an API; 48001 is what
  api.weixin.qq.com is reported to answer for a mistyped URL (public issue threads
  node-webot/co-wechat-api#81 and binarywang/WxJava#1038) and the closest global code;
- ``-1`` "system error" when the emulator itself fails unexpectedly (logged with a traceback).

Fault injection (``POST /sandbox/control/faults``), applied by :func:`serve_with_fault` to every
emulated API including the card network: with ``when: "before"`` (the default) the fault is applied
instead of the real work (which is then not done, unless the fault only delays); with ``when:
"after"`` the real work is done and committed first, and only its reply is spoiled: delayed
(``delay_s``), replaced by an HTTP status with a plain-text body (``http_status``), by an errcode
body (``errcode``), by exactly the given JSON body with HTTP 200 (``body``), or not sent at all, the
connection being closed (``drop``). That is how a read timeout after a one-shot call (a login code
or phone code consumed, a message sent) looks to the backend. The call log records the status that
was sent, or 0 for a dropped reply, and the errcode of the body that was (or, when dropped, would
have been) sent.
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

from sandbox.state import Fault, State

log = logging.getLogger("sandbox.wechat")

dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40009: "invalid image size",
    40013: "invalid appid",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    41030: "invalid page",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    47003: "argument invalid!",
    48001: "api unauthorized",
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
    """Return the appid the ``access_token`` query parameter was issued to, or raise 41001 (missing),
    40001 (unknown) or 42001 (expired)."""
    token = request.args.get("access_token")
    if not token:
        raise WxError(41001)
    row = await state.fetchone("SELECT appid, expires_at FROM access_tokens WHERE token = ?", (token,))
    if row is None:
        raise WxError(40001)
    if row["expires_at"] <= time.time():
        raise WxError(42001)
    return row["appid"]


def fault_reply(fault: Fault) -> HTTPResponse | None:
    """The reply a fault puts in place of the real one (None: it only delays or drops)."""
    if fault.http_status:
        status = int(fault.http_status)
        return text(f"sandbox injected fault: HTTP {status}\n", status=status)
    if fault.errcode is not None:
        return json_response(WxError(int(fault.errcode), "(sandbox injected fault)").body(), dumps=dumps)
    if fault.body is not None:
        return json_response(fault.body, dumps=dumps)
    return None


def errcode_of(response: HTTPResponse | None) -> int | None:
    """The ``errcode`` of a WeChat JSON reply (0 when absent, as in jscode2session's success)."""
    if response is None or not response.content_type or "json" not in response.content_type or not response.body:
        return None
    try:
        body = json.loads(response.body)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    errcode = body.get("errcode", 0)
    return errcode if isinstance(errcode, int) and not isinstance(errcode, bool) else None


def drop_connection(request: Request) -> None:
    """Close the client's connection without a reply (the response returned after this is not sent)."""
    transport = getattr(request, "transport", None)
    if transport is not None:
        try:
            transport.close()
        except Exception:  # already gone
            log.debug("closing the connection failed", exc_info=True)


async def serve_with_fault(
    state: State,
    request: Request,
    path: str,
    work: Callable[[], Awaitable[HTTPResponse]],
    *,
    errcodes: bool = True,
    reply: Callable[[Fault], HTTPResponse | None] | None = None,
) -> HTTPResponse:
    """Run ``work`` (the real API) under the next injected fault for ``path``, if any, and log the call.

    See the module docstring for what ``when`` before/after, ``delay_s``, ``http_status``,
    ``errcode``, ``body`` and ``drop`` do. ``errcodes``: log the reply's errcode (WeChat APIs) or
    not (the card network has none). ``reply``: how a fault answers (default ``fault_reply``;
    WeChat Pay has its own error shape)."""
    reply = reply or fault_reply
    fault = await state.take_fault(path)
    response: HTTPResponse | None = None
    if fault is not None and fault.when == "before":
        if fault.delay_s:
            await asyncio.sleep(float(fault.delay_s))
        response = reply(fault)
    if response is None and not (fault is not None and fault.when == "before" and fault.drop):
        response = await work()
    if fault is not None and fault.when == "after":
        response = reply(fault) or response
    dropped = fault is not None and fault.drop
    # Logged before an "after" delay: Sanic cancels this handler when the client gives up meanwhile.
    await state.record_call(
        path,
        errcode_of(response) if errcodes else None,
        0 if dropped or response is None else response.status,
    )
    if fault is not None and fault.when == "after" and fault.delay_s:
        await asyncio.sleep(float(fault.delay_s))
    if dropped or response is None:
        drop_connection(request)
        return HTTPResponse(status=204)
    return response


Impl = Callable[..., Awaitable[dict[str, Any] | HTTPResponse]]

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


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
    wrong_method = 43002 if "POST" in allowed else 43001

    async def handler(request: Request) -> HTTPResponse:
        async def work() -> HTTPResponse:
            body: dict[str, Any] | HTTPResponse
            try:
                if request.method.upper() not in allowed:
                    raise WxError(wrong_method)
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
            return body if isinstance(body, HTTPResponse) else json_response(body, dumps=dumps)

        return await serve_with_fault(state, request, path, work)

    state.api_paths.add(path)
    # Every method reaches the handler, so a wrong one gets WeChat's 43001/43002 rather than the
    # host app's 405 page.
    bp.add_route(handler, "/" + path, methods=list(ALL_METHODS), name="api_" + path.replace("/", "_"))


def add_unknown_api_route(bp: Blueprint, state: State) -> None:
    """Answer any other path under the WeChat blueprint, any method, like api.weixin.qq.com: HTTP 200
    with 48001 "api unauthorized" (see the module docstring). A catch-all route of the blueprint,
    not an app-level 404 handler, so it also works when the backend mounts the sandbox next to its
    own routes and error handlers."""

    async def unknown_api(request: Request, rest: str = "") -> HTTPResponse:
        path = normalise_path(rest) or "/"
        body = WxError(48001, "(sandbox: no such API)").body()
        await state.record_call(path, 48001, 200)
        return json_response(body, dumps=dumps)

    bp.add_route(unknown_api, "/<rest:path>", methods=list(ALL_METHODS), name="api_unknown")
    bp.add_route(unknown_api, "/", methods=list(ALL_METHODS), name="api_unknown_root")
