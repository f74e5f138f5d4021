"""One error shape for every failure: ``{"error": {"code", "message", "field"?}}``.

Our ``AppError``s render as themselves; Sanic's own exceptions (404, 405, 413, ...) get a stable code;
anything unexpected is a 500 with the request id and no stack trace in the body.
"""

from __future__ import annotations

import logging

from sanic import Request
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

from core.errors import AppError

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
    503: ("SERVICE_UNAVAILABLE", "服务暂时不可用"),
}


def error_response(request: Request, exc: Exception) -> HTTPResponse:
    request_id = getattr(request.ctx, "request_id", None)
    if isinstance(exc, AppError):
        return json(exc.body(), status=exc.status, headers=exc.headers)
    if isinstance(exc, SanicException) and 400 <= exc.status_code < 500:
        code, message = _SANIC_CODES.get(exc.status_code, ("BAD_REQUEST", "请求有误"))
        return json({"error": {"code": code, "message": message}}, status=exc.status_code, headers=getattr(exc, "headers", None))
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": request_id, "route": getattr(request, "path", "")},
    )
    body = {"error": {"code": "INTERNAL_ERROR", "message": "服务器内部错误，请稍后再试", "request_id": request_id}}
    return json(body, status=500)
