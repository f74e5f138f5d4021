"""ETC-card bindings over the API: pending until the auto-debit authorisation is signed, one binding per
card and per plate across all users (also when two users race), suspension, unbinding refused while
arrears are owed, expiry of a pending binding, other users' bindings, and the audit trail."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.clock import utcnow
from models.audit import AuditEvent
from models.etc import EtcBinding
from models.infra import OutboxMessage
from tests.account_helpers import open_account
from tests.helpers import assert_error
from tests.partner_helpers import (
    TEST_CARD_NETWORK,
    bound_car,
    etc_card,
    new_partner,
    register_vehicle,
    sign_authorisation,
    start_binding,
)


async def test_a_binding_activates_only_once_its_authorisation_is_signed(client, sandbox, ctx):
    partner = await new_partner(ctx, callback_url="http://127.0.0.1:9/notify", card_networks=(TEST_CARD_NETWORK,))
    user, _, account = await open_account(client, sandbox)
    vehicle = await register_vehicle(client, user, "粤BD12345", "gradient_green")
    card = etc_card()
    resp = await start_binding(client, user, vehicle["id"], account["id"], card)
    assert resp.status_code == 201, resp.text
    binding = resp.json()
    assert binding["status"] == "pending" and binding["expires_at"] and binding["arrears_fen"] == 0
    assert binding["card_number_masked"] == card[:6] + "*" * 10 + card[-4:]
    assert (binding["plate_number"], binding["plate_color"]) == ("粤BD12345", "gradient_green")
    row = await EtcBinding.get(id=binding["id"])
    assert card not in row.card_enc  # the card number is encrypted at rest
    contract = (await client.get(f"/api/v1/contracts/{binding['authorisation_contract_id']}", headers=user.headers)).json()
    assert contract["template"] == "etc_autodebit" and contract["status"] == "draft"
    again = await start_binding(client, user, vehicle["id"], account["id"], card)
    assert again.status_code == 200 and again.json()["id"] == binding["id"]  # a double tap makes one

    path = f"/api/v1/etc-bindings/{binding['id']}"
    assert_error(await client.post(path + "/activate", headers=user.headers), 409, "AUTHORISATION_NOT_SIGNED")
    await sign_authorisation(client, sandbox, user, binding["authorisation_contract_id"])
    active = await client.post(path + "/activate", headers=user.headers)
    assert active.status_code == 200, active.text
    assert active.json()["status"] == "active" and active.json()["activated_at"] and active.json()["expires_at"] is None
    assert active.json()["authorisation_contract_id"] == binding["authorisation_contract_id"]
    assert (await client.post(path + "/activate", headers=user.headers)).json()["status"] == "active"  # a repeat
    events = await AuditEvent.filter(entity_type="etc_binding", entity_id=str(binding["id"])).order_by("id")
    assert [e.action for e in events] == ["etc_binding.active"]
    # the ETC issuer hears of it, once
    mine = (await partner_row(partner.app_id)).id
    told = [m for m in await OutboxMessage.filter(kind="partner_notification")
            if m.payload["event"]["data"]["binding_id"] == binding["id"] and m.payload["partner_id"] == mine]
    assert [m.payload["event"]["type"] for m in told] == ["binding.activated"]
    listed = (await client.get("/api/v1/etc-bindings", headers=user.headers)).json()["bindings"]
    assert [b["id"] for b in listed] == [binding["id"]]


async def partner_row(app_id: str):
    from models.partners import Partner

    return await Partner.get(app_id=app_id)


async def test_one_binding_per_card_and_per_plate_across_users(client, sandbox):
    first = await bound_car(client, sandbox)
    other, _, account = await open_account(client, sandbox)
    car = await register_vehicle(client, other)
    assert_error(await start_binding(client, other, car["id"], account["id"], first.card_number), 409, "ALREADY_BOUND")
    same_plate = await register_vehicle(client, other, first.vehicle["plate_number"], first.vehicle["plate_color"])
    assert_error(await start_binding(client, other, same_plate["id"], account["id"], etc_card()), 409, "ALREADY_BOUND")
    # unbound, both are free again
    assert (await client.delete(f"/api/v1/etc-bindings/{first.binding['id']}", headers=first.user.headers)).json()[
        "status"] == "unbound"
    assert (await start_binding(client, other, car["id"], account["id"], first.card_number)).status_code == 201


async def test_two_users_binding_one_card_at_once_make_one_binding(client, sandbox):
    users = [await open_account(client, sandbox) for _ in range(2)]
    cars = [await register_vehicle(client, u) for u, _, _ in users]
    card = etc_card()
    answers = await asyncio.gather(*(start_binding(client, u, car["id"], a["id"], card)
                                     for (u, _, a), car in zip(users, cars)))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert await EtcBinding.filter(card_key__isnull=False, card_index=(await EtcBinding.get(
        id=next(a.json()["id"] for a in answers if a.status_code == 201))).card_index).count() == 1


async def test_two_users_binding_one_plate_at_once_make_one_binding(client, sandbox):
    users = [await open_account(client, sandbox) for _ in range(2)]
    plate = "苏E1234挂"
    cars = [await register_vehicle(client, u, plate, "yellow") for u, _, _ in users]
    answers = await asyncio.gather(*(start_binding(client, u, car["id"], a["id"], etc_card())
                                     for (u, _, a), car in zip(users, cars)))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert await EtcBinding.filter(plate_key=f"{plate}_yellow").count() == 1


async def test_a_pending_binding_that_expires_lets_go_of_its_card(client, sandbox):
    user, _, account = await open_account(client, sandbox)
    car = await register_vehicle(client, user)
    card = etc_card()
    pending = (await start_binding(client, user, car["id"], account["id"], card)).json()
    other, _, other_account = await open_account(client, sandbox)
    other_car = await register_vehicle(client, other)
    assert_error(await start_binding(client, other, other_car["id"], other_account["id"], card), 409, "ALREADY_BOUND")
    await EtcBinding.filter(id=pending["id"]).update(expires_at=utcnow() - timedelta(seconds=1))
    taken = await start_binding(client, other, other_car["id"], other_account["id"], card)
    assert taken.status_code == 201, taken.text
    gone = (await client.get(f"/api/v1/etc-bindings/{pending['id']}", headers=user.headers)).json()
    assert gone["status"] == "unbound"
    assert_error(await client.post(f"/api/v1/etc-bindings/{pending['id']}/activate", headers=user.headers), 409,
                 "BINDING_CLOSED")


async def test_unbinding_is_refused_while_arrears_are_owed(client, sandbox):
    car = await bound_car(client, sandbox)
    await EtcBinding.filter(id=car.binding["id"]).update(arrears_fen=1_234)
    path = f"/api/v1/etc-bindings/{car.binding['id']}"
    err = assert_error(await client.delete(path, headers=car.user.headers), 409, "ARREARS_OUTSTANDING")
    assert "¥12.34" in err["message"]
    assert (await client.get(path, headers=car.user.headers)).json()["status"] == "active"
    await EtcBinding.filter(id=car.binding["id"]).update(arrears_fen=0)
    assert (await client.delete(path, headers=car.user.headers)).json()["status"] == "unbound"
    assert_error(await client.delete(path, headers=car.user.headers), 409, "BINDING_CLOSED")


async def test_suspend_and_resume(client, sandbox):
    car = await bound_car(client, sandbox)
    path = f"/api/v1/etc-bindings/{car.binding['id']}"
    paused = await client.post(path + "/suspend", headers=car.user.headers)
    assert paused.json()["status"] == "suspended" and paused.json()["suspended_at"]
    assert (await client.post(path + "/resume", headers=car.user.headers)).json()["status"] == "active"
    events = await AuditEvent.filter(entity_type="etc_binding", entity_id=str(car.binding["id"])).order_by("id")
    assert [e.action for e in events] == ["etc_binding.active", "etc_binding.suspended", "etc_binding.active"]


async def test_binding_an_active_or_suspended_card_again_answers_that_binding(client, sandbox):
    """The same card, car and account again, once signed: 200 with the binding and its signed authorisation,
    nothing new to sign (it used to be a 409 SUBJECT_CLOSED from preparing a second authorisation)."""
    car = await bound_car(client, sandbox)
    for state in ("active", "suspended"):
        if state == "suspended":
            await client.post(f"/api/v1/etc-bindings/{car.binding['id']}/suspend", headers=car.user.headers)
        again = await start_binding(client, car.user, car.vehicle["id"], car.account["id"], car.card_number)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == car.binding["id"] and again.json()["status"] == state
        assert again.json()["authorisation_contract_id"] == car.binding["authorisation_contract_id"]


async def test_a_pending_binding_cannot_be_suspended(client, sandbox):
    user, _, account = await open_account(client, sandbox)
    car = await register_vehicle(client, user)
    pending = (await start_binding(client, user, car["id"], account["id"], etc_card())).json()
    assert_error(await client.post(f"/api/v1/etc-bindings/{pending['id']}/suspend", headers=user.headers), 409,
                 "BINDING_NOT_ACTIVE")


async def test_a_bound_vehicle_cannot_be_removed(client, sandbox):
    car = await bound_car(client, sandbox)
    assert_error(await client.delete(f"/api/v1/vehicles/{car.vehicle['id']}", headers=car.user.headers), 409,
                 "VEHICLE_BOUND")


@pytest.mark.parametrize("card", ["1234", "1" * 19, "1" * 21, "１" * 20, "11011234567890abcdef"])
async def test_the_card_number_is_twenty_digits(client, sandbox, card):
    user, _, account = await open_account(client, sandbox)
    car = await register_vehicle(client, user)
    resp = await start_binding(client, user, car["id"], account["id"], card)
    assert_error(resp, 422, "ETC_CARD_INVALID" if len(card) <= 64 else "VALIDATION_ERROR", "card_number")


async def test_only_an_active_class_ii_account_of_ones_own(client, sandbox):
    owner, _, class_iii = await open_account(client, sandbox, "III")
    car = await register_vehicle(client, owner)
    assert_error(await start_binding(client, owner, car["id"], class_iii["id"], etc_card()), 409, "ACCOUNT_NOT_ELIGIBLE")
    other, _, others_account = await open_account(client, sandbox)
    assert_error(await start_binding(client, owner, car["id"], others_account["id"], etc_card()), 404,
                 "ACCOUNT_NOT_FOUND")
    # someone else's car, with one's own account
    assert_error(await start_binding(client, other, car["id"], others_account["id"], etc_card()), 404,
                 "VEHICLE_NOT_FOUND")


async def test_other_users_bindings_are_not_found(client, sandbox, user):
    car = await bound_car(client, sandbox)
    path = f"/api/v1/etc-bindings/{car.binding['id']}"
    for method, suffix in (("GET", ""), ("POST", "/activate"), ("POST", "/suspend"), ("DELETE", ""),
                           ("GET", "/debits")):
        assert_error(await client.request(method, path + suffix, headers=user.headers), 404, "BINDING_NOT_FOUND")


async def test_a_card_number_with_a_trailing_newline_is_refused(client, sandbox):
    """``$`` matches before a final newline: ``card\\n`` would have been a second binding of one card."""
    user, _, account = await open_account(client, sandbox)
    car = await register_vehicle(client, user)
    assert_error(await start_binding(client, user, car["id"], account["id"], etc_card() + "\n"), 422,
                 "ETC_CARD_INVALID", "card_number")
