"""The control API's OpenAPI 3.1 document (sandbox/control_openapi.json) against the routes and a real
server; and the signature image."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from PIL import Image
from sanic import Sanic

from sandbox import SandboxConfig, create_blueprint

DOC_PATH = Path(__file__).resolve().parents[2] / "sandbox" / "control_openapi.json"
DOC = json.loads(DOC_PATH.read_text(encoding="utf-8"))
METHODS = {"get", "post", "put", "patch", "delete"}


def schema_validator(schema: dict) -> Draft202012Validator:
    """A validator for a schema of the document, its ``#/components/...`` references resolvable."""
    return Draft202012Validator({**schema, "components": DOC["components"]})


def documented_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in DOC["paths"].items() for method in item if method in METHODS}


def test_document_is_valid_openapi_3_1():
    assert DOC["openapi"].startswith("3.1")
    validate(DOC)
    assert DOC["servers"] == [{"url": "/sandbox/control", "description": DOC["servers"][0]["description"]}]


def test_document_and_routes_match(tmp_path):
    app = Sanic("sandbox_openapi_routes")
    app.blueprint(create_blueprint(SandboxConfig(state_path=str(tmp_path / "s.sqlite3"))))
    routes = set()
    for route in app.router.routes:
        if not route.path.startswith("sandbox/control/"):
            continue
        path = "/" + route.path[len("sandbox/control/"):]
        path = re.sub(r"<([a-z_]+)(:[^>]*)?>", r"{\1}", path)
        routes |= {(method, path) for method in route.methods if method.lower() in METHODS}
    assert routes, "no control routes found"
    assert routes == documented_operations()


def test_every_operation_documents_its_answers():
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            answers = op["responses"]
            assert any(code.startswith("2") for code in answers), (method, path)
            if "requestBody" in op:  # anything with a body can be refused
                assert "400" in answers, (method, path)
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                assert "$ref" in schema


@pytest.fixture
def clean_state(sb):
    yield
    sb.control("DELETE", "faults")
    sb.control("DELETE", "pages")
    sb.control("POST", "settings", json={"stable_token_refresh_interval_s": 30, "stable_token_daily_force_limit": 20})


def test_documented_examples_are_accepted(sb, clean_state):
    tried = 0
    for path, item in DOC["paths"].items():
        if "{" in path:
            continue
        op = item.get("post")
        if not op or "requestBody" not in op:
            continue
        media = op["requestBody"]["content"]["application/json"]
        example = media["example"]
        schema_validator(media["schema"]).validate(example)  # the example fits its own schema
        r = sb.control("POST", path.lstrip("/"), json=example)
        success = next(code for code in op["responses"] if code.startswith("2"))
        assert r.status_code == int(success), (path, r.text)
        content = op["responses"][success]["content"]
        if "application/json" in content:
            schema_validator(content["application/json"]["schema"]).validate(r.json())
        else:
            assert r.headers["content-type"] in content
        tried += 1
    assert tried >= 10


def test_answers_fit_the_documented_schemas(sb, clean_state):
    """GET answers and the error shape, as a client generated from the document would read them."""
    sb.control("POST", "faults", json={"path": "cgi-bin/token", "body": {"errcode": 0}, "when": "after"})
    sb.login_code()
    for path in ("/health", "/faults", "/subscribe-templates", "/pages", "/subscribe-messages", "/transfers", "/calls",
                 "/settings"):
        r = sb.control("GET", path.lstrip("/"))
        assert r.status_code == 200
        schema = DOC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        schema_validator(schema).validate(r.json())
    error_schema = schema_validator(DOC["components"]["schemas"]["Error"])
    for method, path, body in (("POST", "faults", {"path": "nope"}), ("POST", "pages", {"pages": 1}),
                               ("GET", "face/nope", None), ("POST", "bank-cards", {}),
                               ("GET", "bank-cards/6222020200000000006", None),
                               ("POST", "bank-cards/6222020200000000006/block", {"blocked": "yes"})):
        r = sb.control(method, path, json=body)
        assert r.status_code in (400, 404)
        error_schema.validate(r.json())
    r = sb.control("GET", "openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == DOC


def test_documented_request_schemas_refuse_what_the_server_refuses(sb):
    """A few invalid bodies: the document's schema and the server agree they are invalid."""
    cases = [
        ("/faults", {"path": "cgi-bin/token", "when": "later", "errcode": 1}),
        ("/faults", {"path": "cgi-bin/token", "drop": False}),
        ("/faults", {"path": "cgi-bin/token", "http_status": 302}),
        ("/subscribe-templates", {"template_id": "T", "title": "t", "keywords": {"keyword1": "x"}}),
        ("/pages", {"pages": ["a b"]}),
        ("/phone-code", {"phone": "12345"}),
        ("/signature-image", {"text": ""}),
        ("/settings", {"unknown": 1}),
        ("/id-card-images", {"side": "front", "name": "张三", "id_number": "11010119900307123X",
                             "valid_until": "20350101", "colour": "red"}),
        ("/push", {"url": "http://127.0.0.1:9/push", "token": "abc", "message": {}}),
        ("/push/verify", {"url": "http://127.0.0.1:9/push", "token": "abc", "mode": "plain"}),
    ]
    for path, body in cases:
        schema = DOC["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert not schema_validator(schema).is_valid(body), (path, body)
        assert sb.control("POST", path.lstrip("/"), json=body).status_code == 400, (path, body)


# -- signature image -------------------------------------------------------------------------------


def test_signature_image(sb):
    r = sb.control("POST", "signature-image", json={"text": "张三"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    data = r.content
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) <= 100_000
    im = Image.open(io.BytesIO(data))
    im.load()
    assert im.format == "PNG" and im.size == (600, 200) and im.mode == "RGBA"
    # ink on a transparent background, like a canvas export: a fair amount of dark, opaque strokes
    flat = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im).convert("L")
    assert flat.getextrema()[0] < 80
    dark = sum(flat.histogram()[:128])
    assert 0.01 < dark / (600 * 200) < 0.25
    assert im.getchannel("A").getextrema() == (0, 255)
    # deterministic per text; another text, another signature; no body at all is fine too
    assert sb.control("POST", "signature-image", json={"text": "张三"}).content == data
    assert sb.control("POST", "signature-image", json={"text": "李四"}).content != data
    assert sb.control("POST", "signature-image").status_code == 200


@pytest.mark.parametrize("body,field", [({"text": ""}, "text"), ({"text": "x" * 33}, "text"), ({"text": 5}, "text"),
                                        ({"name": "x"}, "name")])
def test_signature_image_validation(sb, body, field):
    r = sb.control("POST", "signature-image", json=body)
    assert r.status_code == 400 and r.json()["field"] == field
