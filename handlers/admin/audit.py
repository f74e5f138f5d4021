"""``/admin/audit``: the audit chain, searchable, exportable as CSV, and its check (``audit.view``)."""

from __future__ import annotations

from urllib.parse import urlencode

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from handlers.admin.pages import client_of, csv_export, page, query_args, render_staff, staff_for, wants_csv
from services.staff import audit_log, sessions

bp = Blueprint("admin_audit")


@bp.get("/audit")
@page
async def events(request: Request) -> HTTPResponse:
    current = await staff_for(request, "audit.view")  # permission first: a refused member learns nothing more
    args = query_args(request)
    filters = audit_log.parse_filters(args)
    before = audit_log.parse_before(args.get("before"))
    if wants_csv(request):
        rows = await audit_log.export(filters)
        return await csv_export(request, current, name="audit-events", header=audit_log.CSV_HEADER,
                                rows=[r.csv() for r in rows], filters=filters.as_dict())
    await sessions.page_viewed(current, client_of(request), "audit", filters=filters.as_dict())
    rows, next_before = await audit_log.search(filters, before=before)
    query = filters.as_dict()
    return render_staff("audit.html", current, rows=rows, filters=filters,
                        next_url=f"/admin/audit?{urlencode({**query, 'before': next_before})}" if next_before else None,
                        csv_url=f"/admin/audit?{urlencode({**query, 'format': 'csv'})}",
                        report=None)


@bp.post("/audit/verify")
@page
async def verify(request: Request) -> HTTPResponse:
    """Shown in the POST's own answer, not through a redirect: a result read from a query string could be
    forged by a link, and this page's word is what a reviewer relies on."""
    current = await staff_for(request, "audit.view")
    report = await audit_log.verify(current, client_of(request))
    filters = audit_log.Filters()
    rows, next_before = await audit_log.search(filters)
    return render_staff("audit.html", current, rows=rows, filters=filters,
                        next_url=f"/admin/audit?{urlencode({'before': next_before})}" if next_before else None,
                        csv_url="/admin/audit?format=csv", report=report)
