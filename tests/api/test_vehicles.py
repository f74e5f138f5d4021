"""Vehicles over the API: GA 36 plates with their stable codes, colours that fit the plate, one
registration per car and user (also under concurrency), the per-user cap, other users' vehicles."""

from __future__ import annotations

import asyncio

import pytest

from services.etc.vehicles import MAX_VEHICLES
from tests.helpers import assert_error, login_new_user


async def register(client, user, plate: str, color: str = "blue"):
    return await client.post("/api/v1/vehicles", json={"plate_number": plate, "plate_color": color}, headers=user.headers)


async def test_register_list_get_and_remove(client, user):
    resp = await register(client, user, "京A12345")
    assert resp.status_code == 201, resp.text
    car = resp.json()
    assert car["plate_number"] == "京A12345" and car["plate_color"] == "blue"
    again = await register(client, user, "京A12345")
    assert again.status_code == 200 and again.json()["id"] == car["id"]
    green = (await register(client, user, "沪AD12345", "gradient_green")).json()
    listed = (await client.get("/api/v1/vehicles", headers=user.headers)).json()["vehicles"]
    assert [v["id"] for v in listed] == [car["id"], green["id"]]
    assert (await client.get(f"/api/v1/vehicles/{car['id']}", headers=user.headers)).json() == car
    assert (await client.delete(f"/api/v1/vehicles/{car['id']}", headers=user.headers)).status_code == 204
    assert_error(await client.get(f"/api/v1/vehicles/{car['id']}", headers=user.headers), 404, "VEHICLE_NOT_FOUND")
    assert_error(await client.delete(f"/api/v1/vehicles/{car['id']}", headers=user.headers), 404, "VEHICLE_NOT_FOUND")
    # removed, the same car can be registered again: a new registration
    back = await register(client, user, "京A12345")
    assert back.status_code == 201 and back.json()["id"] != car["id"]


@pytest.mark.parametrize("plate", ["京AI2345", "京O12345", "台A12345", "粤B D12345", "京a12345", "京A1234", "京A·12345"])
async def test_malformed_plates_are_plate_invalid(client, user, plate):
    assert_error(await register(client, user, plate), 422, "PLATE_INVALID", "plate_number")
    assert (await client.get("/api/v1/vehicles", headers=user.headers)).json() == {"vehicles": []}


@pytest.mark.parametrize(("plate", "color"), [("沪AD12345", "blue"), ("粤B12345D", "gradient_green"),
                                              ("京A12345", "gradient_green"), ("粤BD12345", "yellow_green")])
async def test_the_colour_must_fit_the_plate(client, user, plate, color):
    assert_error(await register(client, user, plate, color), 422, "PLATE_COLOR_MISMATCH", "plate_color")


@pytest.mark.parametrize("color", ["green", "Blue", 1, None, ""])
async def test_the_colour_is_one_of_the_enum(client, user, color):
    assert_error(await register(client, user, "京A12345", color), 422, "VALIDATION_ERROR", "plate_color")


async def test_concurrent_registrations_of_one_car_make_one(client, user):
    answers = await asyncio.gather(*(register(client, user, "粤Z1234港", "black") for _ in range(8)))
    assert sorted(a.status_code for a in answers).count(201) == 1 and {a.status_code for a in answers} <= {200, 201}
    assert len({a.json()["id"] for a in answers}) == 1


async def test_at_most_max_vehicles_at_a_time(client, user):
    for i in range(MAX_VEHICLES):
        assert (await register(client, user, f"京A{i:05d}")).status_code == 201
    assert_error(await register(client, user, "京B00000"), 409, "VEHICLE_LIMIT_REACHED")
    first = (await client.get("/api/v1/vehicles", headers=user.headers)).json()["vehicles"][0]
    await client.delete(f"/api/v1/vehicles/{first['id']}", headers=user.headers)
    assert (await register(client, user, "京B00000")).status_code == 201


async def test_other_users_vehicles_are_not_found(client, sandbox, user):
    car = (await register(client, user, "川A1234学")).json()
    other = await login_new_user(client, sandbox)
    assert_error(await client.get(f"/api/v1/vehicles/{car['id']}", headers=other.headers), 404, "VEHICLE_NOT_FOUND")
    assert_error(await client.delete(f"/api/v1/vehicles/{car['id']}", headers=other.headers), 404, "VEHICLE_NOT_FOUND")
    assert (await client.get("/api/v1/vehicles", headers=other.headers)).json() == {"vehicles": []}
    # the same car may be registered by someone else too (a family car); binding its ETC card is what is exclusive
    assert (await register(client, other, "川A1234学")).status_code == 201


@pytest.mark.parametrize("plate", ["京A12345\n", "沪AD12345\n", "京A12345 "])
async def test_a_trailing_newline_is_no_plate(client, user, plate):
    """Found by the mini-program's helper: Python's ``$`` also matches before a final newline."""
    assert_error(await register(client, user, plate, "gradient_green" if len(plate) == 9 else "blue"), 422,
                 "PLATE_INVALID", "plate_number")
