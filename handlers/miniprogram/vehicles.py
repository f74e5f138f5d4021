"""The user's vehicles (plate and colour), which ETC cards are bound for."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty

from core.validators import PLATE_COLORS, PLATE_RE
from handlers.spec import Body, Out, Response, answer, checked_string, id_param, operation
from services.etc import vehicles
from services.etc.vehicles import (
    PlateColorMismatch,
    PlateInvalid,
    VehicleBound,
    VehicleLimitReached,
    VehicleNotFound,
)

bp = Blueprint("mp_vehicles")

PlateColor = Literal[PLATE_COLORS]  # type: ignore[valid-type]
VEHICLE_ID = id_param(VehicleNotFound, "the vehicle's id")


class VehicleBody(Body):
    plate_number: checked_string(pattern=PLATE_RE.pattern, min_length=7, max_length=8) = Field(
        description="GA 36-2018, without spaces or dots: 7 characters (`京A12345`, `粤Z1234港`), or 8 for a new-energy "
        "plate (`沪AD12345` small car, `粤B12345D` large vehicle); never the letters I or O (422 PLATE_INVALID)")
    plate_color: PlateColor = Field(description="the plate's colour: a new-energy plate is `gradient_green` (small car) "
                                    "or `yellow_green` (large vehicle), and no other plate is green "
                                    "(422 PLATE_COLOR_MISMATCH)")


class VehicleOut(Out):
    id: int
    plate_number: str
    plate_color: PlateColor
    created_at: datetime


class VehiclesOut(Out):
    vehicles: list[VehicleOut]


@bp.post("/vehicles")
@operation(
    summary="Register a vehicle (or get the registration of the same car)",
    tag="etc",
    auth=True,
    body=VehicleBody,
    responses={200: Response(VehicleOut, description="already registered"),
               201: Response(VehicleOut, description="registered now")},
    errors=(PlateInvalid, PlateColorMismatch, VehicleLimitReached),
)
async def register_vehicle(request: Request, body: VehicleBody) -> HTTPResponse:
    vehicle, created = await vehicles.register(request.ctx.user_id, body.plate_number, body.plate_color)
    return answer(VehicleOut.model_validate(vehicle), status=201 if created else 200)


@bp.get("/vehicles")
@operation(summary="The user's vehicles", tag="etc", auth=True, responses={200: Response(VehiclesOut)})
async def list_vehicles(request: Request) -> HTTPResponse:
    return answer(VehiclesOut(vehicles=await vehicles.of_user(request.ctx.user_id)))


@bp.get("/vehicles/<vehicle_id:int>")
@operation(summary="A vehicle", tag="etc", auth=True, path={"vehicle_id": VEHICLE_ID},
           responses={200: Response(VehicleOut)})
async def get_vehicle(request: Request, vehicle_id: int) -> HTTPResponse:
    return answer(VehicleOut.model_validate(await vehicles.owned(request.ctx.user_id, vehicle_id)))


@bp.delete("/vehicles/<vehicle_id:int>")
@operation(
    summary="Remove a vehicle",
    description="Refused while an ETC card is bound for it (409 VEHICLE_BOUND): unbind first.",
    tag="etc",
    auth=True,
    path={"vehicle_id": VEHICLE_ID},
    responses={204: Response(description="removed")},
    errors=(VehicleBound,),
)
async def remove_vehicle(request: Request, vehicle_id: int) -> HTTPResponse:
    await vehicles.remove(request.ctx.user_id, vehicle_id)
    return empty(status=204)
