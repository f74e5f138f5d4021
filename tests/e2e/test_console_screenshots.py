"""The README's screenshots of the staff console's main pages, taken in a real browser on a seeded bank.
Each run renders every page (a page that fails fails the test); ``UPDATE_SCREENSHOTS=1`` writes them to
``docs/screenshots/`` for the README."""

from __future__ import annotations

import os
from pathlib import Path

from models.accounts import Account
from tests.account_helpers import open_account, top_up
from tests.browser import log_in, needs_browser, page  # noqa: F401 (fixture)
from tests.helpers import rules_in_force
from tests.partner_helpers import new_partner
from tests.staff_helpers import new_staff

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@needs_browser
async def test_the_main_console_pages_render_for_the_readme(ctx, client, sandbox, page, tmp_path):
    user, _, account = await open_account(client, sandbox, card_balance_fen=100_000)
    await rules_in_force([{"id": "large-top-up", "type": "amount", "status": "active", "action": "review",
                           "applies_to": ["top_up"], "max_amount_fen": 500}])
    try:
        await top_up(client, user, account["id"], 900)
    finally:
        await rules_in_force([])
    await new_partner(ctx)
    user_id = (await Account.get(id=account["id"])).user_id
    admin = await new_staff(ctx, "admin")
    await log_in(page, admin)
    await page.set_viewport_size({"width": 1280, "height": 900})
    out = SHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    for name, path in (("dashboard", "/admin/"), ("customer", f"/admin/customers/{user_id}"),
                       ("queues", "/admin/queues"), ("partners", "/admin/partners"), ("risk", "/admin/risk"),
                       ("audit", "/admin/audit")):
        answer = await page.goto(path)
        assert answer.status == 200, (path, answer.status)
        await page.screenshot(path=str(out / f"{name}.png"), full_page=False)
        assert (out / f"{name}.png").stat().st_size > 10_000, name
