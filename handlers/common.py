"""What every handler needs besides its contract (``handlers.spec``): the service context."""

from __future__ import annotations

import re

from sanic import Request

from handlers.spec import DEVICE_ID_PATTERN
from services.context import ServiceContext


def services(request: Request) -> ServiceContext:
    return request.app.ctx.services


DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


def client(request: Request) -> dict[str, str | None]:
    """Who is calling, for risk control: the mini-program's device id (``X-Device``: made once at
    random and kept in its storage; the contract refuses a malformed one) and the client's IP
    (``remote_addr`` behind a configured proxy)."""
    device = request.headers.get("x-device")
    return {"device": device if device and DEVICE_ID.fullmatch(device) else None,
            "ip": (request.remote_addr or request.ip or None)}
