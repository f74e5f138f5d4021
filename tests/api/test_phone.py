"""Binding the WeChat phone number: masked everywhere, encrypted at rest, absent from logs."""

from __future__ import annotations

import io
import logging

from tortoise import Tortoise

from tests.helpers import assert_error

PHONE = "13812345678"


async def test_bind_phone_masks_and_encrypts(client, sandbox, user, ctx, server):
    root = logging.getLogger()
    buffers = []
    for h in root.handlers:
        if isinstance(h, logging.StreamHandler) and hasattr(h, "setStream"):
            buf = io.StringIO()
            buffers.append((h, h.setStream(buf), buf))
    assert buffers, "the app's JSON log handler should be on the root logger"
    access = io.StringIO()
    server.app.ctx.drain()
    server.app.ctx.access_log.stream = access
    try:
        # Given a phone code for the user's WeChat phone
        code = await sandbox.phone_code(PHONE)
        # When the mini-program binds it
        resp = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
        logging.getLogger("app.test").info("bound phone for %s", PHONE)  # even a careless log line is masked
        me = await client.get("/api/v1/me", headers=user.headers)
    finally:
        for h, old, _ in buffers:
            h.setStream(old)
        server.app.ctx.drain()
        server.app.ctx.access_log.stream = None
    # Then it is shown masked
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"phone": "138****5678"}
    assert me.json()["phone"] == "138****5678"
    # and the database row holds no plain phone
    conn = Tortoise.get_connection("default")
    _, rows = await conn.execute_query("SELECT * FROM users WHERE id = %s" % int(user.body["user"]["id"]))
    dumped = repr(rows)
    assert PHONE not in dumped and rows[0]["phone_enc"].startswith("v1.")
    assert rows[0]["phone_index"] == ctx.pii.blind_index(PHONE, purpose="user.phone")
    # and neither do the logs
    logs = "".join(buf.getvalue() for _, _, buf in buffers) + access.getvalue()
    assert "app.access" in logs and "/api/v1/me/phone" in logs
    assert PHONE not in logs and "138****5678" in logs


async def test_bad_phone_code(client, sandbox, user):
    resp = await client.post("/api/v1/me/phone", json={"code": "bogus"}, headers=user.headers)
    assert_error(resp, 400, "WECHAT_CODE_INVALID", field="code")
    code = await sandbox.phone_code("13700001111")
    assert (await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)).status_code == 200
    again = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
    assert_error(again, 400, "WECHAT_CODE_INVALID", field="code")


async def test_phone_needs_login(client, sandbox):
    code = await sandbox.phone_code("13700001112")
    assert_error(await client.post("/api/v1/me/phone", json={"code": code}), 401, "UNAUTHORIZED")
