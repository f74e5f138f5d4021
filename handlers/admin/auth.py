"""``GET/POST /admin/login`` and ``POST /admin/logout``."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect

from handlers.admin.pages import (
    LOGIN_CSRF_COOKIE, SESSION_COOKIE, check_csrf, clear_cookie, client_of, me, new_login_csrf, page, render,
    set_cookie, to_login,
)
from services.staff import login, sessions
from services.staff.errors import LoginFailed, LoginLocked

bp = Blueprint("admin_auth")
LOGIN_CSRF_MAX_AGE_S = 3600


def _login_form(request: Request, *, error: str | None = None, status: int = 200, username: str = "") -> HTTPResponse:
    token = new_login_csrf()
    resp = render("login.html", status=status, csrf_token=token, error=error, username=username)
    set_cookie(request, resp, LOGIN_CSRF_COOKIE, token, max_age=LOGIN_CSRF_MAX_AGE_S)
    return resp


@bp.get("/login")
@page
async def login_form(request: Request) -> HTTPResponse:
    return _login_form(request)


@bp.post("/login")
@page
async def login_submit(request: Request) -> HTTPResponse:
    check_csrf(request, request.cookies.get(LOGIN_CSRF_COOKIE))
    form = request.form
    username = form.get("username", "")
    try:
        done = await login.log_in(request.app.ctx.services, username=username, password=form.get("password", ""),
                                  code=form.get("totp", ""), client=client_of(request))
    except (LoginFailed, LoginLocked) as exc:
        resp = _login_form(request, error=exc.message, status=exc.status, username=username[:32])
        resp.headers.update(exc.headers)
        return resp
    resp = redirect("/admin/", status=303)
    set_cookie(request, resp, SESSION_COOKIE, done.token, max_age=request.app.ctx.settings.admin_session_lifetime_s)
    clear_cookie(resp, LOGIN_CSRF_COOKIE)
    return resp


@bp.post("/logout")
@page
async def logout(request: Request) -> HTTPResponse:
    current = await me(request)
    if current is None:
        return to_login()
    check_csrf(request, current.session.csrf_token)
    await sessions.end(current, client_of(request))
    resp = to_login()
    clear_cookie(resp, SESSION_COOKIE)
    return resp
