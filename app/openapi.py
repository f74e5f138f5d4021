"""The OpenAPI 3.1 document, built from the ``@operation`` declarations, and the docs page.

``GET /docs/openapi.json`` is the contract: every operation with its parameters, request body
(``required``, enums, bounds), success responses and every error status with its codes. ``GET /docs``
is Swagger UI, served from the ``swagger-ui-py`` package's own files: the page works offline.

Only routes declared with ``@operation`` are published; ``undocumented_routes`` names any other route
(the test suite requires it to be empty, so an endpoint cannot land without its contract).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import swagger_ui
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sanic import Blueprint, Request, Sanic
from sanic.response import HTTPResponse, file, html, json

from app.middleware import instrumented
from core.errors import NotFound
from handlers.spec import (
    DEVICE_HEADER,
    IDEMPOTENCY_HEADER,
    PARTNER_HEADERS,
    REPLAYED_HEADER,
    SIGNED_RESPONSE_HEADERS,
    Operation,
    operation_of,
)

# What every 503 promises (core.errors.OUTCOME_UNKNOWN): never "nothing was done".
OUTCOME_UNKNOWN_NOTE = (". Outcome unknown: the request may have taken effect (a commit whose answer was lost) "
                        "or not. Repeat it unchanged, with the same Idempotency-Key or out_trade_no / "
                        "out_refund_no, after Retry-After: the first result is answered if there was one.")
DOCS_PREFIX = "/docs"
# Routes that are not part of the product's API (the docs themselves, the sandbox emulators).
# The staff console (/admin/) is server-rendered HTML forms for the bank's staff, not the JSON API: it has
# no @operation and is left out of the document and of tests/api/test_openapi_contract.py's completeness
# check (its forms get their own fuzzer in a later slice of issue #23).
UNPUBLISHED_PREFIXES = (DOCS_PREFIX, "/sandbox", "/admin")
_PARAM_RE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::[^>]*)?>")
# A parameter with a file extension (``handlers.spec.suffixed``): ``<month:([^/]{1,16})\.pdf>``.
_SUFFIXED_RE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*):\([^>]*\)\\\.([A-Za-z0-9]+)>")
SWAGGER_STATIC = Path(swagger_ui.__file__).resolve().parent / "static"
SWAGGER_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png")

REQUEST_ID_HEADER = {
    "description": "The request id: quote it to support. Echoed from the request when well-formed.",
    "schema": {"type": "string", "minLength": 8, "maxLength": 64},
    "required": True,
}


REQUEST_ID_REF = {"$ref": "#/components/headers/X-Request-ID"}


def error_schema(codes: list[str]) -> dict:
    return {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "enum": codes, "description": "stable; the contract"},
                    "message": {"type": "string", "description": "Simplified Chinese, for display"},
                    "field": {"type": "string", "description": "the request field at fault, when one is"},
                    "request_id": {"type": "string"},
                },
            }
        },
    }


def openapi_path(uri: str) -> str:
    uri = _SUFFIXED_RE.sub(r"{\1}.\2", uri)
    return "/" + _PARAM_RE.sub(r"{\1}", uri).lstrip("/")


def documented_routes(app: Sanic) -> list[tuple[str, str, Operation]]:
    """(path, method, operation) for every route declared with ``@operation``."""
    found = []
    for route in app.router.routes:
        op = operation_of(route.handler)
        if op is None:
            continue
        for method in sorted(route.methods):
            if method in ("HEAD", "OPTIONS"):
                continue
            found.append((openapi_path(route.path), method.lower(), op))
    return found


def undocumented_routes(app: Sanic) -> list[str]:
    """Routes of the product's API that have no ``@operation`` declaration."""
    missing = []
    for route in app.router.routes:
        path = openapi_path(route.path)
        if path.startswith(UNPUBLISHED_PREFIXES) or operation_of(route.handler) is not None:
            continue
        missing.append(f"{','.join(sorted(route.methods))} {path}")
    return missing


def _models(ops: list[Operation]) -> list[tuple[type[BaseModel], str]]:
    """Every model the operations use, once, with the mode its schema is wanted in."""
    wanted: list[tuple[type[BaseModel], str]] = []
    for op in ops:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        if op.query is not None:
            wanted.append((op.query, "validation"))
        for resp in op.responses.values():
            if resp.model is not None:
                wanted.append((resp.model, "serialization"))
    return list(dict.fromkeys(wanted))


def _query_parameters(model: type[BaseModel], schemas: dict) -> list[dict]:
    schema = schemas[model.__name__]
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


def _operation_doc(path: str, method: str, op: Operation, refs: dict, schemas: dict) -> dict:
    doc: dict[str, Any] = {
        "operationId": f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.description:
        doc["description"] = op.description
    doc["security"] = [{"bearer": []}] if op.auth else [{"partnerSignature": []}] if op.partner is not None else []
    params = [
        {"name": name, "in": "path", "required": True, "schema": p.schema, **({"description": p.description} if p.description else {})}
        for name, p in op.path.items()
    ]
    if op.query is not None:
        params += _query_parameters(op.query, schemas)
    if op.idempotent:
        params.append(IDEMPOTENCY_HEADER)
    if op.auth:
        params.append(DEVICE_HEADER)
    if op.partner is not None:
        params += PARTNER_HEADERS
    if params:
        doc["parameters"] = params
    content: dict[str, Any] = {}
    if op.body is not None:
        content["application/json"] = {"schema": refs[(op.body, "validation")]}
    for media, schema in (op.body_media or {}).items():
        content[media] = schema if "schema" in schema else {"schema": schema}
    if content:
        doc["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {}
    for status, resp in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": resp.description, "headers": {"X-Request-ID": REQUEST_ID_REF, **resp.headers}}
        if op.idempotent or op.partner is not None:
            entry["headers"]["Idempotent-Replayed"] = REPLAYED_HEADER
        if op.partner is not None:
            entry["headers"].update(SIGNED_RESPONSE_HEADERS)
        if resp.model is not None:
            entry["content"] = {resp.media_type: {"schema": refs[(resp.model, "serialization")]}}
        elif resp.schema is not None:
            entry["content"] = {resp.media_type: {"schema": resp.schema}}
        responses[str(status)] = entry
    for status, codes in sorted(op.error_codes().items()):
        headers: dict[str, Any] = {"X-Request-ID": REQUEST_ID_REF}
        if status in (429, 503):
            headers["Retry-After"] = {"description": "seconds to wait", "schema": {"type": "string"}}
        if op.partner is not None and status != 401:  # past the signature check every answer is signed
            headers.update({k: {**v, "required": False} for k, v in SIGNED_RESPONSE_HEADERS.items()})
        responses[str(status)] = {
            "description": "error: " + ", ".join(codes) + (OUTCOME_UNKNOWN_NOTE if status == 503 else ""),
            "headers": headers,
            "content": {"application/json": {"schema": error_schema(codes)}},
        }
    doc["responses"] = responses
    return doc


def build_openapi(app: Sanic, *, title: str, version: str, description: str) -> dict:
    routes = documented_routes(app)
    refs, defs = models_json_schema(_models([op for _, _, op in routes]), ref_template="#/components/schemas/{model}")
    schemas = dict(defs.get("$defs", {}))
    paths: dict[str, dict] = {}
    for path, method, op in routes:
        paths.setdefault(path, {})[method] = _operation_doc(path, method, op, refs, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "headers": {"X-Request-ID": REQUEST_ID_HEADER},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "partnerSignature": {"type": "apiKey", "in": "header", "name": "X-Signature",
                                     "description": "with X-App-Id, X-Timestamp and X-Nonce: see docs/open-api.md"},
            },
        },
    }


_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="icon" type="image/png" href="{prefix}/static/favicon-32x32.png">
  <link rel="stylesheet" href="{prefix}/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{prefix}/static/swagger-ui-bundle.js"></script>
  <script src="{prefix}/static/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{prefix}/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout"
    }});
  </script>
</body>
</html>
"""


def docs_blueprint(title: str) -> Blueprint:
    """``/docs`` (Swagger UI from packaged files), ``/docs/openapi.json`` and the UI's static files."""
    bp = Blueprint("docs", url_prefix=DOCS_PREFIX)
    page = _PAGE.format(title=title, prefix=DOCS_PREFIX)

    @bp.get("/", strict_slashes=False)
    @instrumented
    async def ui(request: Request) -> HTTPResponse:
        return html(page)

    @bp.get("/openapi.json")
    @instrumented
    async def spec(request: Request) -> HTTPResponse:
        return json(request.app.ctx.openapi)

    @bp.get("/static/<name:str>")
    @instrumented
    async def static(request: Request, name: str) -> HTTPResponse:
        if name not in SWAGGER_FILES:
            raise NotFound()
        return await file(SWAGGER_STATIC / name, headers={"Cache-Control": "public, max-age=86400"})

    return bp


def install_response_check(app: Sanic) -> None:
    """Test-time guard (``Settings.validate_responses``): every response of a documented operation
    must match the document, status, media type and body; a mismatch becomes a 500
    ``RESPONSE_CONTRACT_VIOLATION`` naming it, so whichever test made the request fails."""
    import json as jsonlib
    import logging

    import jsonschema

    validators: dict[tuple[str, str, str], Any] = {}
    log = logging.getLogger("app.contract")

    def violation(request: Request, what: str) -> HTTPResponse:
        log.error("response contract violation", extra={"detail": what})
        return json({"error": {"code": "RESPONSE_CONTRACT_VIOLATION", "message": what}}, status=500)

    @app.on_response(priority=1100)
    async def check(request: Request, response: HTTPResponse):
        route = request.route
        if route is None or operation_of(route.handler) is None:
            return None
        doc = request.app.ctx.openapi
        path = openapi_path(route.path)
        method = request.method.lower()
        if method == "head" or response.status == 500:
            return None  # a crash is a crash: the test that caused it sees the 500 itself
        responses = doc["paths"][path][method]["responses"]
        entry = responses.get(str(response.status))
        label = f"{request.method} {path} -> {response.status}"
        if entry is None:
            return violation(request, f"{label}: status not documented")
        content = entry.get("content")
        media = (response.content_type or "").split(";")[0].strip()
        if not content:
            if response.body:
                return violation(request, f"{label}: body where none is documented")
            return None
        if media not in content:
            return violation(request, f"{label}: media type {media!r} not documented")
        for name, header in entry.get("headers", {}).items():
            header = doc["components"]["headers"][name] if "$ref" in header else header
            if header.get("required") and name not in response.headers:
                return violation(request, f"{label}: header {name} missing")
        if media != "application/json":
            return None
        key = (path, method, str(response.status))
        if key not in validators:
            schema = {**content[media]["schema"], "components": doc["components"]}
            validators[key] = jsonschema.Draft202012Validator(schema)
        errors = sorted(validators[key].iter_errors(jsonlib.loads(response.body)), key=lambda e: e.path)
        if errors:
            err = errors[0]
            return violation(request, f"{label}: {err.message} at {'/'.join(map(str, err.absolute_path))}")
        return None
