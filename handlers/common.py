"""What every handler needs: the service context, JSON body parsing into pydantic models, and auth."""

from __future__ import annotations

import json
from functools import wraps
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sanic import Request

from core.errors import AppError, ValidationFailed
from services.auth.tokens import authenticate
from services.context import ServiceContext

M = TypeVar("M", bound=BaseModel)


def services(request: Request) -> ServiceContext:
    return request.app.ctx.services


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-case (``multipart/form-data``)."""
    return (request.content_type or "").split(";")[0].strip().lower()


def parse_body(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body. Wrong type -> 415, bad JSON -> 400, bad fields -> 422 naming one."""
    ctype = media_type(request)
    raw = request.body or b""
    if raw and ctype != "application/json":
        raise AppError("请求体须为 JSON", code="UNSUPPORTED_MEDIA_TYPE", status=415)
    try:
        data = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise AppError("请求体不是合法的 JSON", code="INVALID_JSON", status=400) from None
    if not isinstance(data, dict):
        raise AppError("请求体须为 JSON 对象", code="INVALID_JSON", status=400)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        raise ValidationFailed(f"参数 {field} 不正确" if field else None, field=field) from None


def authenticated(handler):
    """Require a valid access token; puts ``user_id`` and the token family on ``request.ctx``."""

    @wraps(handler)
    async def wrapper(request: Request, *args, **kwargs):
        claims = authenticate(services(request), request.headers.get("authorization"))
        request.ctx.user_id = int(claims.sub)
        request.ctx.token_family = claims.sid
        return await handler(request, *args, **kwargs)

    return wrapper
