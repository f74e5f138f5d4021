"""The staff console in a real browser: Playwright for Python driving Debian's chromium (``/usr/bin/chromium``,
installed by ``.ci/run``; Playwright downloads no browser). Shared by every browser test: the ``page``
fixture (import it into the test module), the skip outside CI, and logging in through the form.

Outside CI the tests skip when chromium or Playwright is missing; with ``CI`` set they must run
(``tests/e2e/test_admin_browser.py::test_the_browser_is_installed_in_ci``)."""

from __future__ import annotations

import os
from pathlib import Path

import pyotp
import pytest

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")
try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None

needs_browser = pytest.mark.skipif(
    async_playwright is None or not CHROMIUM.exists(),
    reason="chromium or playwright not installed (apt-get install chromium; pip install -e '.[test]')")


async def _browser_page(server):
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = await browser.new_context(base_url=server.url, locale="zh-CN")
            page = await context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            await browser.close()


@pytest.fixture
async def page(server):
    """A fresh browser page on the test server (its own cookies)."""
    async for one in _browser_page(server):
        yield one


@pytest.fixture
async def second_page(server):
    """A second browser with its own cookies: another staff member at the same time."""
    async for one in _browser_page(server):
        yield one


async def fill_login(page, username: str, password: str, code: str) -> None:
    await page.goto("/admin/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.fill("#totp", code)
    await page.click("#login-submit")
    await page.wait_for_load_state()


async def log_in(page, creds) -> None:
    """Log ``creds`` (tests.staff_helpers.StaffCreds) in through the form with the current TOTP code."""
    await fill_login(page, creds.username, creds.password, pyotp.TOTP(creds.totp_secret).now())
    assert page.url.endswith("/admin/"), page.url
