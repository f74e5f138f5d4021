"""ETC-card bindings: bind a car's ETC card to a Class II account, sign the auto-debit authorisation,
and see what partners debited."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from core.validators import ETC_CARD_RE, PLATE_COLORS
from handlers.common import client, services
from handlers.spec import Body, Id, Out, Query, Response, answer, checked_string, id_param, operation
from models.enums import BindingStatus, DebitStatus
from services.accounts.ledger import AccountNotFound
from services.etc import bindings, vehicles
from services.etc.bindings import (
    OBU_RE,
    AccountNotEligible,
    AlreadyBound,
    ArrearsOutstanding,
    AuthorisationNotSigned,
    BindingClosed,
    BindingNotActive,
    BindingNotFound,
    EtcCardInvalid,
)
from services.etc.vehicles import VehicleNotFound
from services.identity.errors import IdCardRequired
from services.partners.debits import CATEGORY_SCOPES
from services.risk.engine import RiskBlocked, RiskReview

bp = Blueprint("mp_bindings")

BINDING_ID = id_param(BindingNotFound, "the binding's id")
MAX_PAGE = 50


class BindingBody(Body):
    vehicle_id: Id = Field(description="one of the user's vehicles")
    card_number: checked_string(pattern=ETC_CARD_RE.pattern, min_length=20, max_length=20) = Field(
        description="the ETC user card: 20 digits (card-network number + internal number; 422 ETC_CARD_INVALID)")
    obu_id: str | None = Field(default=None, pattern=OBU_RE, description="the OBU's id, when known")
    account_id: Id = Field(description="one of the user's active Class II accounts, to debit")


class BindingOut(Out):
    id: int
    status: Literal[tuple(s.value for s in BindingStatus)]  # type: ignore[valid-type]
    vehicle_id: int
    account_id: int
    card_number_masked: str
    obu_id: str | None
    plate_number: str
    plate_color: Literal[PLATE_COLORS]  # type: ignore[valid-type]
    arrears_fen: int = Field(description="debits refused for the balance or a limit, still owed")
    authorisation_contract_id: int | None = Field(
        description="the `etc_autodebit` contract to sign (pending), or the signed one")
    created_at: datetime
    expires_at: datetime | None = Field(description="a pending binding ends then unless its authorisation is signed")
    activated_at: datetime | None
    suspended_at: datetime | None
    unbound_at: datetime | None

    @classmethod
    def of(cls, binding: Any, contract_id: int | None = None) -> BindingOut:  # type: ignore[override]
        plate, color = vehicles.plate_parts(binding.plate)
        return super().of(
            binding, card_number_masked=binding.card_masked, plate_number=plate, plate_color=color,
            authorisation_contract_id=contract_id or binding.contract_id,
            expires_at=binding.expires_at if binding.status == BindingStatus.PENDING else None)


class BindingsOut(Out):
    bindings: list[BindingOut]


class DebitsQuery(Query):
    cursor: int | None = Field(default=None, ge=1, le=2**63 - 1, description="`next_cursor` of the previous page")
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)


class BindingDebitOut(Out):
    out_trade_no: str
    category: Literal[tuple(CATEGORY_SCOPES)]  # type: ignore[valid-type]
    status: Literal[tuple(s.value for s in DebitStatus)] = Field(  # type: ignore[valid-type]
        description="`refused`: held or blocked by risk control, neither booked nor owed")
    amount_fen: int
    refunded_fen: int
    merchant: str
    occurred_at: datetime
    booked_at: datetime
    refusal_code: str | None


class BindingDebitsOut(Out):
    debits: list[BindingDebitOut]
    next_cursor: int | None


@bp.post("/etc-bindings")
@operation(
    summary="Bind an ETC card and its car to a Class II account (pending until the authorisation is signed)",
    description="Creates the binding `pending` and the `etc_autodebit` authorisation to sign "
    "(`authorisation_contract_id`; sign it like any contract), then `POST /etc-bindings/{id}/activate`. The same "
    "card, car and account again answer the binding there is (200). A card or a plate bound by anyone is 409 "
    "ALREADY_BOUND; a pending binding whose authorisation is not signed in 24 hours ends and lets them go.",
    tag="etc",
    auth=True,
    body=BindingBody,
    responses={200: Response(BindingOut, description="the binding there was"),
               201: Response(BindingOut, description="a new pending binding")},
    errors=(EtcCardInvalid, AlreadyBound, AccountNotEligible, VehicleNotFound, AccountNotFound, IdCardRequired,
            RiskBlocked, RiskReview),
)
async def create_binding(request: Request, body: BindingBody) -> HTTPResponse:
    binding, contract, created = await bindings.create(
        services(request), request.ctx.user_id, vehicle_id=body.vehicle_id, card_number=body.card_number,
        account_id=body.account_id, obu_id=body.obu_id, client=client(request))
    out = BindingOut.of(binding, contract_id=binding.contract_id or (contract.id if contract else None))
    return answer(out, status=201 if created else 200)


@bp.get("/etc-bindings")
@operation(summary="The user's ETC bindings, newest first", tag="etc", auth=True, responses={200: Response(BindingsOut)})
async def list_bindings(request: Request) -> HTTPResponse:
    return answer(BindingsOut(bindings=[BindingOut.of(b) for b in await bindings.of_user(request.ctx.user_id)]))


@bp.get("/etc-bindings/<binding_id:int>")
@operation(summary="A binding", tag="etc", auth=True, path={"binding_id": BINDING_ID},
           responses={200: Response(BindingOut)})
async def get_binding(request: Request, binding_id: int) -> HTTPResponse:
    return answer(BindingOut.of(await bindings.get(request.ctx.user_id, binding_id)))


@bp.post("/etc-bindings/<binding_id:int>/activate")
@operation(
    summary="Activate a binding whose auto-debit authorisation is signed",
    description="409 AUTHORISATION_NOT_SIGNED until the `etc_autodebit` contract for this binding is signed. A repeat "
    "answers the binding as it is. The ETC issuer is notified.",
    tag="etc", auth=True, path={"binding_id": BINDING_ID}, responses={200: Response(BindingOut)},
    errors=(AuthorisationNotSigned, BindingClosed),
)
async def activate_binding(request: Request, binding_id: int) -> HTTPResponse:
    return answer(BindingOut.of(await bindings.activate(request.ctx.user_id, binding_id)))


@bp.post("/etc-bindings/<binding_id:int>/suspend")
@operation(summary="Pause auto-debit: partners' debits are refused until resumed", tag="etc", auth=True,
           path={"binding_id": BINDING_ID}, responses={200: Response(BindingOut)},
           errors=(BindingNotActive, BindingClosed))
async def suspend_binding(request: Request, binding_id: int) -> HTTPResponse:
    return answer(BindingOut.of(await bindings.suspend(request.ctx.user_id, binding_id)))


@bp.post("/etc-bindings/<binding_id:int>/resume")
@operation(summary="Resume a paused binding", tag="etc", auth=True, path={"binding_id": BINDING_ID},
           responses={200: Response(BindingOut)}, errors=(BindingNotActive, BindingClosed))
async def resume_binding(request: Request, binding_id: int) -> HTTPResponse:
    return answer(BindingOut.of(await bindings.resume(request.ctx.user_id, binding_id)))


@bp.delete("/etc-bindings/<binding_id:int>")
@operation(
    summary="Unbind: end auto-debit for this card and car",
    description="Refused while arrears are owed on the binding (409 ARREARS_OUTSTANDING, the amount in the message). "
    "The card and the plate can be bound again afterwards. The ETC issuer is notified.",
    tag="etc", auth=True, path={"binding_id": BINDING_ID}, responses={200: Response(BindingOut)},
    errors=(ArrearsOutstanding, BindingClosed),
)
async def unbind(request: Request, binding_id: int) -> HTTPResponse:
    return answer(BindingOut.of(await bindings.unbind(request.ctx.user_id, binding_id)))


@bp.get("/etc-bindings/<binding_id:int>/debits")
@operation(summary="What partners debited (or recorded as arrears, or risk control refused) on this binding, newest first", tag="etc",
           auth=True, path={"binding_id": BINDING_ID}, query=DebitsQuery, responses={200: Response(BindingDebitsOut)})
async def binding_debits(request: Request, binding_id: int, query: DebitsQuery) -> HTTPResponse:
    page, next_cursor = await bindings.debits_of(request.ctx.user_id, binding_id, cursor=query.cursor, limit=query.limit)
    return answer(BindingDebitsOut(debits=page, next_cursor=next_cursor))
