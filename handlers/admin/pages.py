"""What every console page shares: templates, the session cookie, CSRF, the audit's view of the client,
and the wrapper that renders a page's failure as a page and notes the request like any other.

CSRF: a logged-in form carries its session's token (``StaffSession.csrf_token``); the login form, made
before any session exists, carries a random token also set in a ``SameSite=Strict`` cookie, and the two
must match (double submit). A POST without the right token is 403 before anything else is looked at.
"""

from __future__ import annotations

import csv
import functools
import io
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import Request
from sanic.response import HTTPResponse, html, redirect

from core.errors import AppError, Forbidden, NotFound, ValidationFailed
from services.db import atomic
from services.staff import permissions, sessions

SESSION_COOKIE = "admin_session"
LOGIN_CSRF_COOKIE = "admin_login_csrf"
COOKIE_PATH = "/admin"
MAX_ID = 2**63 - 1  # a row id (BIGINT) at most

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


ROLE_NAMES = {"viewer": "查看员", "reviewer": "审核员", "operator": "操作员", "risk": "风控专员", "admin": "管理员"}
# the console's menu: (path, label, the permission that shows it)
NAV = (("/admin/", "概览", "dashboard.view"), ("/admin/customers", "客户", "customers.view"),
       ("/admin/queues", "待办队列", "queues.view"), ("/admin/proposals", "复核", "proposals.view"),
       ("/admin/accounts", "账户冻结", "accounts.view"), ("/admin/partners", "合作方", "partners.view"),
       ("/admin/payments", "支付", "payments.view"), ("/admin/risk", "风控", "risk.view"),
       ("/admin/audit", "审计", "audit.view"))


def render_staff(name: str, current: sessions.Current, status: int = 200, **values) -> HTTPResponse:
    """A page for a logged-in member: the header (name, role, logout with the CSRF token) and the menu
    of what their role may open, then the page's own ``values``."""
    role = current.staff.role
    nav = [(path, label) for path, label, permission in NAV if permissions.allows(role, permission)]
    return render(name, status=status, staff=current.staff, role_name=ROLE_NAMES[str(role)], nav=nav,
                  csrf_token=current.session.csrf_token, **values)


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


class LoginRequired(Exception):
    """No live session: the ``page`` wrapper answers with the login page."""


async def staff_for(request: Request, permission: str, *, view: str | None = None, **view_data) -> sessions.Current:
    """The logged-in member allowed ``permission``, for a console route: no session → the login page
    (``LoginRequired``); a POST without the session's CSRF token → 403; without the permission → 403,
    audited; ``view`` names the page in its ``staff.page_view`` audit event (with ``view_data``)."""
    current = await me(request)
    if current is None:
        raise LoginRequired()
    if request.method == "POST":
        check_csrf(request, current.session.csrf_token)
    await require(current, client_of(request), permission)
    if any(isinstance(v, int) and not 1 <= v <= MAX_ID for v in request.match_info.values()):
        raise NotFound()  # an id from the path no row can have (nor the audit's JSON hold): after CSRF and permission
    if view is not None:
        await sessions.page_viewed(current, client_of(request), view, **view_data)
    return current


def form_text(request: Request, name: str, *, max_len: int, required: bool = True) -> str:
    """One form field, stripped; 400 when missing (``required``) or longer than ``max_len``."""
    value = (request.form.get(name) if request.form else None) or ""
    value = value.strip()
    if (required and not value) or len(value) > max_len:
        raise ValidationFailed(f"「{name}」须为 1 到 {max_len} 个字符" if required else f"「{name}」最多 {max_len} 个字符",
                               field=name)
    return value


def query_args(request: Request) -> dict:
    """The query string as a plain dict (a repeated key: its first value)."""
    return {k: request.args.get(k) for k in request.args}


def wants_csv(request: Request) -> bool:
    return request.args.get("format") == "csv"


async def csv_export(request: Request, current: sessions.Current, *, name: str, header: Sequence[str],
                     rows: Iterable[Sequence], filters: dict | None = None) -> HTTPResponse:
    """Any console list as CSV (``?format=csv``): the same rows the page shows (masked as there), and an
    audit event ``staff.export`` naming the list, its filters and the row count."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(["" if v is None else str(v) for v in row])
        count += 1
    await atomic(lambda conn: sessions.record(conn, current, client_of(request), "staff.export", entity_type="staff",
                                              entity_id=current.staff.id, list=name,
                                              filters={k: str(v)[:64] for k, v in (filters or {}).items()},
                                              rows=count))
    resp = HTTPResponse("\ufeff" + out.getvalue(), content_type="text/csv; charset=utf-8")  # BOM: Excel reads UTF-8
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def page(handler):
    """A console route: its ``AppError`` becomes an error page with the error's status, and the request is
    noted (request id, access log, metrics) as the API's are."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args, **kwargs) -> HTTPResponse:
        started = time.perf_counter()
        try:
            resp = await handler(request, *args, **kwargs)
        except LoginRequired:
            resp = to_login()
        except AppError as exc:
            resp = render("error.html", status=exc.status, title="请求未完成", message=exc.message, code=exc.code)
            for name, value in exc.headers.items():
                resp.headers[name] = value
        return request.app.ctx.finish(request, resp, started)

    return wrapper
