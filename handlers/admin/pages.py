"""What every console page shares: templates, the session cookie, CSRF, the audit's view of the client,
and the wrapper that renders a page's failure as a page and notes the request like any other.

CSRF: a logged-in form carries its session's token (``StaffSession.csrf_token``); the login form, made
before any session exists, carries a random token also set in a ``SameSite=Strict`` cookie, and the two
must match (double submit). A POST without the right token is 403 before anything else is looked at.
"""

from __future__ import annotations

import functools
import secrets
import time
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import Request
from sanic.response import HTTPResponse, html, redirect

from core.errors import AppError, Forbidden
from services.staff import permissions, sessions

SESSION_COOKIE = "admin_session"
LOGIN_CSRF_COOKIE = "admin_login_csrf"
COOKIE_PATH = "/admin"

STATIC = Path(__file__).parent / "static"
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]), auto_reload=False)


class CsrfRefused(AppError):
    status = 403
    code = "CSRF_REFUSED"
    message = "页面已过期或请求来源不明，请刷新页面后重试"


def render(name: str, status: int = 200, **values) -> HTTPResponse:
    resp = html(templates.get_template(name).render(**values), status=status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


def client_of(request: Request) -> sessions.Client:
    return sessions.Client(ip=request.remote_addr or request.ip or "unknown",
                           user_agent=request.headers.get("user-agent", "")[:256])


def set_cookie(request: Request, resp: HTTPResponse, name: str, value: str, *, max_age: int) -> None:
    settings = request.app.ctx.settings
    resp.add_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="Strict",
                    secure=settings.is_production,  # outside sandbox mode (plain http on 127.0.0.1)
                    max_age=max_age)


def clear_cookie(resp: HTTPResponse, name: str) -> None:
    resp.delete_cookie(name, path=COOKIE_PATH)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def check_csrf(request: Request, expected: str | None) -> None:
    if expected is None or not sessions.csrf_ok(expected, request.form.get("csrf_token") if request.form else None):
        raise CsrfRefused()


async def me(request: Request) -> sessions.Current | None:
    return await sessions.current(request.app.ctx.settings, request.cookies.get(SESSION_COOKIE))


async def require(current: sessions.Current, client: sessions.Client, permission: str) -> None:
    """403, audited, when the member's role does not hold ``permission`` (services.staff.permissions)."""
    if not permissions.allows(current.staff.role, permission):
        await sessions.refused(current, client, permission)
        raise Forbidden("您的角色无权执行此操作")


def to_login() -> HTTPResponse:
    return redirect("/admin/login", status=303)


def page(handler):
    """A console route: its ``AppError`` becomes an error page with the error's status, and the request is
    noted (request id, access log, metrics) as the API's are."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args, **kwargs) -> HTTPResponse:
        started = time.perf_counter()
        try:
            resp = await handler(request, *args, **kwargs)
        except AppError as exc:
            resp = render("error.html", status=exc.status, title="请求未完成", message=exc.message, code=exc.code)
            for name, value in exc.headers.items():
                resp.headers[name] = value
        return request.app.ctx.finish(request, resp, started)

    return wrapper
