"""One error shape for every failure: ``{"error": {"code", "message", "field"?}}``.

Our ``AppError``s render as themselves; Sanic's own exceptions (404, 405, 413, ...) get a stable code;
a database that cannot be reached or cannot serve now is 503 ``DB_UNAVAILABLE``, and a transaction conflict
that outlasted ``atomic``'s tries 503 ``CONFLICT_RETRY``, both with ``Retry-After`` and both meaning
"outcome unknown: retry the same request" (``core.errors.OUTCOME_UNKNOWN``); anything else unexpected is
a 500 with the request id and no stack trace in the body.
"""

from __future__ import annotations

import logging

from sanic import Request
from sanic.exceptions import MethodNotAllowed, PayloadTooLarge, SanicException
from sanic.response import HTTPResponse, json
from sanic_routing.exceptions import NoMethod, NotFound as RouteNotFound

from tortoise.exceptions import ValidationError as TortoiseValidationError

from app import middleware
from core.errors import AppError, ConflictRetry, DatabaseUnavailable
from services.db import is_conflict, is_unavailable

log = logging.getLogger("app.errors")

_SANIC_CODES = {
    400: ("BAD_REQUEST", "请求有误"),
    401: ("UNAUTHORIZED", "请先登录"),
    403: ("FORBIDDEN", "无权执行此操作"),
    404: ("NOT_FOUND", "资源不存在"),
    405: ("METHOD_NOT_ALLOWED", "不支持该请求方法"),
    408: ("REQUEST_TIMEOUT", "请求超时"),
    413: ("PAYLOAD_TOO_LARGE", "请求内容过大"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "不支持的内容类型"),
    416: ("RANGE_NOT_SATISFIABLE", "请求范围无效"),
    422: ("VALIDATION_ERROR", "请求参数不正确"),
    429: ("RATE_LIMITED", "操作过于频繁，请稍后再试"),
    431: ("REQUEST_HEADER_FIELDS_TOO_LARGE", "请求头过大"),
    503: ("SERVICE_UNAVAILABLE", "服务暂时不可用"),
}


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods the matched path answers (Sanic names them only for static paths)."""
    allowed = []
    for method in HTTP_METHODS:
        try:
            request.app.router.get(request.path, method, request.headers.getone("host", None))
        except (MethodNotAllowed, NoMethod, RouteNotFound, SanicException):
            continue
        allowed.append(method)
    return allowed


def _status_of(exc: SanicException) -> int:
    # Sanic reports an oversized request head as 413; HTTP calls that 431 (RFC 6585), and a client
    # told 413 would wrongly shrink its body. The message is Sanic's own (sanic/http/http1.py).
    if isinstance(exc, PayloadTooLarge) and "header" in str(exc).lower():
        return 431
    return exc.status_code


def error_response(request: Request, exc: Exception) -> HTTPResponse:
    request_id = middleware.request_id(request)
    if isinstance(exc, AppError):
        return json(exc.body(), status=exc.status, headers=exc.headers)
    if isinstance(exc, TortoiseValidationError):
        # A value the model refuses (too long for its column...) that the contract let through: still the
        # caller's input, so a 422, but logged, because the contract should have said so first.
        log.warning("model validation refused input", extra={"request_id": request_id, "reason": type(exc).__name__})
        return json({"error": {"code": "VALIDATION_ERROR", "message": "请求参数不正确"}}, status=422)
    if isinstance(exc, SanicException) and 400 <= exc.status_code < 500:
        status = _status_of(exc)
        code, message = _SANIC_CODES.get(status, ("BAD_REQUEST", "请求有误"))
        headers = dict(getattr(exc, "headers", None) or {})
        if status == 405 and "Allow" not in headers:
            # RFC 9110: a 405 names the methods the resource does support.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return json({"error": {"code": code, "message": message}}, status=status, headers=headers)
    if is_unavailable(exc):
        # an outage, not a bug: the caller is told to come back (and a load balancer sees 503)
        log.warning("database unavailable", extra={"request_id": request_id, "reason": type(exc).__name__,
                                                   "route": getattr(request, "path", "")})
        return error_response(request, DatabaseUnavailable(headers={"Retry-After": "2"}))
    if is_conflict(exc):
        # contention on hot rows that outlasted atomic's tries (or a lone statement's conflict): busy, not broken
        log.warning("transaction conflict persisted", extra={"request_id": request_id, "route": getattr(request, "path", "")})
        return error_response(request, ConflictRetry(headers={"Retry-After": "1"}))
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": request_id, "route": getattr(request, "path", "")},
    )
    body = {"error": {"code": "INTERNAL_ERROR", "message": "服务器内部错误，请稍后再试", "request_id": request_id}}
    return json(body, status=500)
