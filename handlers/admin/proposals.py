"""``/admin/proposals``: maker-checker in the console. Any page's sensitive form posts here (``action``,
``reason`` and the action's parameters); the proposal waits until a different member with the role
approves it (``services.staff.proposals``)."""

from __future__ import annotations

from urllib.parse import quote

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect

from core.errors import ValidationFailed
from handlers.admin.pages import client_of, form_text, page, render_staff, staff_for
from models.enums import ProposalStatus
from services.staff import proposals
from services.staff.actions import ACTIONS, Applied

bp = Blueprint("admin_proposals")
RESERVED = {"csrf_token", "action", "reason"}
STATUS_NAMES = {"pending": "待复核", "approved": "执行中", "applied": "已生效", "failed": "执行失败",
                "rejected": "已驳回", "expired": "已过期"}


def _params(request: Request) -> dict:
    """The action's parameters: every other field of the form (the action checks and normalises them)."""
    fields = {k: v for k, v in (request.form or {}).items() if k not in RESERVED}
    if len(fields) > 8:
        raise ValidationFailed("参数过多", field="params")
    return {k: (v[0] if v else "") for k, v in fields.items()}


def _status(text: str | None) -> ProposalStatus | None:
    if text in (None, "", "pending"):
        return ProposalStatus.PENDING
    if text == "all":
        return None
    if text not in STATUS_NAMES:
        raise ValidationFailed("未知的状态", field="status")
    return ProposalStatus(text)


@bp.get("/proposals")
@page
async def listing(request: Request) -> HTTPResponse:
    status = _status(request.args.get("status"))
    current = await staff_for(request, "proposals.view", view="proposals", status=str(status or "all"))
    rows = await proposals.listing(status=status)
    return render_staff("proposals.html", current, rows=rows, actions=ACTIONS, status_names=STATUS_NAMES,
                        shown=str(status or "all"), flash=request.args.get("flash", "")[:200])


@bp.get("/proposals/new")
@page
async def new(request: Request) -> HTTPResponse:
    """The form of one sensitive action (``?action=…``), its fields filled from the query (a page's link
    such as ``/admin/proposals/new?action=partner.rotate_secret&app_id=…``)."""
    name = request.args.get("action", "")
    if name not in ACTIONS:
        raise ValidationFailed("未知的操作", field="action")
    current = await staff_for(request, "proposals.view", view="proposal_form", action=name)
    action = ACTIONS[name]
    values = {f.name: (request.args.get(f.name) or "")[:256] for f in action.fields}
    return render_staff("proposal_new.html", current, action=action, values=values)


@bp.get("/proposals/<proposal_id:int>")
@page
async def one(request: Request, proposal_id: int) -> HTTPResponse:
    current = await staff_for(request, "proposals.view", view="proposal", proposal_id=proposal_id)
    row = await proposals.get(proposal_id)
    return render_staff("proposal.html", current, p=row, action=ACTIONS.get(row.action), status_names=STATUS_NAMES,
                        flash=request.args.get("flash", "")[:200], mine=row.proposed_by_id == current.staff.id)


@bp.post("/proposals")
@page
async def make(request: Request) -> HTTPResponse:
    """A sensitive form's submission: proposed (or, for an amount at or below the threshold, applied now)."""
    current = await staff_for(request, "proposals.view")
    action = form_text(request, "action", max_len=48)
    done = await proposals.act(request.app.ctx.services, current, client_of(request), action, _params(request),
                               form_text(request, "reason", max_len=200))
    if isinstance(done, Applied):
        return render_staff("proposal_done.html", current, title=ACTIONS[action].title, applied=done, proposal=None)
    return redirect(f"/admin/proposals/{done.id}?flash=" + quote("已提交，等待另一位员工复核"), status=303)


@bp.post("/proposals/<proposal_id:int>/approve")
@page
async def approve(request: Request, proposal_id: int) -> HTTPResponse:
    current = await staff_for(request, "proposals.view")
    note = form_text(request, "note", max_len=200, required=False)
    outcome = await proposals.approve(request.app.ctx.services, current, client_of(request), proposal_id, note)
    # rendered, not redirected: a new secret is shown here once and nowhere else (the page is no-store)
    return render_staff("proposal_done.html", current, title=ACTIONS[outcome.proposal.action].title,
                        applied=outcome.applied, proposal=outcome.proposal, error=outcome.error,
                        status_names=STATUS_NAMES)


@bp.post("/proposals/<proposal_id:int>/reject")
@page
async def reject(request: Request, proposal_id: int) -> HTTPResponse:
    current = await staff_for(request, "proposals.view")
    await proposals.reject(request.app.ctx.services, current, client_of(request), proposal_id,
                           form_text(request, "note", max_len=200))
    return redirect(f"/admin/proposals/{proposal_id}?flash=" + quote("已驳回"), status=303)
