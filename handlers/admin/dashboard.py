"""``GET /admin/``: who is logged in, and today's numbers."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.exceptions import NotFound
from sanic.response import HTTPResponse, file

from handlers.admin.pages import STATIC, client_of, me, page, render, require, to_login
from services.staff import dashboard, permissions, sessions

bp = Blueprint("admin_dashboard")
ROLE_NAMES = {"viewer": "查看员", "reviewer": "审核员", "operator": "操作员", "risk": "风控专员", "admin": "管理员"}


@bp.get("/", strict_slashes=True)
@page
async def home(request: Request) -> HTTPResponse:
    current = await me(request)
    if current is None:
        return to_login()
    await require(current, client_of(request), "dashboard.view")
    await sessions.page_viewed(current, client_of(request), "dashboard")
    return render("dashboard.html", staff=current.staff, role_name=ROLE_NAMES[str(current.staff.role)],
                  csrf_token=current.session.csrf_token, today=await dashboard.today(),
                  permissions=permissions.of(current.staff.role))


@bp.get("/static/<name:str>")
@page
async def static(request: Request, name: str) -> HTTPResponse:
    """The console's own stylesheet (no CDN); nothing else is served from here."""
    if name != "console.css":
        raise NotFound()
    return await file(STATIC / name, headers={"Cache-Control": "public, max-age=3600"})
