"""Partner debits of bound accounts, refunds, and the daily statement."""

from __future__ import annotations

import datetime as dt
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from core.clock import utcnow
from core.errors import AppError, ValidationFailed
from core.money import MAX_AMOUNT_FEN
from core.validators import ETC_CARD_RE, PLATE_COLORS, PLATE_RE, STATEMENT_TEXT_PATTERN
from handlers.common import services
from handlers.spec import Body, Out, Query, Response, answer, checked_string, operation, str_param
from models.enums import DebitStatus
from services.accounts.ledger import (
    AccountClosed, AccountRestricted, BalanceCapExceeded, InsufficientFunds, LimitExceeded,
)
from services.risk.engine import RiskBlocked, RiskReview
from services.etc.bindings import BindingNotActive, EtcCardInvalid
from services.etc.vehicles import PlateColorMismatch, PlateInvalid, check_plate, plate_parts
from services.partners import debits
from services.partners.debits import (
    CATEGORY_SCOPES,
    DEBIT_SCOPES,
    READ_SCOPES,
    DebitNotFound,
    DebitNotRefundable,
    OutTradeNoConflict,
    RefundExceedsDebit,
    OutRefundNoConflict,
    VehicleNotBound,
)

bp = Blueprint("open_debits")

NUMBER_PATTERN = r"^[A-Za-z0-9_-]{6,64}$"
Number = Annotated[str, Field(pattern=NUMBER_PATTERN, min_length=6, max_length=64)]
# Free text that ends up in a statement: the rule and its reasons are in core.validators.
TEXT_PATTERN = STATEMENT_TEXT_PATTERN
RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"


RFC3339_RE = re.compile(RFC3339)


def _rfc3339(value: object) -> datetime:
    """Only a JSON string in RFC 3339 with an offset (never a number of seconds); a day that does not exist
    fails."""
    if not isinstance(value, str) or not RFC3339_RE.fullmatch(value):
        raise ValueError("an RFC 3339 date-time with an offset, such as 2026-11-30T08:00:00+08:00")
    return datetime.fromisoformat(value)


OccurredAt = Annotated[datetime, BeforeValidator(_rfc3339),
                       WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339, "maxLength": 35})]
Fen = Field(ge=1, le=MAX_AMOUNT_FEN, description="integer fen")
OUT_TRADE_NO = str_param(64, DebitNotFound, "the partner's number for the debit")
FUTURE_SLACK = timedelta(minutes=5)  # clocks differ: a debit may say it happened a little "later" than now
REFUSALS = {e.code: e for e in (InsufficientFunds, LimitExceeded, RiskBlocked, RiskReview, AccountRestricted,
                                 AccountClosed)}


class VehicleReferenceInvalid(AppError):
    status, code, message = 422, "VEHICLE_REFERENCE_INVALID", "请提供 ETC 卡号，或车牌号码及车牌颜色（二者取一）"


class OccurredAtInvalid(AppError):
    status, code, message = 422, "OCCURRED_AT_INVALID", "交易时间不能晚于当前时间"


class Location(Body):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="latitude, WGS-84 degrees")
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False, description="longitude, WGS-84 degrees")


class DebitBody(Body):
    out_trade_no: Number = Field(description="the partner's unique number for this debit: a retry uses the same")
    card_number: checked_string(pattern=ETC_CARD_RE.pattern, min_length=20, max_length=20) | None = Field(
        default=None, description="the ETC user card (20 digits). Give it, or plate_number with plate_color, not both "
        "(422 VEHICLE_REFERENCE_INVALID)")
    plate_number: checked_string(pattern=PLATE_RE.pattern, min_length=7, max_length=8) | None = None
    plate_color: Literal[PLATE_COLORS] | None = None  # type: ignore[valid-type]
    category: Literal[tuple(CATEGORY_SCOPES)] = Field(  # type: ignore[valid-type]
        description="toll (scope etc:debit), parking (parking:debit), fuel (fuel:debit), carwash (carwash:debit)")
    amount_fen: int = Fen
    occurred_at: OccurredAt = Field(description="when the toll, stay, fill-up or wash happened (RFC 3339, with offset)")
    merchant: str = Field(min_length=1, max_length=64, pattern=TEXT_PATTERN, description="who charged: station, car park")
    detail: str | None = Field(default=None, max_length=256, pattern=TEXT_PATTERN)
    location: Location | None = Field(
        default=None, description="where it happened (the toll gantry, car park, station): risk control compares a "
        "plate's successive places with the time between them")


class RefundBody(Body):
    out_refund_no: Number = Field(description="the partner's unique number for this refund: a retry uses the same")
    amount_fen: int = Fen
    reason: str | None = Field(default=None, max_length=128, pattern=TEXT_PATTERN)


DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _iso_date(value: object) -> dt.date:
    """Only ``YYYY-MM-DD`` (a lax parser would read ``0`` as 1970-01-01)."""
    if not isinstance(value, str) or not re.fullmatch(DATE_PATTERN, value):
        raise ValueError("a date as YYYY-MM-DD")
    return dt.date.fromisoformat(value)


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date),
                    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN, "maxLength": 10})]


class StatementQuery(Query):
    date: IsoDate = Field(description="the day, China Standard Time (YYYY-MM-DD)")


class DebitOut(Out):
    out_trade_no: str
    status: Literal[tuple(s.value for s in DebitStatus)]  # type: ignore[valid-type]
    category: Literal[tuple(CATEGORY_SCOPES)]  # type: ignore[valid-type]
    amount_fen: int
    refunded_fen: int
    binding_id: int
    card_number_masked: str
    plate_number: str
    plate_color: Literal[PLATE_COLORS]  # type: ignore[valid-type]
    merchant: str
    detail: str | None
    occurred_at: datetime
    booked_at: datetime
    refusal_code: Literal[tuple(REFUSALS)] | None = Field(  # type: ignore[valid-type]
        description="why an `arrears` or `refused` debit was refused")

    @classmethod
    def of(cls, debit: Any, binding: Any) -> DebitOut:  # type: ignore[override]
        plate, color = plate_parts(binding.plate)
        return super().of(debit, binding_id=binding.id, card_number_masked=binding.card_masked, plate_number=plate,
                          plate_color=color)


class RefundOut(Out):
    out_refund_no: str
    out_trade_no: str
    amount_fen: int
    reason: str | None
    status: Literal["succeeded"]
    refunded_at: datetime
    debit: DebitOut

    @classmethod
    def of(cls, result: debits.RefundResult) -> RefundOut:  # type: ignore[override]
        return super().of(result.refund, out_trade_no=result.debit.out_trade_no, status="succeeded",
                          debit=DebitOut.of(result.debit, result.binding))


def _answer(out: Out, status: int, replayed: bool) -> HTTPResponse:
    return answer(out, status=status, headers={"Idempotent-Replayed": "true"} if replayed else None)


@bp.post("/debits")
@operation(
    summary="Debit the account bound to an ETC card or a car",
    description="Idempotent on `out_trade_no`: a retry with the same body answers the first answer again (with "
    "`Idempotent-Replayed: true`), a refusal included; another body under the number is 409 OUT_TRADE_NO_CONFLICT. "
    "A debit the balance or the account's limits refuse (422 INSUFFICIENT_FUNDS / LIMIT_EXCEEDED) is recorded as "
    "arrears on the binding, for the customer to pay later. Risk control decides first: a debit it blocks or holds "
    "for review (403 RISK_BLOCKED / RISK_REVIEW) is recorded as `refused`, neither booked nor owed; so is a debit of "
    "an account its holder reported lost or the bank froze (409 ACCOUNT_RESTRICTED: a judicial freeze of an amount "
    "lets out only the balance above it) or that is closed (409 ACCOUNT_CLOSED).",
    tag="open",
    partner=DEBIT_SCOPES,
    body=DebitBody,
    responses={201: Response(DebitOut, description="booked")},
    errors=(InsufficientFunds, LimitExceeded, RiskBlocked, RiskReview, AccountRestricted, AccountClosed,
            OutTradeNoConflict, VehicleNotBound, BindingNotActive, EtcCardInvalid,
            PlateInvalid, PlateColorMismatch, OccurredAtInvalid, VehicleReferenceInvalid),
)
async def create_debit(request: Request, body: DebitBody) -> HTTPResponse:
    by_card, by_plate = body.card_number is not None, (body.plate_number, body.plate_color) != (None, None)
    if by_card == by_plate or (by_plate and None in (body.plate_number, body.plate_color)):
        raise VehicleReferenceInvalid()
    fields = body.model_dump(mode="json", exclude_none=True)
    if body.card_number is not None and not ETC_CARD_RE.fullmatch(body.card_number):
        raise EtcCardInvalid(field="card_number")
    if body.plate_number is not None:
        check_plate(body.plate_number, body.plate_color)
    occurred = body.occurred_at
    if occurred > utcnow() + FUTURE_SLACK or occurred.year < 2000:
        raise OccurredAtInvalid(field="occurred_at")
    fields["occurred_at"] = occurred
    result = await debits.debit(services(request), request.ctx.caller, fields)
    if result.debit.refusal_code:  # recorded (arrears, or refused): this answer, and the same on every retry
        raise REFUSALS[result.debit.refusal_code](headers={"Idempotent-Replayed": "true"} if result.replayed else None)
    return _answer(DebitOut.of(result.debit, result.binding), 201, result.replayed)


@bp.get("/debits/<out_trade_no:str>")
@operation(
    summary="A debit, with what has been refunded of it",
    tag="open",
    partner=READ_SCOPES,
    path={"out_trade_no": OUT_TRADE_NO},
    responses={200: Response(DebitOut)},
)
async def get_debit(request: Request, out_trade_no: str) -> HTTPResponse:
    result = await debits.get(request.ctx.caller, out_trade_no)
    return answer(DebitOut.of(result.debit, result.binding))


@bp.post("/debits/<out_trade_no:str>/refund")
@operation(
    summary="Refund a debit, in full or in part",
    description="Idempotent on `out_refund_no` (409 OUT_REFUND_NO_CONFLICT with another body). The refunds of a debit "
    "never add up to more than it (422 REFUND_EXCEEDS_DEBIT). Only a debit booked on the account (`succeeded`) "
    "can be refunded: one `refused` by risk control, owed as `arrears` or `settled` through WeChat Pay moved "
    "nothing on the account (409 DEBIT_NOT_REFUNDABLE). A refund is a credit held to the account's balance cap "
    "(422 BALANCE_CAP_EXCEEDED); it books on a restricted account, never on a closed one (409 ACCOUNT_CLOSED).",
    tag="open",
    partner=DEBIT_SCOPES,
    path={"out_trade_no": OUT_TRADE_NO},
    body=RefundBody,
    responses={201: Response(RefundOut, description="refunded")},
    errors=(OutRefundNoConflict, RefundExceedsDebit, DebitNotRefundable, BalanceCapExceeded, AccountClosed),
)
async def refund_debit(request: Request, out_trade_no: str, body: RefundBody) -> HTTPResponse:
    result = await debits.refund(services(request), request.ctx.caller, out_trade_no,
                                 body.model_dump(mode="json", exclude_none=True))
    return _answer(RefundOut.of(result), 201, result.replayed)


@bp.get("/statements")
@operation(
    summary="The day's debits and refunds, as CSV",
    description="Columns: " + ",".join(debits.STATEMENT_COLUMNS) + ". One row per debit booked that day (arrears "
    "included) and per refund; times in China Standard Time. Signed like every answer.",
    tag="open",
    partner=READ_SCOPES,
    query=StatementQuery,
    responses={200: Response(media_type="text/csv", schema={"type": "string"}, description="the statement")},
    errors=((422, "STATEMENT_DATE_INVALID"),),
)
async def statement(request: Request, query: StatementQuery) -> HTTPResponse:
    if not debits.statement_day_ok(query.date):
        raise ValidationFailed("对账日期不能晚于今天", code="STATEMENT_DATE_INVALID", field="date")
    text = await debits.statement(request.ctx.caller, query.date)
    return raw(text.encode(), content_type="text/csv; charset=utf-8")


