"""What every emulator's control routes share (``/sandbox/control``, assembled by
:mod:`sandbox.control`): one error shape, request bodies read into pydantic models, and the route
helper that renders a refusal.

Errors are HTTP 400 ``{"code": "INVALID_REQUEST", "message", "field"?}`` (404 ``NOT_FOUND`` for an
unknown resource). A body is a JSON object (an empty body reads as ``{}``) checked by its model:
strict types (``true`` is not ``1``, ``"5"`` is not ``5``), each field's ``description`` the message
when it is refused, the first refused field (in the model's order) named. A model refuses fields it
does not declare (a typo must not pass as a no-op) unless it is a :class:`LenientBody`. A rule across
fields is an ``after`` model validator raising :func:`bad`: not a ``ValueError``, so pydantic lets it
through with the field it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json as json_response

from sandbox.config import SandboxConfig
from sandbox.wxcommon import dumps

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")  # a mainland mobile number, as the user's phone has it


class ControlError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self) -> HTTPResponse:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return json_response(body, status=self.status, dumps=dumps)


def bad(field: str | None, message: str) -> ControlError:
    return ControlError(400, "INVALID_REQUEST", message, field)


def not_found(message: str) -> ControlError:
    return ControlError(404, "NOT_FOUND", message)


class Body(BaseModel):
    """A control-API request body (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LenientBody(Body):
    """A body that ignores fields it does not declare (as these routes always have)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


B = TypeVar("B", bound=Body)


def json_object(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise bad(None, "body must be a JSON object") from None
    if not isinstance(data, dict):
        raise bad(None, "body must be a JSON object")
    return data


def validate(model: type[B], data: dict[str, Any], context: dict[str, Any] | None = None) -> B:
    """``data`` as a ``model``, or :class:`ControlError` 400 naming the first refused field;
    ``context`` reaches the model's validators (what they check against: the known paths...)."""
    fields = model.model_fields
    if model.model_config.get("extra") == "forbid":
        unknown = set(data) - set(fields)
        if unknown:
            raise bad(min(unknown), f"unknown field; the fields are {', '.join(fields)}")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else None
        if error["type"] == "value_error":  # a validator's own message
            message = str(error["ctx"]["error"])
        else:
            message = (fields[field].description if field in fields else None) or error["msg"]
        raise bad(field, message) from None


def parse(model: type[B], request: Request, context: dict[str, Any] | None = None) -> B:
    """The request's JSON body as a ``model`` (see :func:`validate`)."""
    return validate(model, json_object(request), context)


Handler = Callable[..., Awaitable[HTTPResponse]]


class ControlRoutes:
    """The control blueprint, as each emulator adds its routes to it: ``@routes.route(uri, methods)``
    on a handler that answers or raises :class:`ControlError`."""

    def __init__(self, bp: Blueprint):
        self.bp = bp

    def route(self, uri: str, methods: list[str]) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            async def handler(request: Request, **kwargs: Any) -> HTTPResponse:
                try:
                    return await fn(request, **kwargs)
                except ControlError as exc:
                    return exc.response()

            handler.__name__ = fn.__name__
            self.bp.add_route(handler, uri, methods=methods, name=fn.__name__)
            return fn

        return deco


def answer(body: Any, status: int = 200) -> HTTPResponse:
    """A JSON answer (UTF-8 as is, compact)."""
    return json_response(body, status=status, dumps=dumps)


def appid_of(config: SandboxConfig, appid: str | None) -> str:
    """The app a control request is for: ``appid`` (one the sandbox is configured with), by default
    the first configured app."""
    appid = config.default_appid if appid is None else appid
    if appid not in config.apps:
        raise bad("appid", "appid is not configured in the sandbox")
    return appid
