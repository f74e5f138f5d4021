"""A user's vehicles: plate and colour, validated per GA 36-2018, at most ``MAX_VEHICLES`` at a time.

Registering the same car again returns the registration there is. A vehicle with a binding that is not
unbound cannot be removed (unbind first: partners may still be debiting for it)."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from core.clock import utcnow
from core.errors import AppError, Conflict, NotFound
from core.validators import PLATE_COLORS, plate_color_fits, plate_ok
from models.etc import BindingStatus, EtcBinding, Vehicle

MAX_VEHICLES = 10


class PlateInvalid(AppError):
    status, code, message = 422, "PLATE_INVALID", "车牌号码格式不正确"


class PlateColorMismatch(AppError):
    status, code, message = 422, "PLATE_COLOR_MISMATCH", "车牌颜色与车牌号码不符（新能源车牌为绿色）"


class VehicleNotFound(NotFound):
    code, message = "VEHICLE_NOT_FOUND", "车辆不存在"


class VehicleLimitReached(Conflict):
    code, message = "VEHICLE_LIMIT_REACHED", f"最多登记 {MAX_VEHICLES} 辆车"


class VehicleBound(Conflict):
    code, message = "VEHICLE_BOUND", "该车辆已绑定 ETC 卡，请先解绑"


def plate_key(plate_number: str, plate_color: str) -> str:
    """How ETC keys a vehicle: ``<plate>_<colour>``."""
    return f"{plate_number}_{plate_color}"


def plate_parts(key: str) -> tuple[str, str]:
    """``plate_key``'s inverse: ``(plate_number, plate_color)`` (a plate never contains ``_``)."""
    plate, _, color = key.partition("_")
    return plate, color


def check_plate(plate_number: str, plate_color: str) -> None:
    if not plate_ok(plate_number):
        raise PlateInvalid(field="plate_number")
    if plate_color not in PLATE_COLORS:
        raise PlateInvalid("车牌颜色不正确", field="plate_color")
    if not plate_color_fits(plate_number, plate_color):
        raise PlateColorMismatch(field="plate_color")


async def register(user_id: int, plate_number: str, plate_color: str) -> tuple[Vehicle, bool]:
    """``(vehicle, created)``: the user's registration of this car, new or the one there was."""
    check_plate(plate_number, plate_color)
    key = f"{user_id}:{plate_key(plate_number, plate_color)}"
    existing = await Vehicle.get_or_none(active_key=key)
    if existing is not None:
        return existing, False
    if await Vehicle.filter(user_id=user_id, removed_at__isnull=True).count() >= MAX_VEHICLES:
        raise VehicleLimitReached()
    try:
        return await Vehicle.create(user_id=user_id, plate_number=plate_number, plate_color=plate_color,
                                    active_key=key), True
    except IntegrityError:  # the same car registered by a concurrent request
        return await Vehicle.get(active_key=key), False


async def owned(user_id: int, vehicle_id: int) -> Vehicle:
    vehicle = await Vehicle.get_or_none(id=vehicle_id, user_id=user_id, removed_at__isnull=True)
    if vehicle is None:
        raise VehicleNotFound()
    return vehicle


async def of_user(user_id: int) -> list[Vehicle]:
    return await Vehicle.filter(user_id=user_id, removed_at__isnull=True).order_by("id")


async def remove(user_id: int, vehicle_id: int) -> None:
    vehicle = await owned(user_id, vehicle_id)
    if await EtcBinding.filter(vehicle_id=vehicle.id).exclude(status=BindingStatus.UNBOUND).exists():
        raise VehicleBound()
    await Vehicle.filter(id=vehicle.id, removed_at__isnull=True).update(removed_at=utcnow(), active_key=None)

