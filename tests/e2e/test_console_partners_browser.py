"""The partner page in a real browser (Playwright driving Debian's chromium): an operator logs in, opens a
partner whose notification the outbox gave up on, redelivers it with a reason, and once the outbox has
delivered it the page shows it delivered (and the sandbox's partner emulator has it).

Outside CI the test skips when chromium or Playwright is missing; with ``CI`` set it must run."""

from __future__ import annotations

from models.infra import OutboxMessage, OutboxStatus
from services.partners import notify
from tests.api.test_console_partners import deliver, emulated_partner, failed_delivery, received
from tests.browser import log_in, needs_browser, page  # noqa: F401 (fixture)
from tests.staff_helpers import new_staff


@needs_browser
async def test_an_operator_redelivers_a_failed_notification(ctx, client, sandbox, server, page):
    partner = await emulated_partner(client, ctx, server)
    failed = await failed_delivery(client, ctx, sandbox, partner.app_id)
    me = await new_staff(ctx, "operator")
    await log_in(page, me)
    await page.click("text=合作方")
    await page.wait_for_load_state()
    await page.click(f"a[href='/admin/partners/{partner.app_id}']")
    await page.wait_for_load_state()
    row = f"#delivery-{failed.id}"
    assert "已放弃" in await page.text_content(f"{row} .delivery-status")
    await page.fill(f"{row} input[name=reason]", "合作方已恢复服务")
    await page.click(f"{row} button[type=submit]")
    await page.wait_for_load_state()
    assert "已重新排队" in await page.text_content("#flash")
    again = await OutboxMessage.filter(kind=notify.KIND, id__gt=failed.id).order_by("-id").first()
    assert again.payload["redelivery_of"] == failed.id
    assert "待投递" in await page.text_content(f"#delivery-{again.id} .delivery-status")
    await deliver(ctx, [again.id])  # the outbox worker's turn
    assert (await OutboxMessage.get(id=again.id)).status == OutboxStatus.SENT
    await page.reload()
    assert "已送达" in await page.text_content(f"#delivery-{again.id} .delivery-status")
    assert [n["event_id"] for n in await received(client, partner.app_id)] == [failed.payload["event"]["event_id"]]
