"""``/admin/payments``: WeChat Pay orders, refunds and daily-bill mismatches (``payments.view``), each list
as CSV, and a mismatch's resolution note (``payments.resolve``). Refunds from the console are not here."""

from __future__ import annotations

from urllib.parse import urlencode

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect

from core.errors import NotFound, ValidationFailed
from handlers.admin.pages import (
    client_of, csv_export, form_text, page, query_args, render_staff, staff_for, wants_csv,
)
from services.staff import payments, permissions, sessions

bp = Blueprint("admin_payments")
LISTS = ("orders", "refunds", "mismatches")
MAX_ID = 2**63 - 1
FLASH = {"resolved": "已记录处理说明"}


@bp.get("/payments")
@page
async def overview(request: Request) -> HTTPResponse:
    current = await staff_for(request, "payments.view")  # permission first: a refused member learns nothing more
    args = query_args(request)
    filters = payments.parse_filters(args)
    if wants_csv(request):
        which = args.get("list") or ""
        if which not in LISTS:
            raise ValidationFailed("「list」须为 orders、refunds 或 mismatches", field="list")
        if which == "orders":
            header, rows = payments.ORDER_HEADER, await payments.orders(filters, limit=payments.EXPORT_MAX)
        elif which == "refunds":
            header, rows = payments.REFUND_HEADER, await payments.refunds(filters, limit=payments.EXPORT_MAX)
        else:
            header, rows = payments.MISMATCH_HEADER, await payments.mismatches(filters, limit=payments.EXPORT_MAX)
        return await csv_export(request, current, name=f"payments-{which}", header=header,
                                rows=[r.csv() for r in rows], filters=filters.as_dict())
    await sessions.page_viewed(current, client_of(request), "payments", filters=filters.as_dict())
    query = {k: v for k, v in filters.as_dict().items() if v}
    return render_staff(
        "payments.html", current, filters=filters, orders=await payments.orders(filters),
        refunds=await payments.refunds(filters), mismatches=await payments.mismatches(filters),
        order_statuses=payments.ORDER_STATUSES, refund_statuses=payments.REFUND_STATUSES,
        can_resolve=permissions.allows(current.staff.role, "payments.resolve"),
        csv_urls={name: f"/admin/payments?{urlencode({**query, 'format': 'csv', 'list': name})}" for name in LISTS},
        flash=FLASH.get(args.get("done") or ""), note_min=payments.NOTE_MIN, note_max=payments.NOTE_MAX)


@bp.post("/payments/mismatches/<mismatch_id:int>/resolve")
@page
async def resolve(request: Request, mismatch_id: int) -> HTTPResponse:
    current = await staff_for(request, "payments.resolve")
    if not 1 <= mismatch_id <= MAX_ID:
        raise NotFound("没有这条对账差异")
    note = form_text(request, "note", max_len=payments.NOTE_MAX)
    await payments.resolve(current, client_of(request), mismatch_id, note)
    return redirect(f"/admin/payments?mismatch_state=all&done=resolved#mismatch-{mismatch_id}", status=303)
