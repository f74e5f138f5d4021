"""The console's partner pages: ``GET /admin/partners`` (list, CSV), ``GET /admin/partners/<app_id>`` (scopes,
callback URL, secret versions, card networks, recent debits, webhook deliveries), and the operator's
actions: redeliver a notification, set the callback URL, disable (``partners.manage``, with a reason).
Rotating a secret and changing scopes take two people (maker-checker): their forms go in the page's
``partner-proposals`` section."""

from __future__ import annotations

from urllib.parse import quote

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect

from handlers.admin.pages import client_of, csv_export, form_text, page, render_staff, staff_for, wants_csv
from services.partners import console
from services.staff import permissions

bp = Blueprint("admin_partners")
APP_ID = r"<app_id:pt[0-9a-f]{16}>"
REASON_MAX = 200


def _back(app_id: str, message: str) -> HTTPResponse:
    return redirect(f"/admin/partners/{app_id}?done={quote(message)}", status=303)


@bp.get("/partners")
@page
async def partner_list(request: Request) -> HTTPResponse:
    current = await staff_for(request, "partners.view", view="partners")
    partners = await console.all_partners()
    if wants_csv(request):
        return await csv_export(request, current, name="partners",
                                header=["name", "app_id", "scopes", "callback_url", "status", "created_at"],
                                rows=([p.name, p.app_id, " ".join(p.scopes or ()), p.callback_url or "", p.status,
                                       p.created_at.isoformat()] for p in partners))
    return render_staff("partners.html", current, partners=partners)


@bp.get(f"/partners/{APP_ID}")
@page
async def partner_page(request: Request, app_id: str) -> HTTPResponse:
    current = await staff_for(request, "partners.view", view="partner", app_id=app_id)
    shown = await console.page_of(app_id)
    return render_staff("partner.html", current, p=shown.partner, secrets=shown.secrets, debits=shown.debits,
                        deliveries=shown.deliveries, done=request.args.get("done", "")[:100],
                        can_manage=permissions.allows(current.staff.role, "partners.manage"))


@bp.post(f"/partners/{APP_ID}/deliveries/<message_id:int>/redeliver")
@page
async def redeliver(request: Request, app_id: str, message_id: int) -> HTTPResponse:
    current = await staff_for(request, "partners.manage")
    reason = form_text(request, "reason", max_len=REASON_MAX)
    again = await console.redeliver(current, client_of(request), app_id, message_id, reason=reason)
    return _back(app_id, f"已重新排队推送 #{message_id}（新推送 #{again.id}）")


@bp.post(f"/partners/{APP_ID}/callback")
@page
async def set_callback(request: Request, app_id: str) -> HTTPResponse:
    current = await staff_for(request, "partners.manage")
    url = form_text(request, "callback_url", max_len=512, required=False)
    reason = form_text(request, "reason", max_len=REASON_MAX)
    partner = await console.set_callback(request.app.ctx.services, current, client_of(request), app_id, url or None,
                                         reason=reason)
    return _back(app_id, "回调地址已更新" if partner.callback_url else "回调地址已清除")


@bp.post(f"/partners/{APP_ID}/disable")
@page
async def disable(request: Request, app_id: str) -> HTTPResponse:
    current = await staff_for(request, "partners.manage")
    reason = form_text(request, "reason", max_len=REASON_MAX)
    await console.disable(current, client_of(request), app_id, reason=reason)
    return _back(app_id, "合作方已停用")
