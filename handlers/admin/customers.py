"""``GET /admin/customers`` (the search), ``GET /admin/customers/<id>`` (one customer, masked),
``POST /admin/customers/<id>/reveal`` (one full value, with a reason, within the daily allowance) and
``GET /admin/customers/<id>/contracts/<id>/pdf`` (a contract's PDF, audited)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from handlers.admin.pages import client_of, csv_export, page, render_staff, staff_for, wants_csv
from services.staff import customers, pii

bp = Blueprint("admin_customers")


def _arg(request: Request, name: str) -> str:
    return (request.args.get(name) or "")[:64]


@bp.get("/customers", strict_slashes=True)
@page
async def search(request: Request) -> HTTPResponse:
    kind, q = _arg(request, "kind"), _arg(request, "q")
    searched = bool(kind or q)
    # the search is a page view whose audit event names its kind and the value masked, never in clear
    view_data = {"search": kind[:16], "query": customers.masked_query(kind, q)} if searched else {}
    current = await staff_for(request, "customers.view", view="customers", **view_data)
    found = None
    if searched:
        found = await customers.search(request.app.ctx.services, kind, customers.parse_query(kind, q))
        if wants_csv(request):  # the same rows, masked as on the page
            rows = [(f.user_id, f.name_masked or "", f.phone_masked or "", f.id_number_masked or "",
                     a.number_masked if a else "", a.opened_at.date().isoformat() if a else "", a.status if a else "")
                    for f in found for a in (f.accounts or [None])]
            return await csv_export(request, current, name="customers", rows=rows,
                                    header=("客户号", "姓名", "手机号", "身份证号", "账号", "开户日期", "状态"),
                                    filters={"kind": kind, "query": view_data["query"]})
    return render_staff("customers.html", current, kinds=customers.KINDS, kind=kind or "phone",
                        searched=searched, found=found)


async def _customer_page(request: Request, current, user_id: int, *, revealed: tuple[str, str] | None = None,
                         status: int = 200, over: tuple[str, str] | None = None) -> HTTPResponse:
    """The page; ``revealed``: (field, its full value) shown once, labelled as the page's reveal form names it."""
    data = await customers.customer(request.app.ctx.services, user_id)
    if revealed is not None:
        revealed = (dict(data.revealable).get(revealed[0], revealed[0]), revealed[1])
    if over is not None:  # (field, its label): the allowance is used up; a second member may approve this one
        over = (over[0], dict(data.revealable).get(over[0], over[0]))
    return render_staff("customer.html", current, status=status, c=data, revealed=revealed, over=over,
                        allowance=request.app.ctx.services.settings.admin_reveal_daily_allowance,
                        used=await pii.used_today(current.staff.id))


@bp.get("/customers/<user_id:int>")
@page
async def customer(request: Request, user_id: int) -> HTTPResponse:
    current = await staff_for(request, "customers.view", view="customer", user_id=user_id)
    return await _customer_page(request, current, user_id)


@bp.post("/customers/<user_id:int>/reveal")
@page
async def reveal(request: Request, user_id: int) -> HTTPResponse:
    """The full value on this response only (a POST's page, ``no-store``): never in a URL or a redirect."""
    current = await staff_for(request, "customers.reveal")
    form = request.form or {}
    field = (form.get("field") or "")[:64]
    try:
        value = await pii.reveal(request.app.ctx.services, current, client_of(request), user_id=user_id, field=field,
                                 reason=(form.get("reason") or "")[:400])
    except pii.RevealAllowanceExceeded:
        # the page again (429), with the form that asks a second member to approve this one reveal
        return await _customer_page(request, current, user_id, status=429, over=(field, ""))
    return await _customer_page(request, current, user_id, revealed=(field, value))


@bp.get("/customers/<user_id:int>/contracts/<contract_id:int>/pdf")
@page
async def contract_pdf(request: Request, user_id: int, contract_id: int) -> HTTPResponse:
    signed = request.args.get("signed") == "1"
    current = await staff_for(request, "customers.view", view="customer.contract_pdf", user_id=user_id,  # noqa: F841
                              contract_id=contract_id, signed=signed)
    contract, data = await customers.contract_pdf(request.app.ctx.services, user_id, contract_id, signed=signed)
    name = f"{contract.contract_no}{'-signed' if signed else ''}.pdf"
    return raw(data, content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff"})
