"""The API contract, declared once per operation.

``@operation(...)`` sits under a route decorator and says everything a caller may rely on: who may call
(``auth``: a user's access token; ``partner``: a partner's signed request, docs/open-api.md), the path parameters and their bounds, the query, the body (a pydantic model), the success
responses and every error status with its codes. The same declaration

* validates each request before the handler runs (401, then 404 for a path id that cannot exist, then
  415/400/422 for the body), and hands the handler the parsed ``body`` / ``query``;
* is what ``app.openapi`` publishes at ``/docs/openapi.json``;
* is what tests check every response against (``Settings.validate_responses``).

So a handler cannot accept what its documentation refuses, nor answer what it does not document.

Bodies are strict where law or money depends on them, which here is everywhere: JSON types are not
coerced (``"1"`` is not an id, ``"yes"`` is not consent), unknown fields and duplicate keys are refused,
and ids are bounded to what a BIGINT column holds.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import wraps
from typing import Annotated, Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, WithJsonSchema
from sanic import HTTPResponse, Request
from sanic.response import json as json_response

from core.errors import AppError, ConflictRetry, DatabaseUnavailable, NotFound, RateLimited, ValidationFailed
from core.validators import single_header
from services import idempotency, ratelimit
from services.auth.tokens import authenticate
from services.partners import auth as partner_auth
from services.idempotency import (
    KEY_PATTERN,
    IdempotencyKeyInUse,
    IdempotencyKeyInvalid,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    request_hash,
)

M = TypeVar("M", bound=BaseModel)

MAX_ID = 2**63 - 1  # what a signed BIGINT primary key holds

# -- request building blocks -------------------------------------------------------------------------

# An id in a JSON body: a JSON integer in 1..MAX_ID, never a string or a float.
Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]
# A boolean that must be the JSON literal ``true`` (consent under the E-Signature Law): anything else,
# ``"yes"`` and ``1`` included, is refused. ``false`` reaches the service, which says what is missing.
TrueOnly = Annotated[bool, Strict(), WithJsonSchema({"type": "boolean", "const": True})]


def checked_string(*, pattern: str, min_length: int, max_length: int, parse_max: int = 64) -> Any:
    """A string the service checks itself, answering its own stable code (``ID_NUMBER_INVALID``, not a
    generic ``VALIDATION_ERROR``): the document states the exact shape, the parser only bounds the
    length to what is worth reading."""
    return Annotated[
        str,
        Field(min_length=1, max_length=parse_max),
        WithJsonSchema({"type": "string", "minLength": min_length, "maxLength": max_length, "pattern": pattern}),
    ]


class Body(BaseModel):
    """Base of every JSON request body: strict types, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Query(BaseModel):
    """Base of query models: values arrive as strings; unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore")


class Out(BaseModel):
    """Base of response models: the one serializer of each resource. The model that documents an answer
    is the one that builds it: ``answer(VehicleOut.model_validate(vehicle))`` reads the fields off the
    domain object (``from_attributes``), so a field the document names and the object lacks is an error
    at once, not a silent gap. Derived fields (masked, computed, renamed) are the model's own: a
    classmethod ``of(...)`` that names them and reads the rest off the object (``Out.of``), never a dict
    builder in a service beside it (``tests/unit/test_one_serializer.py`` fails on one)."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    @classmethod
    def of(cls, obj: Any, **derived: Any) -> Self:
        """The answer for ``obj``: each field given in ``derived``, the others read off ``obj``."""
        return cls.model_validate({name: derived[name] if name in derived else getattr(obj, name)
                                   for name in cls.model_fields})


def answer(out: Out, status: int = 200, headers: Mapping[str, str] | None = None) -> HTTPResponse:
    """The HTTP answer of a response model. ``model_dump()`` in Python mode, then the app's orjson:
    datetimes stay RFC 3339 with their offset, enums their values. A field with a default that was not
    given is absent (``exclude_unset``): that is what its default documents."""
    return json_response(out.model_dump(exclude_unset=True), status=status, headers=headers)


# -- errors the contract itself raises ---------------------------------------------------------------


class InvalidJson(AppError):
    status, code, message = 400, "INVALID_JSON", "请求体不是合法的 JSON 对象"


class UnsupportedMediaType(AppError):
    status, code, message = 415, "UNSUPPORTED_MEDIA_TYPE", "不支持的内容类型"


# -- declarations ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathParam:
    """A path parameter: its schema, and the error for a value that cannot name an existing resource."""

    schema: dict
    accepts: Callable[[Any], bool]
    not_found: type[AppError] = NotFound
    description: str = ""


def id_param(not_found: type[AppError] = NotFound, description: str = "") -> PathParam:
    """A BIGINT id in the path (the route uses ``<name:int>``); out of range is 'not found'."""
    return PathParam(
        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        lambda v: isinstance(v, int) and 1 <= v <= MAX_ID,
        not_found,
        description,
    )


def str_param(max_length: int, not_found: type[AppError] = NotFound, description: str = "") -> PathParam:
    """A string in the path (the route uses ``<name:str>``); longer than the column is 'not found'."""
    return PathParam(
        {"type": "string", "minLength": 1, "maxLength": max_length},
        lambda v: isinstance(v, str) and 1 <= len(v) <= max_length,
        not_found,
        description,
    )


def suffixed(name: str, extension: str, max_length: int = 16) -> str:
    """A path segment that is a parameter and a file extension (``{month}.pdf``): Sanic takes a parameter
    only as a whole segment, so the segment is a pattern whose group is the parameter, and the document
    writes it as ``{name}.extension`` (``app.openapi.openapi_path``). Up to ``max_length`` characters are
    handed to the handler, which answers a malformed value with its own code."""
    return rf"<{name}:([^/]{{1,{max_length}}})\.{extension}>"


@dataclass(frozen=True)
class Response:
    """A success response: a JSON model, or raw content (``media_type`` + ``schema``)."""

    model: type[BaseModel] | None = None
    description: str = "OK"
    media_type: str = "application/json"
    schema: dict | None = None
    headers: Mapping[str, dict] = field(default_factory=dict)  # name -> {"schema", "description", "required"?}


ErrorSpec = type[AppError] | tuple[int, str]


@dataclass
class Operation:
    summary: str
    tag: str
    description: str = ""
    auth: bool = False
    body: type[Body] | None = None
    # Non-JSON request bodies, documented here and parsed by the handler: media type -> schema.
    body_media: Mapping[str, dict] | None = None
    query: type[Query] | None = None
    path: Mapping[str, PathParam] = field(default_factory=dict)
    responses: Mapping[int, Response] = field(default_factory=dict)
    errors: Iterable[ErrorSpec] = ()
    # Takes an ``Idempotency-Key`` header (required): see ``services.idempotency``.
    idempotent: bool = False
    # A partner's signed request (``services.partners.auth``), holding at least one of these scopes.
    # The answer is signed too. Every partner operation counts against the partner's ``partner`` limit.
    partner: tuple[str, ...] | None = None
    # An abuse limit (``services.ratelimit``): "login" (by client IP), "phone", "identity", "upload" (by user).
    limit: str | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit not in ratelimit.SUBJECTS:
            raise ValueError(f"unknown limit {self.limit!r}")
        if self.limit is not None and ratelimit.SUBJECTS[self.limit] == "user" and not self.auth:
            raise ValueError(f"limit {self.limit!r} counts by user: the operation needs auth")

    @property
    def limits(self) -> list[str]:
        return [name for name in (self.limit, "partner" if self.partner is not None else None) if name]

    def error_codes(self) -> dict[int, list[str]]:
        """Every error status this operation can answer, with its codes: declared ones, and those the
        contract adds (auth, path, body, query)."""
        found: dict[int, list[str]] = {}

        def add(status: int, code: str) -> None:
            codes = found.setdefault(status, [])
            if code not in codes:
                codes.append(code)

        if self.auth:
            add(401, "UNAUTHORIZED")
            add(401, "TOKEN_INVALID")
            add(DeviceIdInvalid.status, DeviceIdInvalid.code)
        if self.partner is not None:
            for error in (*partner_auth.AUTH_ERRORS, partner_auth.ScopeMissing):
                add(error.status, error.code)
        if self.path:
            add(404, "NOT_FOUND")  # the router's answer for a value of the wrong shape
            for param in self.path.values():
                add(param.not_found.status, param.not_found.code)
        if self.body is not None:
            add(400, InvalidJson.code)
            add(415, UnsupportedMediaType.code)
            add(413, "PAYLOAD_TOO_LARGE")
            add(422, ValidationFailed.code)
        if self.body_media:
            add(415, UnsupportedMediaType.code)
            add(413, "PAYLOAD_TOO_LARGE")
            if "multipart/form-data" in self.body_media:
                add(400, InvalidMultipart.code)
                add(422, ValidationFailed.code)
        if self.query is not None:
            add(422, ValidationFailed.code)
        if self.idempotent:
            for error in (IdempotencyKeyRequired, IdempotencyKeyInvalid, IdempotencyKeyReused, IdempotencyKeyInUse):
                add(error.status, error.code)
        if self.limits:
            add(RateLimited.status, RateLimited.code)
        if self.tag != "ops":  # every operation but the probes reads or writes the database
            add(DatabaseUnavailable.status, DatabaseUnavailable.code)
            add(ConflictRetry.status, ConflictRetry.code)
        for spec in self.errors:
            status, code = spec if isinstance(spec, tuple) else (spec.status, spec.code)
            add(status, code)
        return found


def operation(**declaration: Any) -> Callable:
    """Declare an operation (see ``Operation``) and validate requests against it."""
    op = Operation(**declaration)

    def decorate(handler: Callable) -> Callable:
        @wraps(handler)
        async def wrapper(request: Request, **params: Any):
            # Every answer of an API operation passes here, errors included: the app's ``finish`` (request
            # id, metrics, access log) runs once for each, without a Sanic middleware.
            started = time.perf_counter()
            ctx = request.app.ctx
            caller = None
            try:
                if op.partner is not None:
                    caller = await partner_auth.authenticate(
                        ctx.services, method=request.method, path=request.path, query=request.query_string,
                        headers=request.headers, body=request.body or b"")
                    request.ctx.caller = caller
                    partner_auth.require_scope(caller, *op.partner)
                if op.auth:
                    claims = authenticate(ctx.services, request.headers.get("authorization"))
                    request.ctx.user_id = claims.user_id
                    request.ctx.token_family = claims.sid
                    device = request.headers.get("x-device")
                    if device is not None and not _DEVICE_RE.fullmatch(device):
                        raise DeviceIdInvalid(field="X-Device")
                for name in op.limits:  # counted before anything else is read: junk counts too
                    await ratelimit.hit(ctx.services.settings, name, _limit_subject(request, name))
                for name, param in op.path.items():
                    if not param.accepts(params.get(name)):
                        raise param.not_found()
                key = idempotency_key(request) if op.idempotent else None
                extra: dict[str, Any] = {}
                if op.query is not None:
                    extra["query"] = parse_query(request, op.query)
                if op.body is not None:
                    extra["body"] = parse_json_body(request, op.body)
                if key is None:
                    response = await handler(request, **params, **extra)
                else:
                    response = await _run_idempotent(request, handler, key, params, extra)
            except Exception as exc:  # noqa: BLE001 - rendered as the error shape, like Sanic's handler would
                response = ctx.render_error(request, exc)
            if caller is not None:  # the partner proved who it is: sign what we answer
                response.headers.update(partner_auth.response_headers(caller, response.status, response.body or b""))
            return ctx.finish(request, response, started)

        wrapper.__operation__ = op  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _limit_subject(request: Request, name: str) -> str | int:
    kind = ratelimit.SUBJECTS[name]
    if kind == "user":
        return request.ctx.user_id
    if kind == "partner":
        return request.ctx.caller.partner.app_id
    return request.remote_addr or request.ip or "unknown"


IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "a key of the caller's choosing, new for each distinct request: a retry with the same key and "
    "body gets the first final answer (with `Idempotent-Replayed: true`); with another body, 422 "
    "IDEMPOTENCY_KEY_REUSED; while the first still runs, 409 IDEMPOTENCY_KEY_IN_USE. A 202 or 5xx is not final: "
    "the retry runs the operation again, continuing what the first started. Keys are kept per user, at least 24 hours "
    "(48 by default).",
    "schema": {"type": "string", "pattern": KEY_PATTERN, "minLength": 8, "maxLength": 64},
}
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)


class DeviceIdInvalid(ValidationFailed):
    status, code, message = 422, "DEVICE_ID_INVALID", "X-Device 应为 8–64 位字母、数字或 _-"

DEVICE_HEADER = {
    "name": "X-Device",
    "in": "header",
    "required": False,
    "description": "the mini-program's device id (random, made once and kept in its storage), for risk control: a "
    "sensitive step from a device the user was never seen with can be held for review. A malformed one is 422 "
    "DEVICE_ID_INVALID.",
    "schema": {"type": "string", "pattern": DEVICE_ID_PATTERN, "minLength": 8, "maxLength": 64},
}
REPLAYED_HEADER = {"description": "present on a replayed answer", "schema": {"type": "string", "enum": ["true"]}}


PARTNER_HEADERS = [
    {"name": name, "in": "header", "required": True, "description": description,
     "schema": {"type": "string", "pattern": pattern.pattern}}
    for name, pattern, description in (
        ("X-App-Id", partner_auth.APP_ID_RE, "the partner's app id"),
        ("X-Timestamp", partner_auth.TIMESTAMP_RE, "Unix time in seconds, within 300 s of the bank's clock"),
        ("X-Nonce", partner_auth.NONCE_RE, "never used before by this partner"),
        ("X-Signature", partner_auth.SIGNATURE_RE, "hex HMAC-SHA256 of the request (docs/open-api.md)"),
    )
]
SIGNED_RESPONSE_HEADERS = {
    name: {"description": description, "required": True, "schema": {"type": "string"}}
    for name, description in (("X-Timestamp", "when the bank signed this answer"), ("X-Nonce", "the bank's nonce"),
                              ("X-Signature", "hex HMAC-SHA256 of the answer (docs/open-api.md)"))
}


def idempotency_key(request: Request) -> str:
    key = single_header(request.headers, "Idempotency-Key", IdempotencyKeyInvalid)
    if key is None or key == "":
        raise IdempotencyKeyRequired(field="Idempotency-Key")
    if not _KEY_RE.fullmatch(key):
        raise IdempotencyKeyInvalid(field="Idempotency-Key")
    return key


_KEY_RE = re.compile(KEY_PATTERN.strip("^$"))


async def _run_idempotent(request: Request, handler: Callable, key: str, params: dict, extra: dict) -> Any:

    services = request.app.ctx.services
    body = extra.get("body")
    digest = request_hash(request.method, request.path, body.model_dump(mode="json") if body is not None else None)
    scope = f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__}"
    begun = await idempotency.begin(request.ctx.user_id, scope, key, digest, ttl_s=services.settings.idempotency_ttl_s,
                                    lease_s=services.settings.idempotency_lease_s)
    record = begun.record
    if begun.replay:
        return json_response(record.response, status=record.status_code, headers={"Idempotent-Replayed": "true"})
    request.ctx.idempotency = record

    async def run() -> Any:
        try:
            response = await handler(request, **params, **extra)
        except Exception as exc:  # noqa: BLE001 - an error answer is an answer too (final when a 4xx)
            response = request.app.ctx.render_error(request, exc)
        answer = json.loads(response.body) if response.body and response.content_type.startswith("application/json") \
            else None
        await idempotency.finish(record, response.status, answer)
        return response

    # Shielded: a client that hangs up (Sanic cancels its handler) does not cut a money movement in half,
    # a card transfer in flight included; it runs to its answer, which the retry under the same key gets.
    return await asyncio.shield(asyncio.ensure_future(run()))


# -- parsing -----------------------------------------------------------------------------------------


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-case (``multipart/form-data``)."""
    return (request.content_type or "").split(";")[0].strip().lower()


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Two values for one key: parsers disagree on which wins, so neither may.
        raise InvalidJson("请求体含有重复的字段")
    return obj


def _json_number(literal: str) -> int | float:
    """A JSON number with a fraction or exponent: ``1.0`` and ``1e3`` are the integers 1 and 1000 (JSON
    has one number type, and JSON Schema's ``integer`` accepts them), ``1.5`` stays a float, which no
    integer field accepts. Exponents past any column's range stay floats, never huge ints."""
    value = Decimal(literal)
    if value.is_finite() and abs(value.adjusted()) <= 20 and value == value.to_integral_value():
        return int(value)
    return float(literal)


def _invalid(exc: ValidationError) -> ValidationFailed:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    return ValidationFailed(f"参数 {loc} 不正确" if loc else None, field=loc or None)


def parse_json_body(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body. Wrong media type -> 415, not a JSON object (not UTF-8, malformed,
    too deep, duplicate keys) -> 400, fields that break the schema -> 422 naming the first."""
    raw = request.body or b""
    if raw and media_type(request) != "application/json":
        raise UnsupportedMediaType("请求体须为 JSON")
    try:
        # UTF-8 only (RFC 8259 8.1): given bytes, json.loads would also read UTF-16 and UTF-32, and UTF-8
        # carrying lone surrogates, which no other part of the stack reads the same way
        text = raw.decode("utf-8")
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_float=_json_number) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson() from None
    except RecursionError:
        raise InvalidJson("请求体嵌套过深") from None
    if not isinstance(data, dict):
        raise InvalidJson()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None


def parse_query(request: Request, model: type[M]) -> M:
    """Validate the query string: each parameter once; a repeated one is refused."""
    values: dict[str, str] = {}
    # Blank values count: `?status=` is a status that is not one of the enum, not an absent filter.
    for name, items in request.get_args(keep_blank_values=True).items():
        if len(items) != 1:
            raise ValidationFailed(f"参数 {name} 只能出现一次", field=name)
        values[name] = items[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _invalid(exc) from None


_BOUNDARY_RE = re.compile(r'(?i);\s*boundary=("[^"]+"|[^;\s]+)')
_PART_NAME_RE = re.compile(rb'(?i)content-disposition:[^\r\n]*?[; ]name="([^"\r\n]*)"')


def _part_names(body: bytes, boundary: bytes) -> list[str]:
    """The name of every part as sent (read from each part's own headers). Sanic's parser drops some,
    an empty name for one, which must not slip through as an unchecked field."""
    names = []
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head = part.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0]
        found = _PART_NAME_RE.search(head)
        names.append(found.group(1).decode("utf-8", "replace") if found else "")
    return names


class InvalidMultipart(AppError):
    status, code, message = 400, "INVALID_MULTIPART", "multipart 请求格式不正确"


@dataclass(frozen=True)
class Form:
    fields: dict[str, str]
    files: dict[str, bytes]


def parse_form(request: Request, allowed: set[str]) -> Form:
    """A ``multipart/form-data`` body with each of ``allowed`` at most once and nothing else."""
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType("请使用 multipart/form-data")
    found = _BOUNDARY_RE.search(request.content_type or "")
    if not found:
        raise InvalidMultipart("multipart 请求缺少 boundary")
    boundary = found.group(1).strip('"').encode()
    seen: set[str] = set()
    for name in _part_names(request.body or b"", boundary):
        if name not in allowed:
            raise ValidationFailed(f"未知字段 {name!r}", field=name or None)
        if name in seen:
            raise ValidationFailed(f"字段 {name} 只能出现一次", field=name)
        seen.add(name)
    form, files = request.form, request.files
    return Form(
        fields={k: form.get(k) for k in form.keys()} if form else {},
        files={k: files.get(k).body for k in files.keys()} if files else {},
    )


def operation_of(handler: Callable) -> Operation | None:
    return getattr(handler, "__operation__", None)
