"""``/admin/queues``: held top-ups and withdrawals, and debits risk control refused, with the rules that
fired and what they saw. Approving a held transfer goes through maker-checker (``transfer.approve``:
four eyes above ``ADMIN_FOUR_EYES_ABOVE_FEN``, via ``POST /admin/proposals``); rejecting one, or giving a
refused debit a verdict, is one reviewer's decision with a reason."""

from __future__ import annotations

from urllib.parse import quote

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect

from core.money import yuan
from handlers.admin.pages import client_of, csv_export, form_text, page, render_staff, staff_for, wants_csv
from services.staff import queues

bp = Blueprint("admin_queues")


@bp.get("/queues")
@page
async def listing(request: Request) -> HTTPResponse:
    current = await staff_for(request, "queues.view", view="queues")
    held, refused = await queues.held(), await queues.refused()
    if wants_csv(request):
        rows = [("held", h.id, h.kind, yuan(h.amount_fen, grouped=False), h.account, h.at.isoformat(),
                 ";".join(f.rule for f in h.fired if not f.shadow)) for h in held]
        rows += [("refused", r.id, r.category, yuan(r.amount_fen, grouped=False), r.account, r.at.isoformat(),
                  ";".join(f.rule for f in r.fired if not f.shadow)) for r in refused]
        return await csv_export(request, current, name="queues", rows=rows,
                                header=("queue", "id", "kind", "amount_yuan", "account", "at", "rules"))
    return render_staff("queues.html", current, held=held, refused=refused, yuan=yuan, verdicts=queues.VERDICTS,
                        threshold_fen=request.app.ctx.settings.admin_four_eyes_above_fen,
                        flash=request.args.get("flash", "")[:200])


@bp.post("/queues/transfers/<transfer_id:int>/reject")
@page
async def reject(request: Request, transfer_id: int) -> HTTPResponse:
    current = await staff_for(request, "queues.decide")
    await queues.reject_held(request.app.ctx.services, current, client_of(request), transfer_id,
                             form_text(request, "reason", max_len=200))
    return redirect("/admin/queues?flash=" + quote(f"转账 #{transfer_id} 已拒绝，资金已退回"), status=303)


@bp.post("/queues/debits/<debit_id:int>/review")
@page
async def review(request: Request, debit_id: int) -> HTTPResponse:
    current = await staff_for(request, "queues.decide")
    await queues.review_refused(current, client_of(request), debit_id, form_text(request, "verdict", max_len=16),
                                form_text(request, "reason", max_len=200))
    return redirect("/admin/queues?flash=" + quote(f"扣款 #{debit_id} 的审核结论已记录"), status=303)
