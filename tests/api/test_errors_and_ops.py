"""One error shape for everything; request ids; health, metrics and docs."""

from __future__ import annotations

import asyncio
import json

import services.users
from tests.helpers import assert_error


async def test_404_405_413_have_the_error_shape(client, settings):
    assert_error(await client.get("/api/v1/nope"), 404, "NOT_FOUND")
    assert_error(await client.delete("/api/v1/auth/login"), 405, "METHOD_NOT_ALLOWED")
    # Sanic refuses by Content-Length before reading the body, so speak raw HTTP to see the answer.
    reader, writer = await asyncio.open_connection("127.0.0.1", int(str(client.base_url).rsplit(":", 1)[1]))
    too_big = settings.upload_max_bytes + 512 * 1024
    writer.write(
        f"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {too_big}\r\n\r\n".encode()
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_request_id_is_echoed_or_made(client):
    resp = await client.get("/health/live", headers={"X-Request-ID": "abc12345-test"})
    assert resp.headers["x-request-id"] == "abc12345-test"
    resp = await client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert resp.headers["x-request-id"] != "bad id with spaces"
    assert len(resp.headers["x-request-id"]) == 32
    # an id that looks like personal data is replaced, so it never reaches the (unscrubbed) access line
    resp = await client.get("/health/live", headers={"X-Request-ID": "11010519491231002X"})
    assert resp.headers["x-request-id"] != "11010519491231002X"


async def test_unexpected_error_is_500_without_internals(client, user, monkeypatch):
    async def boom(ctx, user_id):
        raise RuntimeError("secret internals at /work/main/services/users.py")

    monkeypatch.setattr(services.users, "profile", boom)
    resp = await client.get("/api/v1/me", headers=user.headers)
    assert resp.status_code == 500
    body = resp.json()
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert body["error"]["request_id"] == resp.headers["x-request-id"]
    assert "secret internals" not in resp.text and "Traceback" not in resp.text


async def test_health(client):
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "up"


async def test_metrics_count_requests_by_route_and_status(client):
    await client.get("/api/v1/me")  # 401
    text = (await client.get("/metrics")).text
    assert "# TYPE http_requests_total counter" in text
    line = next(l for l in text.splitlines() if l.startswith('http_requests_total{method="GET",route="/api/v1/me",status="401"}'))
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert any(l.startswith("http_request_duration_seconds_bucket{") and 'route="/api/v1/me"' in l and 'le="+Inf"' in l
               for l in text.splitlines())


async def test_docs_list_the_auth_endpoints(client):
    spec = (await client.get("/docs/openapi.json")).json()
    for path in ["/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/me", "/api/v1/me/phone"]:
        assert path in spec["paths"], path
    body = spec["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["required"] == ["code"]
    assert not [p for p in spec["paths"] if p.startswith("/sandbox")]  # emulators are not the product's API
    ui = await client.get("/docs")
    assert ui.status_code == 200 and "html" in ui.headers["content-type"]
