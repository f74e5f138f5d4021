"""WeChat Pay orders the mini-program pays with ``wx.requestPayment``: the ETC device fee and arrears."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from core.money import MAX_AMOUNT_FEN
from handlers.common import client, services
from handlers.spec import Body, Id, Out, Query, Response, answer, id_param, operation
from models.enums import OrderStatus, RefundStatus
from services.etc.bindings import BindingNotFound
from services.pagination import MAX_PAGE
from services.payments import orders, refunds
from services.payments.orders import PURPOSES, NothingToPay, OrderNotFound, PayRefused, PayUnavailable
from services.payments.refunds import NotRefundable, RefundExceedsPaid, RefundRefused
from services.risk.engine import RiskBlocked, RiskReview

bp = Blueprint("mp_payments")
ORDER_ID = id_param(OrderNotFound, "the order's id")


class OrderBody(Body):
    purpose: Literal[PURPOSES] = Field(  # type: ignore[valid-type]
        description="`arrears`: what the binding owes for debits the account could not cover; `obu_fee`: the ETC "
        "device, for a binding without one. The amount is the server's.")
    reference_id: Id = Field(description="the ETC binding")


class PayParams(Out):
    timeStamp: str
    nonceStr: str
    package: str = Field(description="`prepay_id=...`")
    signType: Literal["RSA"]
    paySign: str = Field(description="RSA-SHA256 with the merchant key over appId, timeStamp, nonceStr and package")


class OrderSummary(Out):
    id: int
    purpose: Literal[PURPOSES]  # type: ignore[valid-type]
    reference_id: int
    out_trade_no: str
    amount_fen: int
    status: Literal[tuple(s.value for s in OrderStatus)]  # type: ignore[valid-type]
    created_at: datetime
    time_expire: datetime
    paid_at: datetime | None
    refunded_fen: int = Field(description="refunds asked for (in progress or done), never above `amount_fen`")


class OrderOut(OrderSummary):
    pay_params: PayParams | None = Field(description="for `wx.requestPayment`, while the order can be paid")

    @classmethod
    def of(cls, order: Any, pay_params: dict | None = None) -> OrderOut:  # type: ignore[override]
        return super().of(order, pay_params=pay_params)


@bp.post("/payments/orders")
@operation(
    summary="An order to pay with WeChat Pay (or the open one for the same debt)",
    description="The amount comes from the server: the binding's arrears, or the device fee. While an order for the "
    "same binding and purpose can still be paid, asking again answers it, so one debt cannot be paid twice.",
    tag="payments",
    auth=True,
    idempotent=True,
    body=OrderBody,
    responses={200: Response(OrderOut, description="the open order"), 201: Response(OrderOut, description="a new order")},
    errors=(NothingToPay, BindingNotFound, PayUnavailable, PayRefused, RiskBlocked, RiskReview),
)
async def create_order(request: Request, body: OrderBody) -> HTTPResponse:
    made = await orders.create(services(request), request.ctx.user_id, purpose=body.purpose,
                               reference_id=body.reference_id, idempotency_id=request.ctx.idempotency.id,
                               client=client(request))
    return answer(OrderOut.of(made.order, made.pay_params), status=201 if made.created else 200)


class OrdersQuery(Query):
    cursor: str | None = Field(default=None, max_length=32, description="`next_cursor` of the previous page")
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)


class OrdersOut(Out):
    orders: list[OrderSummary]
    next_cursor: str | None


@bp.get("/payments/orders")
@operation(
    summary="The user's payment orders, newest first, a page at a time",
    description="As this backend has them (an open order's state at WeChat Pay is asked by getting the order).",
    tag="payments", auth=True, query=OrdersQuery, responses={200: Response(OrdersOut)},
    errors=((422, "CURSOR_INVALID"),),
)
async def list_orders(request: Request, query: OrdersQuery) -> HTTPResponse:
    page, cursor = await orders.of_user(request.ctx.user_id, cursor=query.cursor, limit=query.limit)
    return answer(OrdersOut(orders=page, next_cursor=cursor))


@bp.get("/payments/orders/<order_id:int>")
@operation(
    summary="An order, as WeChat Pay has it now (asked while it can still be paid)",
    tag="payments", auth=True, path={"order_id": ORDER_ID}, responses={200: Response(OrderOut)},
)
async def get_order(request: Request, order_id: int) -> HTTPResponse:
    order, params = await orders.view(services(request), request.ctx.user_id, order_id)
    return answer(OrderOut.of(order, params))


class PaymentRefundBody(Body):
    amount_fen: int | None = Field(default=None, ge=1, le=MAX_AMOUNT_FEN, description="default: all that is left to refund")
    reason: str | None = Field(default=None, max_length=80)


class PaymentRefundOut(Out):
    id: int
    order_id: int
    out_refund_no: str
    amount_fen: int
    status: Literal[tuple(s.value for s in RefundStatus)]  # type: ignore[valid-type]
    created_at: datetime
    finished_at: datetime | None


@bp.post("/payments/orders/<order_id:int>/refunds")
@operation(
    summary="Refund a paid device fee, in full or in part",
    description="Never more than was paid, counting refunds in progress (422 REFUND_EXCEEDS_PAID); arrears are not "
    "refunded (409 NOT_REFUNDABLE). `processing` until WeChat Pay says it is done.",
    tag="payments", auth=True, idempotent=True, path={"order_id": ORDER_ID}, body=PaymentRefundBody,
    responses={201: Response(PaymentRefundOut, description="asked of WeChat Pay")},
    errors=(NotRefundable, RefundExceedsPaid, RefundRefused, PayUnavailable, RiskBlocked, RiskReview),
)
async def refund_order(request: Request, order_id: int, body: PaymentRefundBody) -> HTTPResponse:
    made = await refunds.refund(services(request), request.ctx.user_id, order_id, amount_fen=body.amount_fen,
                                reason=body.reason, idempotency_id=request.ctx.idempotency.id, client=client(request))
    return answer(PaymentRefundOut.model_validate(made), status=201)
