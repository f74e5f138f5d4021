"""A loss report tells the holder (issue 22): "账户挂失通知" is written to the outbox in the report's
transaction, only when the report is new (a repeat while it is in force sends nothing), delivered to a
holder who accepted the template and given up at once (43101) for one who did not."""

from __future__ import annotations

import asyncio

from core.clock import CHINA_TZ
from models.accounts import AccountRestriction
from models.infra import OutboxMessage, OutboxStatus
from services import outbox
from services.notifications import outbox_handlers
from tests.account_helpers import open_account


def loss_report(account_id: int) -> str:
    return f"/api/v1/accounts/{account_id}/loss-report"


async def notices_to(openid: str, template_id: str) -> list[OutboxMessage]:
    return [m for m in await OutboxMessage.filter(kind="subscribe_message").order_by("id")
            if m.payload["touser"] == openid and m.payload["template_id"] == template_id]


async def deliver(ctx, settings, message: OutboxMessage) -> OutboxMessage:
    """What the worker does with it (twice: a second pass finds it final and sends nothing more)."""
    for _ in range(2):
        if await outbox.claim(message.id, "test", 60):
            await outbox._attempt(await OutboxMessage.get(id=message.id), outbox_handlers(ctx),
                                  max_attempts=settings.outbox_max_attempts)
    return await OutboxMessage.get(id=message.id)


async def sent_to(client, openid: str, template_id: str) -> list[dict]:
    sent = (await client.get("/sandbox/control/subscribe-messages", params={"touser": openid})).json()["messages"]
    return [m for m in sent if m["template_id"] == template_id]


async def test_a_loss_report_sends_one_notice_and_a_repeat_none(client, sandbox, ctx, settings):
    template = settings.loss_reported_template_id
    user, _, account = await open_account(client, sandbox)
    # Given a report, then repeats of it (one after the other, and at once)
    assert (await client.post(loss_report(account["id"]), headers=user.headers)).status_code == 201
    assert (await client.post(loss_report(account["id"]), headers=user.headers)).status_code == 200
    repeats = await asyncio.gather(*(client.post(loss_report(account["id"]), headers=user.headers) for _ in range(3)))
    assert {r.status_code for r in repeats} == {200}
    # Then one notice, about this account, at the time of the report
    [notice] = await notices_to(user.openid, template)
    report = await AccountRestriction.get(account_id=account["id"], code="LOSS_REPORTED")
    assert notice.payload["page"] == f"pages/account/account?id={account['id']}"
    assert notice.payload["data"] == {
        "thing1": {"value": "个人Ⅱ类电子账户"},
        "character_string2": {"value": account["number_masked"]},
        "time3": {"value": report.created_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")},
        "thing4": {"value": "解除挂失需本人人脸核验"},
    }


async def test_the_emulator_receives_the_notice_once(client, sandbox, ctx, settings):
    template = settings.loss_reported_template_id
    user, _, account = await open_account(client, sandbox)
    await sandbox.subscribe(user.openid, template, times=2)  # room for two: only one may be used
    assert (await client.post(loss_report(account["id"]), headers=user.headers)).status_code == 201
    assert (await client.post(loss_report(account["id"]), headers=user.headers)).status_code == 200
    [notice] = await notices_to(user.openid, template)
    assert (await deliver(ctx, settings, notice)).status == OutboxStatus.SENT
    assert len(await sent_to(client, user.openid, template)) == 1


async def test_a_holder_without_the_subscription_is_not_sent_it(client, sandbox, ctx, settings):
    template = settings.loss_reported_template_id
    user, _, account = await open_account(client, sandbox)
    assert (await client.post(loss_report(account["id"]), headers=user.headers)).status_code == 201
    [notice] = await notices_to(user.openid, template)
    refused = await deliver(ctx, settings, notice)
    assert (refused.status, refused.last_error) == (OutboxStatus.GAVE_UP, "permanent: errcode 43101")
    assert await sent_to(client, user.openid, template) == []


async def test_a_new_report_after_lifting_is_a_new_notice(client, sandbox, ctx, settings):
    from models.identity import AttemptCounter
    from tests.contract_helpers import fresh_face

    template = settings.loss_reported_template_id
    user, _, account = await open_account(client, sandbox)
    assert (await client.post(loss_report(account["id"]), headers=user.headers)).status_code == 201
    await AttemptCounter.all().delete()  # opening took some of the day's face attempts
    lifted = await client.request("DELETE", loss_report(account["id"]), headers=user.headers,
                                  json={"verify_id": await fresh_face(client, sandbox, user)})
    assert lifted.status_code == 200, lifted.text
    assert (await client.post(loss_report(account["id"]), headers=user.headers)).status_code == 201
    assert len(await notices_to(user.openid, template)) == 2
