"""Test helpers over the sandbox control API and our own API (plain async functions, no magic)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import httpx


class Sandbox:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _post(self, path: str, body: dict | None = None) -> httpx.Response:
        resp = await self.client.post(f"/sandbox/control/{path}", json=body or {})
        assert resp.status_code < 300, resp.text
        return resp

    async def login_code(self, openid: str | None = None, **kw) -> dict:
        body = {k: v for k, v in {"openid": openid, **kw}.items() if v is not None}
        return (await self._post("login-code", body)).json()

    async def phone_code(self, phone: str, **kw) -> str:
        return (await self._post("phone-code", {"phone": phone, **kw})).json()["code"]

    async def fault(self, path: str, **kw) -> None:
        await self._post("faults", {"path": path, **kw})

    async def expire_tokens(self) -> None:
        await self._post("expire-tokens")

    async def calls(self, path: str) -> list[dict]:
        resp = await self.client.get("/sandbox/control/calls", params={"path": path})
        return resp.json()["calls"]


@dataclass
class LoggedIn:
    openid: str
    access_token: str
    refresh_token: str
    body: dict = field(repr=False)

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.access_token}"}


def new_openid() -> str:
    return "o" + secrets.token_urlsafe(20)[:27]


async def login_new_user(client: httpx.AsyncClient, sandbox: Sandbox, openid: str | None = None, **kw) -> LoggedIn:
    minted = await sandbox.login_code(openid or new_openid(), **kw)
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return LoggedIn(minted["openid"], body["access_token"], body["refresh_token"], body)


def assert_error(resp: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert resp.status_code == status, f"{resp.status_code} {resp.text}"
    body = resp.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if field is not None:
        assert body["error"].get("field") == field, body
    assert resp.headers.get("x-request-id")
    return body["error"]
