"""The staff console's login (issue #23, first slice): username, password (argon2id) and TOTP (RFC 6238),
server-side sessions with idle and absolute limits, CSRF on every form, a lockout shared by every worker,
and every step an audit event. Time is moved (``tests.staff_helpers.Clock``), never slept."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta
from types import SimpleNamespace

import httpx
import pytest
from sanic.response import html

from models.audit import AuditEvent
from models.staff import Staff
from tests.staff_helpers import StaffCreds, csrf_of, log_in, login_form, new_staff, new_username

UA = {"user-agent": "staff-test-browser/1.0"}


async def staff_events(staff_id: int) -> list[AuditEvent]:
    return await AuditEvent.filter(entity_type="staff", entity_id=str(staff_id)).order_by("id")


def login_error(resp: httpx.Response) -> str:
    found = re.search(r'id="login-error"[^>]*>([^<]+)<', resp.text)
    return found.group(1) if found else ""


# -- logging in --


async def test_login_with_password_and_totp_shows_the_landing_page(ctx, admin_client, clock):
    me = await new_staff(ctx, "reviewer")
    resp = await log_in(admin_client, me, at=clock.now)
    assert resp.status_code == 303 and resp.headers["location"] == "/admin/"
    home = await admin_client.get("/admin/")
    assert home.status_code == 200
    assert f'<span id="staff-name">{me.username}</span>' in home.text and "审核员" in home.text
    for tile in ("count-openings", "count-debits", "count-refusals", "count-held"):
        assert re.search(rf'id="{tile}">\d+<', home.text), tile
    assert "queues.decide" in home.text and "staff.manage" not in home.text  # the role's permissions


async def test_the_landing_page_counts_what_the_database_holds(ctx, admin_client, client, sandbox, clock):
    from tests.account_helpers import open_account

    def count(page: httpx.Response, tile: str) -> int:
        return int(re.search(rf'id="count-{tile}">(\d+)<', page.text).group(1))

    me = await new_staff(ctx)
    await log_in(admin_client, me, at=clock.now)
    before = await admin_client.get("/admin/")
    await open_account(client, sandbox)
    after = await admin_client.get("/admin/")
    assert count(after, "openings") == count(before, "openings") + 1
    assert count(after, "held") == count(before, "held")


async def test_without_a_session_the_console_sends_to_the_login_page(admin_client):
    resp = await admin_client.get("/admin/")
    assert resp.status_code == 303 and resp.headers["location"] == "/admin/login"
    form = await admin_client.get("/admin/login")
    assert form.status_code == 200 and "员工登录" in form.text
    assert 'name="username"' in form.text and 'name="password"' in form.text and 'name="totp"' in form.text
    assert "http://" not in form.text and "https://" not in form.text  # nothing from a CDN
    css = await admin_client.get("/admin/static/console.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert (await admin_client.get("/admin/static/../templates/login.html")).status_code == 404


async def test_a_wrong_password_is_refused(ctx, admin_client, clock):
    me = await new_staff(ctx)
    resp = await log_in(admin_client, me, at=clock.now, password=me.password + "x")
    assert resp.status_code == 401 and login_error(resp) == "用户名、密码或动态验证码错误"
    assert "admin_session" not in resp.headers.get("set-cookie", "")
    assert (await admin_client.get("/admin/")).status_code == 303


async def test_a_wrong_totp_code_is_refused(ctx, admin_client, clock):
    me = await new_staff(ctx)
    right = me.code(clock.now)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    resp = await log_in(admin_client, me, at=clock.now, code=wrong)
    assert resp.status_code == 401 and login_error(resp) == "用户名、密码或动态验证码错误"
    # two steps away is outside valid_window=1; one step either side is inside
    far = me.code(clock.now.replace(microsecond=0) - timedelta(seconds=60))
    if far != right:
        assert (await log_in(admin_client, me, at=clock.now, code=far)).status_code == 401
    near = me.code(clock.now - timedelta(seconds=30))
    assert (await log_in(admin_client, me, at=clock.now, code=near)).status_code == 303


async def test_an_unknown_username_gets_the_same_answer(admin_client, clock, ctx):
    me = await new_staff(ctx)
    me.username = me.username + "zz"
    resp = await log_in(admin_client, me, at=clock.now)
    assert resp.status_code == 401 and login_error(resp) == "用户名、密码或动态验证码错误"


async def test_a_totp_code_is_accepted_once(ctx, server, clock):
    me = await new_staff(ctx)
    code = me.code(clock.now)
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as first, \
            httpx.AsyncClient(base_url=server.url, trust_env=False) as second:
        assert (await log_in(first, me, at=clock.now, code=code)).status_code == 303
        replay = await log_in(second, me, at=clock.now, code=code)
        assert replay.status_code == 401, "the same code twice in its step"
        # nor the previous step's code, though still inside the window
        assert (await log_in(second, me, at=clock.now, code=me.code(clock.now.replace(microsecond=0)
                                                                    - timedelta(seconds=30)))
                ).status_code == 401
        clock.move(seconds=30)
        assert (await log_in(second, me, at=clock.now)).status_code == 303, "the next step's code"
    reasons = [e.data.get("reason") for e in await staff_events(me.id) if e.action == "staff.login_failed"]
    assert reasons[0] == "totp_replayed"


async def test_a_disabled_member_is_refused_and_their_sessions_end(ctx, admin_client, clock):
    from services.staff import directory

    me = await new_staff(ctx, "operator")
    assert (await log_in(admin_client, me, at=clock.now)).status_code == 303
    assert (await admin_client.get("/admin/")).status_code == 200
    await directory.disable(me.username, operator="operator:test")
    assert (await admin_client.get("/admin/")).status_code == 303, "the open session ended"
    clock.move(seconds=30)
    resp = await log_in(admin_client, me, at=clock.now)
    assert resp.status_code == 401 and login_error(resp) == "用户名、密码或动态验证码错误"
    failed = [e for e in await staff_events(me.id) if e.action == "staff.login_failed"]
    assert failed[-1].data["reason"] == "disabled"


async def test_a_new_totp_secret_retires_the_old_one(ctx, admin_client, clock):
    from services.staff import directory

    me = await new_staff(ctx)
    renewed = await directory.reset_totp(ctx, me.username, operator="operator:test")
    assert (await log_in(admin_client, me, at=clock.now)).status_code == 401
    me.totp_secret = renewed.totp_secret
    assert (await log_in(admin_client, me, at=clock.now)).status_code == 303


async def test_the_totp_secret_is_encrypted_at_rest(ctx):
    me = await new_staff(ctx)
    row = await Staff.get(id=me.id)
    assert me.totp_secret not in row.totp_secret_enc and row.totp_secret_enc.startswith("v1.")
    assert row.password_hash.startswith("$argon2id$") and me.password not in row.password_hash


# -- CSRF --


async def test_a_login_post_without_the_csrf_token_is_403(ctx, admin_client, clock):
    me = await new_staff(ctx)
    await login_form(admin_client)  # has the cookie, leaves out the field
    body = {"username": me.username, "password": me.password, "totp": me.code(clock.now)}
    resp = await admin_client.post("/admin/login", data=body)
    assert resp.status_code == 403 and "CSRF_REFUSED" in resp.text
    forged = await admin_client.post("/admin/login", data={**body, "csrf_token": "x" * 43})
    assert forged.status_code == 403
    # a token from another browser's form does not match this one's cookie
    async with httpx.AsyncClient(base_url=str(admin_client.base_url), trust_env=False) as other:
        theirs = await login_form(other)
    assert (await admin_client.post("/admin/login", data={**body, "csrf_token": theirs})).status_code == 403
    assert not [e for e in await staff_events(me.id) if e.action.startswith("staff.login")], "refused before any check"


async def test_a_logout_without_the_sessions_csrf_token_is_403(ctx, admin_client, clock):
    me = await new_staff(ctx)
    await log_in(admin_client, me, at=clock.now)
    home = await admin_client.get("/admin/")
    assert (await admin_client.post("/admin/logout", data={})).status_code == 403
    assert (await admin_client.post("/admin/logout", data={"csrf_token": "nope"})).status_code == 403
    assert (await admin_client.get("/admin/")).status_code == 200, "still logged in"
    out = await admin_client.post("/admin/logout", data={"csrf_token": csrf_of(home)})
    assert out.status_code == 303 and out.headers["location"] == "/admin/login"
    assert (await admin_client.get("/admin/")).status_code == 303


# -- sessions --


async def test_cookies_carry_their_flags(ctx, admin_client, clock, settings):
    from handlers.admin import pages

    me = await new_staff(ctx)
    form = await admin_client.get("/admin/login")
    login_cookie = form.headers["set-cookie"]
    resp = await admin_client.post("/admin/login", data={"csrf_token": csrf_of(form), "username": me.username,
                                                         "password": me.password, "totp": me.code(clock.now)})
    session_cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("admin_session="))
    for cookie in (login_cookie, session_cookie):
        flags = [f.strip().lower() for f in cookie.split(";")]
        assert "httponly" in flags and "samesite=strict" in flags and "path=/admin" in flags, cookie
        assert "secure" not in flags, "sandbox mode serves plain http on 127.0.0.1"
    # outside sandbox mode the same cookie is Secure
    production = SimpleNamespace(app=SimpleNamespace(ctx=SimpleNamespace(settings=settings.replace(app_env="production"))))
    answer = html("")
    pages.set_cookie(production, answer, pages.SESSION_COOKIE, "t", max_age=60)
    flags = [f.strip().lower() for f in str(answer.headers["set-cookie"]).split(";")]
    assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags


async def test_a_session_idle_too_long_is_refused(ctx, admin_client, clock, settings):
    me = await new_staff(ctx)
    await log_in(admin_client, me, at=clock.now)
    clock.move(seconds=settings.admin_idle_timeout_s - 60)
    assert (await admin_client.get("/admin/")).status_code == 200, "used within the idle time: still good"
    clock.move(seconds=settings.admin_idle_timeout_s - 60)
    assert (await admin_client.get("/admin/")).status_code == 200, "the last use counts, not the login"
    clock.move(seconds=settings.admin_idle_timeout_s)
    resp = await admin_client.get("/admin/")
    assert resp.status_code == 303 and resp.headers["location"] == "/admin/login"


async def test_a_session_ends_at_its_absolute_lifetime_however_active(ctx, admin_client, clock, settings):
    me = await new_staff(ctx)
    await log_in(admin_client, me, at=clock.now)
    step = settings.admin_idle_timeout_s - 60
    used = 0
    while used + step < settings.admin_session_lifetime_s:
        clock.move(seconds=step)
        used += step
        assert (await admin_client.get("/admin/")).status_code == 200
    clock.move(seconds=settings.admin_session_lifetime_s - used)
    assert (await admin_client.get("/admin/")).status_code == 303


async def test_a_made_up_session_cookie_is_nobody(admin_client):
    admin_client.cookies.set("admin_session", "x" * 43, domain="127.0.0.1", path="/admin")
    assert (await admin_client.get("/admin/")).status_code == 303


# -- lockout --


async def test_lockout_after_repeated_failures_with_backoff(ctx, admin_client, clock, settings):
    me = await new_staff(ctx)
    n = settings.admin_lockout_after
    for _ in range(n - 1):
        assert (await log_in(admin_client, me, at=clock.now, password="wrong")).status_code == 401
    locked = await log_in(admin_client, me, at=clock.now, password="wrong")
    assert locked.status_code == 429 and "登录失败次数过多" in login_error(locked)
    assert int(locked.headers["retry-after"]) == settings.admin_lockout_base_s
    # while locked, the right password and code are not even looked at
    right = await log_in(admin_client, me, at=clock.now)
    assert right.status_code == 429
    clock.move(seconds=settings.admin_lockout_base_s + 1)
    # one more failure after it lapses locks again, twice as long
    again = await log_in(admin_client, me, at=clock.now, password="wrong")
    assert again.status_code == 429 and int(again.headers["retry-after"]) == 2 * settings.admin_lockout_base_s
    clock.move(seconds=2 * settings.admin_lockout_base_s + 1)
    assert (await log_in(admin_client, me, at=clock.now)).status_code == 303, "a success after the lockout"
    row = await Staff.get(id=me.id)
    assert row.failed_logins == 0 and row.locked_until is None


async def test_an_unknown_username_locks_out_exactly_as_a_real_one(ctx, admin_client, clock, settings):
    """The lockout does not tell which usernames exist: the same answers, statuses and Retry-After."""
    real = await new_staff(ctx)
    ghost = StaffCreds(0, new_username(), "whatever-password", real.totp_secret, "viewer")
    answers = {}
    for who in (real, ghost):
        seen = []
        for _ in range(settings.admin_lockout_after + 1):
            resp = await log_in(admin_client, who, at=clock.now, password="wrong")
            seen.append((resp.status_code, login_error(resp), resp.headers.get("retry-after")))
        clock.move(seconds=settings.admin_lockout_base_s + 1)
        resp = await log_in(admin_client, who, at=clock.now, password="wrong")
        seen.append((resp.status_code, login_error(resp), resp.headers.get("retry-after")))
        answers[who.username] = seen
    assert answers[real.username] == answers[ghost.username], answers
    assert answers[ghost.username][-1][2] == str(2 * settings.admin_lockout_base_s)  # the backoff doubles too


async def test_the_lockout_is_held_in_the_database_for_every_worker(ctx, server, clock, settings):
    """A second worker: its own service context, its own HTTP client, nothing shared but the database."""
    from app.providers import build_http, build_services
    from services.staff import login
    from services.staff.errors import LoginLocked
    from services.staff.sessions import Client

    me = await new_staff(ctx)
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as first:
        for _ in range(settings.admin_lockout_after):
            await log_in(first, me, at=clock.now, password="wrong")
    http = build_http(settings)
    try:
        other_worker = build_services(settings, http)
        with pytest.raises(LoginLocked):
            await login.log_in(other_worker, username=me.username, password=me.password, code=me.code(clock.now),
                               client=Client("10.0.0.2", "other"))
    finally:
        await http.aclose()


@pytest.mark.slow
def test_lockout_holds_across_two_server_processes_on_one_database(tmp_path):
    """Two real app instances on one database, the member made with the CLI: failures on either count."""
    import pyotp

    from tests.conftest import free_port
    from tests.e2e.servers import ROOT, ServerProcess, server_env

    env = server_env(tmp_path, ADMIN_ENABLED="true", ADMIN_LOCKOUT_AFTER="3")
    made = subprocess.run([sys.executable, "-m", "app", "staff", "create", "twoworkers" + tmp_path.name[-6:].lower()
                           .replace("_", ""), "--role", "risk", "--operator", "ci"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    creds = json.loads(made.stdout)
    assert set(creds) == {"username", "role", "password", "totp_secret"} and creds["role"] == "risk"
    servers = []
    try:
        for name in ("a", "b"):
            s = ServerProcess(free_port(), env, tmp_path / f"{name}.log")
            servers.append(s)
        for s in servers:
            s.wait_ready()

        def attempt(s: ServerProcess, password: str) -> httpx.Response:
            with httpx.Client(base_url=s.url, trust_env=False, timeout=30) as c:
                csrf = csrf_of(c.get("/admin/login"))
                return c.post("/admin/login", data={"csrf_token": csrf, "username": creds["username"],
                                                    "password": password, "totp": pyotp.TOTP(creds["totp_secret"]).now()})

        a, b = servers
        assert attempt(a, "wrong").status_code == 401
        assert attempt(b, "wrong").status_code == 401
        assert attempt(a, "wrong").status_code == 429, "the third failure, wherever it lands, locks"
        assert attempt(b, creds["password"]).status_code == 429
        assert attempt(a, creds["password"]).status_code == 429
    finally:
        for s in servers:
            s.stop()


async def test_an_action_without_the_role_is_403_and_audited(ctx, admin_client, clock):
    from core.errors import Forbidden
    from handlers.admin.pages import require
    from services.staff import sessions

    me = await new_staff(ctx, "viewer")
    await log_in(admin_client, me, at=clock.now)
    current = await sessions.current(ctx.settings, admin_client.cookies.get("admin_session"))
    assert current is not None and current.staff.id == me.id
    who = sessions.Client("10.1.2.3", "ua")
    await require(current, who, "dashboard.view")  # held: nothing happens
    with pytest.raises(Forbidden):
        await require(current, who, "queues.decide")
    refused = [e for e in await staff_events(me.id) if e.action == "staff.refused"]
    assert len(refused) == 1 and refused[0].data["permission"] == "queues.decide"
    assert refused[0].data["role"] == "viewer" and refused[0].data["ip"] == "10.1.2.3"


# -- audit --


async def test_every_login_step_is_audited_with_staff_role_ip_and_user_agent(ctx, admin_client, clock, settings):
    me = await new_staff(ctx, "risk")
    await log_in(admin_client, me, at=clock.now, password="wrong")
    await log_in(admin_client, me, at=clock.now)
    home = await admin_client.get("/admin/")
    await admin_client.post("/admin/logout", data={"csrf_token": csrf_of(home)})
    events = await staff_events(me.id)
    actions = [e.action for e in events]
    assert actions == ["staff.created", "staff.login_failed", "staff.login", "staff.page_view", "staff.logout"]
    for e in events[1:]:
        assert e.actor == f"staff:{me.id}"
        assert e.data["role"] == "risk" and e.data["ip"] == "127.0.0.1", e.data
        assert e.data["user_agent"] == UA["user-agent"]
    assert events[0].actor == "operator:test"
    assert me.password not in json.dumps([e.data for e in events]) and me.totp_secret not in json.dumps(
        [e.data for e in events])
    # and the lockout
    other = await new_staff(ctx)
    for _ in range(settings.admin_lockout_after):
        await log_in(admin_client, other, at=clock.now, password="wrong")
    await log_in(admin_client, other, at=clock.now)
    tail = [e.action for e in await staff_events(other.id)][-3:]
    assert tail == ["staff.login_failed", "staff.locked", "staff.login_locked"]
    from services import audit

    assert (await audit.verify()).ok


# -- switched off, and production --


async def test_the_console_is_404_when_not_enabled(settings):
    """An app built without ADMIN_ENABLED, serving real HTTP (started without its database: a 404 needs none)."""
    from app.factory import create_app
    from tests.conftest import free_port

    app = create_app(settings.replace(admin_enabled=False))
    port = free_port()
    srv = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False)
    await srv.startup()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as c:
            for method, path in (("GET", "/admin/login"), ("POST", "/admin/login"), ("GET", "/admin/"),
                                 ("POST", "/admin/logout"), ("GET", "/admin/static/console.css")):
                resp = await c.request(method, path)
                assert resp.status_code == 404, (method, path)
                assert resp.json()["error"]["code"] == "NOT_FOUND"
    finally:
        srv.close()
        await srv.wait_closed()


def test_production_refuses_the_console_without_tls_or_a_trusted_proxy(tmp_path, settings):
    from app.config import load_settings
    from app.factory import create_app
    from core.errors import ConfigError

    env = {"APP_ENV": "production", "VAR_DIR": str(tmp_path), "ADMIN_ENABLED": "true"}
    with pytest.raises(ConfigError) as err:
        load_settings(env, dotenv=False)
    assert "ADMIN_ENABLED is on without TLS" in str(err.value)
    for fix in ({"PROXIES_COUNT": "1"}, {"TLS_CERT_PATH": "/etc/tls/c.pem", "TLS_KEY_PATH": "/etc/tls/k.pem"},
                {"ADMIN_ENABLED": "false"}):
        with pytest.raises(ConfigError) as err:  # production refuses the rest of this bare configuration
            load_settings({**env, **fix}, dotenv=False)
        assert "ADMIN_ENABLED" not in str(err.value), fix
    # a launcher that builds its settings itself is refused as clearly
    with pytest.raises(ConfigError, match="ADMIN_ENABLED is on without TLS"):
        create_app(settings.replace(app_env="production", admin_enabled=True))


async def test_the_session_sweep_deletes_only_long_ended_or_expired_sessions(ctx, admin_client, clock):
    from models.staff import StaffSession
    from services.staff import sessions

    me = await new_staff(ctx)
    await log_in(admin_client, me, at=clock.now)
    live = await StaffSession.filter(staff_id=me.id).first()
    old = await StaffSession.create(token_hash="e" * 64, staff_id=me.id, csrf_token="x", ip="1", user_agent="u",
                                    created_at=clock.now - timedelta(days=200), last_seen_at=clock.now - timedelta(days=200),
                                    expires_at=clock.now - timedelta(days=199))
    ended = await StaffSession.create(token_hash="f" * 64, staff_id=me.id, csrf_token="x", ip="1", user_agent="u",
                                      created_at=clock.now - timedelta(days=100), last_seen_at=clock.now,
                                      expires_at=clock.now + timedelta(hours=1), ended_at=clock.now - timedelta(days=91))
    recent = await StaffSession.create(token_hash="a" * 64, staff_id=me.id, csrf_token="x", ip="1", user_agent="u",
                                       created_at=clock.now, last_seen_at=clock.now,
                                       expires_at=clock.now + timedelta(hours=1), ended_at=clock.now - timedelta(days=1))
    assert await sessions.sweep(clock.now) >= 2
    left = set(await StaffSession.filter(staff_id=me.id).values_list("id", flat=True))
    assert live.id in left and recent.id in left and old.id not in left and ended.id not in left
    assert (await admin_client.get("/admin/")).status_code == 200  # the live one still works
