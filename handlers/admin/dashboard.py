"""``GET /admin/``: who is logged in, today's numbers, and the last 14 days as bar charts (inline SVG)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.exceptions import NotFound
from sanic.response import HTTPResponse, file

from handlers.admin.pages import STATIC, page, render_staff, staff_for
from services.staff import dashboard, permissions

bp = Blueprint("admin_dashboard")


@bp.get("/", strict_slashes=True)
@page
async def home(request: Request) -> HTTPResponse:
    current = await staff_for(request, "dashboard.view", view="dashboard")
    return render_staff("dashboard.html", current, today=await dashboard.today(), series=await dashboard.last_days(),
                        permissions=permissions.of(current.staff.role))


@bp.get("/static/<name:str>")
@page
async def static(request: Request, name: str) -> HTTPResponse:
    """The console's own stylesheet (no CDN); nothing else is served from here."""
    if name != "console.css":
        raise NotFound()
    return await file(STATIC / name, headers={"Cache-Control": "public, max-age=3600"})
