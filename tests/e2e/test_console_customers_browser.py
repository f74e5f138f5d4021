"""The console's customer pages in a real browser (Playwright driving ``/usr/bin/chromium``): a member logs
in, searches a customer by phone, opens the page and sees it masked, reveals the phone with a reason and sees
the full value on that page only. Outside CI the test skips when chromium or Playwright is missing."""

from __future__ import annotations

import httpx

from models.accounts import Account
from tests.browser import log_in, needs_browser, page  # noqa: F401 (fixture)
from tests.helpers import Sandbox
from tests.staff_helpers import new_staff


@needs_browser
async def test_search_by_phone_open_the_page_masked_and_reveal_the_phone(ctx, server, page):  # noqa: F811
    from tests.account_helpers import open_account

    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as c:
        _, person, account = await open_account(c, Sandbox(c))
    user_id = (await Account.get(id=account["id"])).user_id
    masked = f"{person.phone[:3]}****{person.phone[-4:]}"

    me = await new_staff(ctx, "operator")
    await log_in(page, me)
    await page.click("nav.menu >> text=客户")
    await page.wait_for_load_state()
    await page.select_option("#kind", "phone")
    await page.fill("#q", person.phone)
    await page.click("#search-submit")
    await page.wait_for_load_state()
    assert person.phone not in await page.content()  # the results are masked
    await page.click(f'a[href="/admin/customers/{user_id}"]')
    await page.wait_for_load_state()
    assert page.url.endswith(f"/admin/customers/{user_id}")
    assert await page.text_content("#masked-phone") == masked
    assert person.phone not in await page.content() and person.id_number not in await page.content()

    await page.fill('input.reason[data-field="phone"]', "客户来电，核实预留手机号")
    await page.click('button.reveal-submit[data-field="phone"]')
    await page.wait_for_load_state()
    assert await page.text_content("#revealed-value") == person.phone
    assert person.phone not in page.url
    # opening the page again shows it masked
    await page.goto(f"/admin/customers/{user_id}")
    assert await page.text_content("#masked-phone") == masked
    assert await page.query_selector("#revealed-value") is None
