"""The console's risk pages: ``GET /admin/risk`` (rule sets and the one in force, shadow-rule hits, the
block and allow lists), ``GET /admin/risk/rulesets/diff?a=&b=`` (what changed between two versions, rule
by rule), ``POST /admin/risk/rules/test`` (a pasted candidate replayed over recent decisions,
``risk.rules``) and the lists' add and remove forms (``risk.lists``, with a reason). Putting a rule set in
force takes two people (maker-checker): its forms go in the page's ``ruleset-proposals`` section."""

from __future__ import annotations

from urllib.parse import quote

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect

from core.errors import ValidationFailed
from handlers.admin.pages import client_of, form_text, page, render_staff, staff_for
from services.risk import console
from services.risk.rules import LISTS
from services.staff import permissions

bp = Blueprint("admin_risk")
REASON_MAX = 200


def _version(request: Request, name: str) -> int:
    text = request.args.get(name, "")
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 10):
        raise ValidationFailed(f"「{name}」须为规则集版本号", field=name, status=400)
    return int(text)


async def _risk_page(request: Request, current, **extra) -> HTTPResponse:
    role = current.staff.role
    return render_staff("risk.html", current, rule_sets=await console.rule_sets(), shadow=await console.shadow_hits(),
                        shadow_days=console.SHADOW_DAYS, entries=await console.list_entries(), lists=LISTS,
                        since_options=list(console.TEST_SINCE), done=request.args.get("done", "")[:100],
                        can_test=permissions.allows(role, "risk.rules"),
                        can_list=permissions.allows(role, "risk.lists"), **extra)


@bp.get("/risk")
@page
async def risk_home(request: Request) -> HTTPResponse:
    current = await staff_for(request, "risk.view", view="risk")
    return await _risk_page(request, current)


@bp.get("/risk/rulesets/diff")
@page
async def ruleset_diff(request: Request) -> HTTPResponse:
    current = await staff_for(request, "risk.view", view="risk.diff", a=request.args.get("a", "")[:12],
                              b=request.args.get("b", "")[:12])
    a, b = _version(request, "a"), _version(request, "b")
    return render_staff("risk_diff.html", current, diff=await console.diff(a, b), fmt=console.fmt,
                        summary=console.rule_summary)


@bp.post("/risk/rules/test")
@page
async def rules_test(request: Request) -> HTTPResponse:
    current = await staff_for(request, "risk.rules", view="risk.rules_test")
    text = (request.form.get("rules") if request.form else None) or ""
    since = form_text(request, "since", max_len=8)
    candidate = console.candidate(text)
    report = await console.test(candidate, since)
    return render_staff("risk_test.html", current, report=report, candidate=candidate, since=since,
                        differences=report.differences[:console.MAX_DIFFERENCES],
                        more=max(0, len(report.differences) - console.MAX_DIFFERENCES))


@bp.post("/risk/lists")
@page
async def list_put(request: Request) -> HTTPResponse:
    current = await staff_for(request, "risk.lists")
    list_name = form_text(request, "list", max_len=16)
    value = form_text(request, "value", max_len=64)
    action = form_text(request, "action", max_len=8)
    note = form_text(request, "note", max_len=200, required=False)
    plate_color = form_text(request, "plate_color", max_len=16, required=False) or None
    expires = form_text(request, "expires_in_s", max_len=8, required=False)
    if expires and not (expires.isascii() and expires.isdigit() and 0 < int(expires) <= 365 * 86400):
        raise ValidationFailed("「expires_in_s」须为 1 到 31536000 秒", field="expires_in_s", status=400)
    reason = form_text(request, "reason", max_len=REASON_MAX)
    await console.put(request.app.ctx.services, current, client_of(request), list_name=list_name, value=value,
                      action=action, note=note, expires_in_s=int(expires) if expires else None,
                      plate_color=plate_color, reason=reason)
    return redirect(f"/admin/risk?done={quote('名单已更新')}#lists", status=303)


@bp.post("/risk/lists/<entry_id:int>/remove")
@page
async def list_remove(request: Request, entry_id: int) -> HTTPResponse:
    current = await staff_for(request, "risk.lists")
    reason = form_text(request, "reason", max_len=REASON_MAX)
    if not 0 < entry_id < 2**63:
        raise console.NotFound("名单中没有这一条")
    await console.remove(current, client_of(request), entry_id, reason=reason)
    return redirect(f"/admin/risk?done={quote('已从名单移除')}#lists", status=303)
