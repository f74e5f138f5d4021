"""Signed notifications to partners, over real HTTP to the sandbox's partner emulator (which checks the
signature with its own implementation): delivered when a binding is activated, suspended or unbound,
retried after failures under the same event id and stored once by the partner, given up for a callback
URL that points inside the bank's network, and never sent for a disabled partner."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.clock import utcnow
from integrations.webhooks import AddressRefused, WebhookSender
from models.infra import OutboxAttempt, OutboxMessage, OutboxStatus
from models.partners import Partner
from services import outbox
from services.notifications import outbox_handlers
from services.partners import registry
from tests.partner_helpers import TEST_CARD_NETWORK, bound_car, new_partner


async def emulated_partner(client, ctx, server, *, query: str = "?from=bank"):
    """A partner issuing the test cards' network, whose callback URL is the emulator's, registered there
    with its secret."""
    partner = await new_partner(ctx, card_networks=(TEST_CARD_NETWORK,))
    url = f"{server.url}/sandbox/partner/{partner.app_id}/notify{query}"
    await Partner.filter(app_id=partner.app_id).update(callback_url=url)
    resp = await client.post("/sandbox/control/partners", json={"app_id": partner.app_id, "secret": partner.secret})
    assert resp.status_code == 201, resp.text
    return partner


async def messages_for(partner_id: int) -> list[OutboxMessage]:
    return [m for m in await OutboxMessage.filter(kind="partner_notification").order_by("id")
            if m.payload["partner_id"] == partner_id]


async def deliver_all(ctx, partner_id: int, *, max_attempts: int = 8) -> None:
    """Deliver this partner's due notifications (others left pending by earlier tests are not touched)."""
    for message in await messages_for(partner_id):
        if message.status == OutboxStatus.PENDING:
            await OutboxMessage.filter(id=message.id).update(next_attempt_at=utcnow())
    others = [m.id for m in await OutboxMessage.filter(status=OutboxStatus.PENDING)
              if m.kind != "partner_notification" or m.payload.get("partner_id") != partner_id]
    if others:
        await OutboxMessage.filter(id__in=others).update(next_attempt_at=utcnow() + timedelta(days=1))
    await outbox.deliver_due(outbox_handlers(ctx), holder="test:1", max_attempts=max_attempts)


async def received(client, app_id: str) -> list[dict]:
    resp = await client.get(f"/sandbox/control/partners/{app_id}/notifications")
    assert resp.status_code == 200, resp.text
    return resp.json()["notifications"]


async def deliveries(client, app_id: str) -> list[dict]:
    return (await client.get(f"/sandbox/control/partners/{app_id}/deliveries")).json()["deliveries"]


async def test_binding_events_reach_the_partner_signed(client, sandbox, ctx, server):
    partner = await emulated_partner(client, ctx, server)
    row = await Partner.get(app_id=partner.app_id)
    car = await bound_car(client, sandbox)
    path = f"/api/v1/etc-bindings/{car.binding['id']}"
    await client.post(path + "/suspend", headers=car.user.headers)
    await client.delete(path, headers=car.user.headers)
    await deliver_all(ctx, row.id)
    got = [n for n in await received(client, partner.app_id) if n["data"]["binding_id"] == car.binding["id"]]
    assert [n["type"] for n in got] == ["binding.activated", "binding.suspended", "binding.unbound"]
    assert got[0]["data"] == {"binding_id": car.binding["id"], "card_number_masked": car.binding["card_number_masked"],
                              "plate_number": car.vehicle["plate_number"], "plate_color": car.vehicle["plate_color"],
                              "status": "active"}
    assert car.card_number not in str(got)  # the card number goes out masked
    assert all(d["outcome"] == "accepted" for d in await deliveries(client, partner.app_id))
    assert all(m.status == OutboxStatus.SENT for m in await messages_for(row.id))


async def test_failed_deliveries_are_retried_under_one_event_id_and_stored_once(client, sandbox, ctx, server):
    partner = await emulated_partner(client, ctx, server)
    row = await Partner.get(app_id=partner.app_id)
    await sandbox.fault(f"partner/{partner.app_id}/notify", http_status=503, count=2)
    # and once the partner stores it but its answer is lost: the retry is a duplicate, stored once
    car = await bound_car(client, sandbox)
    for _ in range(3):
        await deliver_all(ctx, row.id)
    [message] = await messages_for(row.id)
    assert message.status == OutboxStatus.SENT and message.attempts == 3
    assert [a.ok for a in await OutboxAttempt.filter(message_id=message.id).order_by("id")] == [False, False, True]
    await sandbox.fault(f"partner/{partner.app_id}/notify", when="after", drop=True)
    await client.post(f"/api/v1/etc-bindings/{car.binding['id']}/suspend", headers=car.user.headers)
    for _ in range(2):
        await deliver_all(ctx, row.id)
    got = await received(client, partner.app_id)
    assert [(n["type"], n["deliveries"]) for n in got] == [("binding.activated", 1), ("binding.suspended", 2)]
    outcomes = [d["outcome"] for d in await deliveries(client, partner.app_id)]
    # the spoiled reply is recorded as a fault, though the event was stored; the retry finds it stored
    assert outcomes == ["fault", "fault", "accepted", "fault", "duplicate"]


async def test_a_callback_inside_the_banks_network_is_never_called(client, sandbox, ctx):
    partner = await new_partner(ctx, callback_url="http://10.20.30.40/notify", card_networks=(TEST_CARD_NETWORK,))
    row = await Partner.get(app_id=partner.app_id)
    await bound_car(client, sandbox)
    await deliver_all(ctx, row.id)
    [message] = await messages_for(row.id)
    assert message.status == OutboxStatus.GAVE_UP and message.attempts == 1
    assert "10.20.30.40" in message.last_error


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.0.0.8", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                  "::1", "fe80::1", "::ffff:10.0.0.1", "0.0.0.0", "fd00::1"])
async def test_private_loopback_and_link_local_addresses_are_refused(host):
    import httpx

    async with httpx.AsyncClient() as http:
        with pytest.raises(AddressRefused):
            await WebhookSender(http, allow_loopback=False).resolve(host, 443)


async def test_the_sandbox_may_call_loopback_only():
    import httpx

    async with httpx.AsyncClient() as http:
        sender = WebhookSender(http, allow_loopback=True)
        assert await sender.resolve("127.0.0.1", 80) == "127.0.0.1"
        with pytest.raises(AddressRefused):
            await sender.resolve("10.0.0.8", 80)
        assert await sender.resolve("8.8.8.8", 443) == "8.8.8.8"  # a public address (not contacted)


def test_production_callback_urls_are_https():
    from core.errors import ValidationFailed

    assert registry.check_callback_url("https://partner.example.com/hook", production=True)
    for url in ("http://partner.example.com/hook", "ftp://x/y", "https://user:pw@partner.example.com/", "//x"):
        with pytest.raises(ValidationFailed):
            registry.check_callback_url(url, production=True)
    assert registry.check_callback_url("http://127.0.0.1:8000/sandbox/partner/x/notify", production=False)


async def test_a_disabled_partner_is_not_notified(client, sandbox, ctx, server):
    partner = await emulated_partner(client, ctx, server)
    row = await Partner.get(app_id=partner.app_id)
    await bound_car(client, sandbox)
    await registry.disable(partner.app_id)
    await deliver_all(ctx, row.id)
    [message] = await messages_for(row.id)
    assert message.status == OutboxStatus.GAVE_UP and "disabled" in message.last_error
    assert await received(client, partner.app_id) == []


async def test_a_binding_event_goes_only_to_the_issuer_of_that_card(client, sandbox, ctx, server):
    issuer = await emulated_partner(client, ctx, server)
    url = f"{server.url}/sandbox/partner/nobody/notify"
    car_park = await new_partner(ctx, scopes=("parking:debit", "etc:read"), callback_url=url)
    other_issuer = await new_partner(ctx, scopes=("etc:debit",), callback_url=url, card_networks=("3201",))
    car = await bound_car(client, sandbox)
    await client.post(f"/api/v1/etc-bindings/{car.binding['id']}/suspend", headers=car.user.headers)
    for partner in (car_park, other_issuer):
        row = await Partner.get(app_id=partner.app_id)
        assert await messages_for(row.id) == []  # never written: nothing to deliver, nothing to leak
    row = await Partner.get(app_id=issuer.app_id)
    await deliver_all(ctx, row.id)
    got = [n["type"] for n in await received(client, issuer.app_id) if n["data"]["binding_id"] == car.binding["id"]]
    assert got == ["binding.activated", "binding.suspended"]


async def test_card_networks_are_four_digit_numbers(ctx):
    from core.errors import ValidationFailed

    for bad in (["11"], ["11011"], ["ABCD"], ["１１０１"]):
        with pytest.raises(ValidationFailed):
            await new_partner(ctx, card_networks=tuple(bad))
