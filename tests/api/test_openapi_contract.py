"""The OpenAPI document is the contract: valid OpenAPI 3.1, complete (every route, every error status
with its codes, request schemas with ``required`` and bounds), served with a docs page that needs no
network, and enforced: a response that drifts from it fails the test that made it."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

import services.users
from app.openapi import undocumented_routes
from tests.helpers import assert_error


async def test_document_is_valid_openapi_31(client):
    spec = (await client.get("/docs/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)


async def test_every_route_of_the_api_is_documented(server):
    assert undocumented_routes(server.app) == []


async def test_the_staff_console_is_not_part_of_the_api_document(server, client):
    """/admin/ is HTML forms for the bank's staff, not the JSON API: excluded on purpose
    (app.openapi.UNPUBLISHED_PREFIXES); its forms get their own fuzzer in a later slice of issue #23."""
    assert any(r.path.startswith("admin/") for r in server.app.router.routes), "the suite's server mounts it"
    spec = (await client.get("/docs/openapi.json")).json()
    assert not [p for p in spec["paths"] if p.startswith("/admin")]


async def test_every_operation_documents_success_errors_and_bodies(client):
    spec = (await client.get("/docs/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert len(spec["paths"]) >= 20
    for path, item in spec["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            statuses = {int(s) for s in op["responses"]}
            assert any(200 <= s < 300 for s in statuses), where
            for status, resp in op["responses"].items():
                assert resp.get("description"), where
                assert "X-Request-ID" in resp["headers"], where
                schema = resp.get("content", {}).get("application/json", {}).get("schema", {})
                if path.startswith("/callbacks/") and "code" in schema.get("properties", {}):
                    # WeChat Pay reads its own refusal shape, {"code": "FAIL", "message": ...}
                    assert schema["properties"]["code"] == {"const": "FAIL"}, where
                    continue
                if int(status) >= 400 and "$ref" not in schema:  # /health/ready's 503 is its own body
                    codes = schema["properties"]["error"]["properties"]["code"]["enum"]
                    assert codes and all(re.fullmatch(r"[A-Z][A-Z0-9_]+", c) for c in codes), where
            if op["security"]:
                assert 401 in statuses, where
            body = op.get("requestBody")
            if body and "application/json" in body["content"] and not path.startswith("/callbacks/"):
                ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                model = schemas[ref]
                assert model.get("additionalProperties") is False, where
                assert {400, 413, 415, 422} <= statuses, where
                for name, prop in model["properties"].items():
                    if prop.get("type") == "string":
                        assert "maxLength" in prop or "enum" in prop, f"{where}: {name} unbounded"
                    if prop.get("type") == "integer":
                        assert "maximum" in prop and "minimum" in prop, f"{where}: {name} unbounded"
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert 404 in statuses, where
                    s = param["schema"]
                    assert ("maximum" in s and "minimum" in s) or "maxLength" in s, f"{where}: {param['name']}"


async def test_no_exclusive_minimum_zero_or_other_oas30_leftovers(client):
    text = (await client.get("/docs/openapi.json")).text
    assert '"nullable"' not in text  # 3.1 spells nullable as a type union
    assert '"exclusiveMinimum":true' not in text.replace(" ", "")


async def test_schema_names_are_the_models_names(client):
    """Two models of one name get module-qualified names (``handlers__…__RefundOut``) that clients and
    generated SDKs would carry: each schema must have a name of its own."""
    schemas = (await client.get("/docs/openapi.json")).json()["components"]["schemas"]
    assert [name for name in schemas if "__" in name] == []


async def test_docs_page_works_offline(client):
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    assert "validatorUrl: null" in page.text  # Swagger UI's online validator badge stays off
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) >= 3
    for asset in assets:
        assert asset.startswith("/docs/static/"), asset
        resp = await client.get(asset)
        assert resp.status_code == 200 and len(resp.content) > 100, asset
    assert (await client.get("/docs/static/../../app/config.py")).status_code == 404
    assert (await client.get("/docs/static/swagger-editor.js")).status_code == 404  # only what the page uses


async def test_a_response_that_drifts_from_the_document_fails_loudly(client, user, monkeypatch):
    # The response model builds the answer, so a drift can only come from past it: an answer that is
    # not the model's dump (here, one with an undocumented field).
    import handlers.miniprogram.auth as auth_handlers
    from sanic.response import json as json_response

    def drifted(out, status=200, headers=None):
        return json_response({**out.model_dump(), "openid": "leaked"}, status=status, headers=headers)

    monkeypatch.setattr(auth_handlers, "answer", drifted)
    resp = await client.get("/api/v1/me", headers=user.headers)
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "RESPONSE_CONTRACT_VIOLATION"
    assert "openid" in resp.json()["error"]["message"]


async def test_an_undocumented_error_code_fails_loudly(client, user, monkeypatch):
    from core.errors import AppError

    async def odd(*a, **kw):
        raise AppError("x", code="SOMETHING_NEW", status=409)

    monkeypatch.setattr(services.users, "profile", odd)
    resp = await client.get("/api/v1/me", headers=user.headers)
    assert resp.status_code == 500 and "status not documented" in resp.json()["error"]["message"]
    # and a documented status with an undocumented code
    async def odd404(*a, **kw):
        raise AppError("x", code="SOMETHING_NEW", status=404)

    monkeypatch.setattr(services.users, "profile", odd404)
    resp = await client.get("/api/v1/me", headers=user.headers)
    assert resp.status_code == 500 and "SOMETHING_NEW" in resp.json()["error"]["message"]


async def test_unknown_routes_and_methods_keep_the_error_shape(client):
    assert_error(await client.get("/api/v1/nope"), 404, "NOT_FOUND")
