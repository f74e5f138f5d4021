"""The holder hears of each partner debit through a subscribe message written to the outbox with the
debit: "扣款成功通知" once per booked debit, "欠费提醒" once when a debit is left in arrears (not again
for a retried or concurrent duplicate of that debit), delivered to a user who accepted the template, and
given up at once (43101) for one who did not."""

from __future__ import annotations

import asyncio

from models.infra import OutboxMessage, OutboxStatus
from services import outbox
from services.notifications import outbox_handlers
from tests.partner_helpers import bound_car, call, debit_body, new_partner

DEBITS = "/open/v1/debits"


async def notices_to(openid: str, template_id: str) -> list[OutboxMessage]:
    return [m for m in await OutboxMessage.filter(kind="subscribe_message").order_by("id")
            if m.payload["touser"] == openid and m.payload["template_id"] == template_id]


async def test_a_booked_debit_sends_one_debit_notice(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 1_500)
    assert (await call(client, partner, "POST", DEBITS, body)).status_code == 201
    assert (await call(client, partner, "POST", DEBITS, body)).status_code == 201  # a retry: replayed
    [notice] = await notices_to(car.user.openid, ctx.settings.debit_template_id)
    data = notice.payload["data"]
    assert data["amount1"] == {"value": "15.00元"} and data["thing2"] == {"value": "ETC通行费"}
    assert len(data["character_string4"]["value"]) == 4  # the account's last four digits, nothing more
    assert notice.payload["page"] == f"pages/account/account?id={car.account['id']}"
    # a second debit is a second notice
    assert (await call(client, partner, "POST", DEBITS, debit_body(car, 200))).status_code == 201
    assert len(await notices_to(car.user.openid, ctx.settings.debit_template_id)) == 2
    assert not await notices_to(car.user.openid, ctx.settings.arrears_template_id)


async def test_a_debit_that_becomes_arrears_sends_the_arrears_notice_once(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=1_000)
    body = debit_body(car, 1_200)
    answers = await asyncio.gather(*(call(client, partner, "POST", DEBITS, body) for _ in range(5)))
    assert {a.json()["error"]["code"] for a in answers} == {"INSUFFICIENT_FUNDS"}, [a.text for a in answers]
    again = await call(client, partner, "POST", DEBITS, body)  # the partner retries later: the same refusal
    assert again.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    [notice] = await notices_to(car.user.openid, ctx.settings.arrears_template_id)
    assert notice.payload["data"]["amount1"] == {"value": "12.00元"}
    assert notice.payload["page"] == f"pages/etc/pay/pay?binding_id={car.binding['id']}"
    assert not await notices_to(car.user.openid, ctx.settings.debit_template_id)  # nothing was debited


async def test_the_notices_reach_a_subscribed_user_once_and_not_an_unsubscribed_one(client, sandbox, ctx, settings):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=1_000)
    await sandbox.subscribe(car.user.openid, ctx.settings.arrears_template_id, times=2)
    assert (await call(client, partner, "POST", DEBITS, debit_body(car, 500))).status_code == 201  # not subscribed
    owed = debit_body(car, 1_200)
    for _ in range(2):
        assert (await call(client, partner, "POST", DEBITS, owed)).json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    [debit_notice] = await notices_to(car.user.openid, ctx.settings.debit_template_id)
    [arrears_notice] = await notices_to(car.user.openid, ctx.settings.arrears_template_id)
    handlers = outbox_handlers(ctx)
    for message in (debit_notice, arrears_notice):
        for _ in range(2):  # what two passes of the worker would do with it
            if await outbox.claim(message.id, "test", 60):
                await outbox._attempt(await OutboxMessage.get(id=message.id), handlers,
                                      max_attempts=settings.outbox_max_attempts)
    assert (await OutboxMessage.get(id=arrears_notice.id)).status == OutboxStatus.SENT
    refused = await OutboxMessage.get(id=debit_notice.id)
    assert (refused.status, refused.last_error) == (OutboxStatus.GAVE_UP, "permanent: errcode 43101")
    sent = (await client.get("/sandbox/control/subscribe-messages",
                             params={"touser": car.user.openid})).json()["messages"]
    assert [m["template_id"] for m in sent] == [ctx.settings.arrears_template_id]  # once, though two were allowed
