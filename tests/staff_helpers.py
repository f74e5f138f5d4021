"""Staff-console helpers: a staff member made through the service, the login form, TOTP codes, a clock."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pyotp

from core.clock import utcnow

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
STAFF_CLOCKED = ("services.staff.login", "services.staff.proposals", "services.staff.sessions", "services.staff.directory",
                 "services.staff.dashboard")


@dataclass
class StaffCreds:
    id: int
    username: str
    password: str
    totp_secret: str
    role: str

    def code(self, at: datetime) -> str:
        return pyotp.TOTP(self.totp_secret).at(at)


class Clock:
    """``utcnow`` of the staff services, moved by the test (never slept)."""

    def __init__(self, monkeypatch) -> None:
        self.now = utcnow()
        for module in STAFF_CLOCKED:
            monkeypatch.setattr(f"{module}.utcnow", lambda: self.now)

    def move(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def new_username() -> str:
    return f"s{secrets.token_hex(6)}"


async def new_staff(ctx, role: str = "viewer", username: str | None = None) -> StaffCreds:
    from services.staff import directory

    made = await directory.create(ctx, username or new_username(), role, operator="operator:test")
    return StaffCreds(made.staff.id, made.staff.username, made.password, made.totp_secret, role)


def csrf_of(page: httpx.Response) -> str:
    found = CSRF_RE.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


async def login_form(client: httpx.AsyncClient) -> str:
    page = await client.get("/admin/login")
    assert page.status_code == 200
    return csrf_of(page)


async def log_in(client: httpx.AsyncClient, creds: StaffCreds, *, at: datetime, password: str | None = None,
                 code: str | None = None) -> httpx.Response:
    csrf = await login_form(client)
    return await client.post("/admin/login", data={
        "csrf_token": csrf, "username": creds.username, "password": creds.password if password is None else password,
        "totp": creds.code(at) if code is None else code})


class Console:
    """A staff member logged in to the console over HTTP (their own cookies), with the session's CSRF token."""

    def __init__(self, client: httpx.AsyncClient, creds: StaffCreds, csrf: str) -> None:
        self.client, self.creds, self.csrf = client, creds, csrf

    @property
    def actor(self) -> str:
        return f"staff:{self.creds.id}"

    async def get(self, path: str, **kw) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def post(self, path: str, data: dict | None = None, *, csrf: bool = True) -> httpx.Response:
        return await self.client.post(path, data={**({"csrf_token": self.csrf} if csrf else {}), **(data or {})})


async def console(server, ctx, role: str, stack) -> Console:
    """Log a new ``role`` member in over HTTP; ``stack``: a contextlib.AsyncExitStack that closes the client."""
    client = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False,
                                                               headers={"user-agent": f"console-test/{role}"}))
    creds = await new_staff(ctx, role)
    done = await log_in(client, creds, at=utcnow())
    assert done.status_code == 303, done.text[:300]
    home = await client.get("/admin/")
    return Console(client, creds, csrf_of(home))
