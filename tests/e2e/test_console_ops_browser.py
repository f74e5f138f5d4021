"""The console's operations pages in a real browser (Playwright driving Debian's chromium): given a
reviewer, when they log in, then the dashboard draws its four charts of 14 bars; they find their own login
in the audit chain, run the chain's check and read "校验通过"; and they resolve a bill mismatch with a note.
Nothing the page loads breaks the CSP (``default-src 'self'``: no script, no inline style).

Outside CI the test skips when chromium or Playwright is missing; with ``CI`` set it must run."""

from __future__ import annotations

import random
from datetime import date, timedelta

from core.clock import utcnow
from models.payments import BillMismatch
from tests.browser import log_in, needs_browser, page  # noqa: F401 (fixture)
from tests.staff_helpers import new_staff


@needs_browser
async def test_a_reviewer_reads_the_charts_checks_the_chain_and_resolves_a_mismatch(ctx, page):
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    day = date(2001, 1, 1) + timedelta(days=random.randrange(3000))  # noqa: S311 - a day no other test uses
    mismatch = await BillMismatch.create(bill_date=day, kind="amount_differs", out_trade_no=f"T{random.randrange(10**9)}",
                                         ours_fen=1_000, bill_fen=990, found_at=utcnow())
    me = await new_staff(ctx, "reviewer")

    # Given a reviewer logged in, the dashboard draws four charts of the last 14 days
    await log_in(page, me)
    for chart in ("openings", "debits", "refusals", "arrears"):
        assert await page.locator(f"#chart-{chart} svg").count() == 1, chart
        assert await page.locator(f"#chart-{chart} svg rect.bar").count() == 14, chart
    assert (await page.text_content("#count-mismatches")).strip().isdigit()

    # When they open the audit page and search for their own login, they find it
    await page.click("nav.menu >> text=审计")
    await page.wait_for_load_state()
    assert page.url.endswith("/admin/audit")
    await page.fill("#f-actor", f"staff:{me.id}")
    await page.fill("#f-action", "staff.login")
    await page.click("#audit-search-submit")
    await page.wait_for_load_state()
    assert await page.locator("#audit-events tr.event").count() == 1
    assert (await page.text_content("#audit-events tr.event td.action")) == "staff.login"

    # and the chain's check passes
    await page.click("#audit-verify")
    await page.wait_for_load_state()
    assert "校验通过" in await page.text_content("#verify-result")

    # Then on the payments page they resolve the mismatch with a note
    await page.click("nav.menu >> text=支付")
    await page.wait_for_load_state()
    row = page.locator(f"#mismatch-{mismatch.id}")
    assert "10.00" in await row.text_content() and "9.90" in await row.text_content()
    await row.locator("input[name=note]").fill("已与微信支付核对，金额以账单为准")
    await row.locator("button[type=submit]").click()
    await page.wait_for_load_state()
    assert "已记录处理说明" in await page.text_content("#flash")
    assert "已与微信支付核对" in await page.locator(f"#mismatch-{mismatch.id}").text_content()
    resolved = await BillMismatch.get(id=mismatch.id)
    assert resolved.resolved_by_id == me.id and resolved.resolution_note == "已与微信支付核对，金额以账单为准"
    assert violations == []
