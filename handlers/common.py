"""What every handler needs besides its contract (``handlers.spec``): the service context."""

from __future__ import annotations

from sanic import Request

from services.context import ServiceContext


def services(request: Request) -> ServiceContext:
    return request.app.ctx.services
