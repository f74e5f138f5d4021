"""Maker-checker in a real browser (Playwright on Debian's chromium): a held transfer above the four-eyes
threshold approved by a second reviewer after the proposer's own approval is refused; an account frozen
by an operator and unfrozen once a risk analyst approves. Two browsers, two staff members, each logged
in with their own TOTP."""

from __future__ import annotations

import pytest

from models.accounts import Account, CardTransfer
from tests.account_helpers import open_account, top_up
from tests.browser import log_in, needs_browser, page, second_page  # noqa: F401 (fixtures)
from tests.helpers import rules_in_force
from tests.staff_helpers import new_staff


@pytest.fixture
def strict(server, monkeypatch):
    """Four eyes above ¥5 for this test."""
    services = server.app.ctx.services
    monkeypatch.setattr(services, "settings", services.settings.replace(admin_four_eyes_above_fen=500))


@needs_browser
async def test_a_held_transfer_needs_a_second_reviewer_in_the_browser(ctx, client, sandbox, page, second_page, strict):
    user, _, account = await open_account(client, sandbox, card_balance_fen=100_000)
    await rules_in_force([{"id": "hold-all-top-ups", "type": "amount", "status": "active", "action": "review",
                           "applies_to": ["top_up"], "max_amount_fen": 0}])
    try:
        held = await top_up(client, user, account["id"], 900)
    finally:
        await rules_in_force([])
    transfer_id = held.json()["id"]
    maker, checker = await new_staff(ctx, "reviewer"), await new_staff(ctx, "reviewer")

    await log_in(page, maker)
    await page.click("nav.menu >> text=待办队列")
    row = page.locator(f'tr[data-transfer="{transfer_id}"]')
    assert "hold-all-top-ups" in await row.text_content()
    await row.locator(".approve-reason").fill("客户来电确认是本人操作")
    await row.locator("button.approve").click()
    await page.wait_for_load_state()
    assert await page.text_content("#flash") == "已提交，等待另一位员工复核"
    assert await page.text_content("#proposal-status") == "待复核"
    proposal_path = page.url[page.url.index("/admin"):].split("?")[0]
    # the proposer's own approval is refused
    await page.click("#approve")
    await page.wait_for_load_state()
    assert "另一位" in await page.text_content("main")
    assert (await CardTransfer.get(id=transfer_id)).status == "held"

    await log_in(second_page, checker)
    await second_page.click("nav.menu >> text=复核")
    await second_page.click(f'a[href="{proposal_path}"]')
    assert "放行被风控暂缓的充值 ¥9.00" in await second_page.text_content("#proposal-summary")
    await second_page.fill("#approve-note", "已电话回访")
    await second_page.click("#approve")
    await second_page.wait_for_load_state()
    assert await second_page.text_content("#outcome") == "已生效"
    assert (await CardTransfer.get(id=transfer_id)).status == "succeeded"


@needs_browser
async def test_a_freeze_and_an_unfreeze_in_the_browser(ctx, client, sandbox, page, second_page):
    _, _, account = await open_account(client, sandbox, card_balance_fen=10_000)
    number = (await Account.get(id=account["id"])).number
    operator, analyst = await new_staff(ctx, "operator"), await new_staff(ctx, "risk")

    await log_in(page, operator)
    await page.click("nav.menu >> text=账户冻结")
    await page.fill("#account-number", number)
    await page.click("#account-search")
    await page.wait_for_load_state()
    assert number not in await page.text_content("main")  # masked
    await page.select_option("#freeze-kind", "fraud")
    await page.fill("#freeze-reason", "疑似电信诈骗，客户来电求助")
    await page.click("#freeze")
    await page.wait_for_load_state()
    assert await page.text_content("#flash") == "已冻结"
    assert await page.text_content("#account-status") == "restricted"
    await page.locator(".unfreeze-reason").fill("核实为本人交易")
    await page.locator("button.unfreeze").click()
    await page.wait_for_load_state()
    assert await page.text_content("#proposal-status") == "待复核"
    assert (await Account.get(id=account["id"])).status == "restricted"
    path = page.url[page.url.index("/admin"):].split("?")[0]

    await log_in(second_page, analyst)
    await second_page.goto(path)
    await second_page.click("#approve")
    await second_page.wait_for_load_state()
    assert await second_page.text_content("#outcome") == "已生效"
    await page.goto(f"/admin/accounts/{account['id']}")
    assert await page.text_content("#account-status") == "active"
