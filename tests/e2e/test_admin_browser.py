"""The staff console in a real browser: Playwright for Python driving Debian's chromium (``/usr/bin/chromium``,
installed by ``.ci/run``; Playwright downloads no browser). Given a staff member made with the service,
when they log in with username, password and TOTP, then the landing page shows their name and role; a
wrong TOTP code shows the error on the login page.

Outside CI the tests skip when chromium or Playwright is missing; with ``CI`` set they must run."""

from __future__ import annotations

import pytest

from tests.browser import IN_CI, async_playwright, CHROMIUM, fill_login, needs_browser, page  # noqa: F401 (fixture)
from tests.staff_helpers import new_staff


def test_the_browser_is_installed_in_ci():
    """CI must not skip the browser tests silently."""
    if IN_CI and (async_playwright is None or not CHROMIUM.exists()):
        pytest.fail("CI is set but chromium or playwright is missing: apt-get install -y chromium")


@needs_browser
async def test_login_with_totp_shows_the_landing_page_with_name_and_role(ctx, page):
    import pyotp

    me = await new_staff(ctx, "operator")
    await fill_login(page, me.username, me.password, pyotp.TOTP(me.totp_secret).now())
    assert page.url.endswith("/admin/")
    assert await page.text_content("#staff-name") == me.username
    assert await page.text_content("#staff-role") == "操作员"
    assert "今日概览" in await page.text_content("h1")
    for tile in ("openings", "debits", "refusals", "held"):
        assert (await page.text_content(f"#count-{tile}")).strip().isdigit()
    # the session cookie is out of the page's reach, and the login form's CSRF cookie is gone
    assert "admin_session" not in await page.evaluate("document.cookie")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["admin_session"]["httpOnly"] and cookies["admin_session"]["sameSite"] == "Strict"
    assert "admin_login_csrf" not in cookies
    # and logging out through the page's form (with its CSRF token) ends the session
    await page.click("text=退出登录")
    await page.wait_for_load_state()
    assert page.url.endswith("/admin/login")
    assert "admin_session" not in {c["name"] for c in await page.context.cookies()}
    await page.goto("/admin/")
    assert page.url.endswith("/admin/login")


@needs_browser
async def test_a_wrong_totp_shows_the_error(ctx, page):
    import pyotp

    me = await new_staff(ctx)
    right = pyotp.TOTP(me.totp_secret).now()
    await fill_login(page, me.username, me.password, f"{(int(right) + 500_000) % 1_000_000:06d}")
    assert page.url.endswith("/admin/login")
    assert await page.text_content("#login-error") == "用户名、密码或动态验证码错误"
    assert await page.input_value("#username") == me.username  # kept; the password is not
    assert await page.input_value("#password") == ""
