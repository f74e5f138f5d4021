"""What every handler needs besides its contract (``handlers.spec``): the service context."""

from __future__ import annotations

import re

from sanic import Request

from services.context import ServiceContext


def services(request: Request) -> ServiceContext:
    return request.app.ctx.services


DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def client(request: Request) -> dict[str, str | None]:
    """Who is calling, for risk control: the mini-program's device id (``X-Device-Id``: made once at
    random and kept in its storage; advisory, so a malformed one counts as none) and the client's IP
    (``remote_addr`` behind a configured proxy)."""
    device = request.headers.get("x-device-id")
    return {"device": device if device and DEVICE_ID.fullmatch(device) else None,
            "ip": (request.remote_addr or request.ip or None)}
