"""The console's audit page (issue #23): the hash chain newest first, a page at a time, searched by actor,
action prefix, entity and days; the chain's check run from the console (and audited); the filtered list
as CSV (audited); and only roles with ``audit.view`` see any of it."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import httpx

from core.clock import china_day
from models.audit import AuditEvent
from services import audit
from services.db import atomic
from tests.staff_helpers import csrf_of, log_in, new_staff


async def logged_in(ctx, admin_client, clock, role: str = "reviewer"):
    me = await new_staff(ctx, role)
    assert (await log_in(admin_client, me, at=clock.now)).status_code == 303
    return me


def seqs(page: httpx.Response) -> list[int]:
    return [int(s) for s in re.findall(r'<tr class="event" data-seq="(\d+)">', page.text)]


def actions(page: httpx.Response) -> list[str]:
    return re.findall(r'<td class="action">([^<]+)</td>', page.text)


async def last_event(actor: str, action: str) -> AuditEvent:
    return await AuditEvent.filter(actor=actor, action=action).order_by("-seq").first()


async def test_the_chain_is_searched_by_actor_action_entity_and_days(ctx, server, admin_client, clock):
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as other:
        await logged_in(ctx, other, clock)  # someone else's login, which the search must leave out
    me = await logged_in(ctx, admin_client, clock)
    actor = f"staff:{me.id}"
    page = await admin_client.get("/admin/audit", params={"actor": actor, "action": "staff.login"})
    assert page.status_code == 200
    assert actions(page) == ["staff.login"]  # my login, nobody else's, and not my page views
    assert f'<td class="actor">{actor}</td>' in page.text
    login = await last_event(actor, "staff.login")
    assert seqs(page) == [login.seq]
    assert "user_agent" in page.text  # the event's (masked) data is shown

    prefix = await admin_client.get("/admin/audit", params={"actor": actor, "action": "staff."})
    got = actions(prefix)
    assert "staff.login" in got and "staff.page_view" in got
    assert seqs(prefix) == sorted(seqs(prefix), reverse=True)  # newest first

    entity = await admin_client.get("/admin/audit", params={"entity_type": "staff", "entity_id": str(me.id)})
    assert login.seq in seqs(entity)
    other = await admin_client.get("/admin/audit", params={"entity_type": "staff", "entity_id": str(me.id + 10**9)})
    assert seqs(other) == []

    today = china_day(login.at)
    inside = await admin_client.get("/admin/audit", params={"actor": actor, "action": "staff.login",
                                                            "since": today.isoformat(), "until": today.isoformat()})
    assert seqs(inside) == [login.seq]
    before = (today - timedelta(days=1)).isoformat()
    outside = await admin_client.get("/admin/audit", params={"actor": actor, "until": before})
    assert seqs(outside) == [] and "没有符合条件的事件" in outside.text
    after = await admin_client.get("/admin/audit", params={"actor": actor, "since": (today + timedelta(days=1)).isoformat()})
    assert seqs(after) == []


async def test_pages_are_keyset_on_seq(ctx, admin_client, clock, monkeypatch):
    from services.staff import audit_log

    me = await logged_in(ctx, admin_client, clock)
    entity = secrets.token_hex(6)
    await atomic(lambda conn: audit.append_many(conn, [
        dict(actor="system", action="test.paged", entity_type="test", entity_id=entity, data={"n": n}) for n in range(5)]))
    monkeypatch.setattr(audit_log, "PAGE", 2)
    query = {"entity_type": "test", "entity_id": entity}
    seen, url = [], "/admin/audit"
    params = query
    for _ in range(5):
        page = await admin_client.get(url, params=params)
        assert page.status_code == 200
        seen += seqs(page)
        found = re.search(r'href="([^"]+)" id="audit-next"', page.text)
        if not found:
            break
        url, params = found.group(1).replace("&amp;", "&"), None
        assert "entity_id=" + entity in url  # the filters carry over to the next page
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    assert me


async def test_bad_filters_are_refused(ctx, admin_client, clock):
    await logged_in(ctx, admin_client, clock)
    for params in ({"since": "2026-13-01"}, {"until": "yesterday"}, {"before": "-1"}, {"before": "9" * 30},
                   {"actor": "x" * 65}, {"entity_id": "12"}, {"since": "2026-12-02", "until": "2026-12-01"}):
        resp = await admin_client.get("/admin/audit", params=params)
        assert resp.status_code == 422, (params, resp.status_code)


async def test_verify_from_the_console_passes_and_is_audited(ctx, admin_client, clock):
    me = await logged_in(ctx, admin_client, clock)
    page = await admin_client.get("/admin/audit")
    resp = await admin_client.post("/admin/audit/verify", data={"csrf_token": csrf_of(page)})
    assert resp.status_code == 200
    assert "校验通过" in resp.text
    count = int(re.search(r'id="verify-count">(\d+)<', resp.text).group(1))
    event = await last_event(f"staff:{me.id}", "staff.audit_verified")
    assert event.data["ok"] is True and event.data["events"] == count and event.data["role"] == "reviewer"
    assert (await audit.verify()).ok


async def test_verify_after_tampering_names_the_event(ctx, admin_client, clock):
    me = await logged_in(ctx, admin_client, clock)
    planted = await atomic(lambda conn: audit.append(conn, actor="system", action="test.tampered", entity_type="test",
                                                     entity_id=secrets.token_hex(6), data={"amount_fen": 100}))
    page = await admin_client.get("/admin/audit")
    await AuditEvent.filter(id=planted.id).update(data={"amount_fen": 1})  # an edit behind the chain's back
    try:
        resp = await admin_client.post("/admin/audit/verify", data={"csrf_token": csrf_of(page)})
        assert resp.status_code == 200 and "校验通过" not in resp.text and "校验未通过" in resp.text
        assert re.search(rf'id="verify-broken-seq">{planted.seq}<', resp.text)
        event = await last_event(f"staff:{me.id}", "staff.audit_verified")
        assert event.data["ok"] is False and event.data["broken_seq"] == planted.seq
        assert event.data["broken_event_id"] == planted.id
    finally:
        await AuditEvent.filter(id=planted.id).update(data={"amount_fen": 100})
    assert (await audit.verify()).ok  # put back, the chain checks out again, the verify event included


async def test_the_filtered_list_exports_as_csv_and_is_audited(ctx, admin_client, clock):
    me = await logged_in(ctx, admin_client, clock)
    actor = f"staff:{me.id}"
    resp = await admin_client.get("/admin/audit", params={"actor": actor, "action": "staff.login", "format": "csv"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    lines = resp.text.lstrip("\ufeff").strip().splitlines()
    assert lines[0].startswith("seq,") and len(lines) == 2
    login = await last_event(actor, "staff.login")
    assert lines[1].startswith(f"{login.seq},") and ",staff.login," in lines[1]
    export = await last_event(actor, "staff.export")
    assert export.data["list"] == "audit-events" and export.data["rows"] == 1
    assert export.data["filters"] == {"actor": actor, "action": "staff.login"}


async def test_a_viewer_is_refused_and_the_refusal_audited(ctx, admin_client, clock):
    me = await logged_in(ctx, admin_client, clock, role="viewer")
    home = await admin_client.get("/admin/")
    assert 'href="/admin/audit"' not in home.text  # not in the viewer's menu
    for resp in (await admin_client.get("/admin/audit"), await admin_client.get("/admin/audit?format=csv"),
                 await admin_client.get("/admin/audit?since=bogus"),
                 await admin_client.post("/admin/audit/verify", data={"csrf_token": csrf_of(home)})):
        assert resp.status_code == 403, resp.status_code
    refusals = await AuditEvent.filter(actor=f"staff:{me.id}", action="staff.refused").order_by("seq")
    assert [e.data["permission"] for e in refusals] == ["audit.view"] * 4
    assert not await AuditEvent.filter(actor=f"staff:{me.id}", action__in=["staff.audit_verified", "staff.export"])


async def test_verify_without_the_csrf_token_is_refused(ctx, admin_client, clock):
    me = await logged_in(ctx, admin_client, clock)
    resp = await admin_client.post("/admin/audit/verify", data={})
    assert resp.status_code == 403
    assert not await AuditEvent.filter(actor=f"staff:{me.id}", action="staff.audit_verified").exists()


async def test_without_a_session_the_audit_page_sends_to_login(admin_client):
    resp = await admin_client.get("/admin/audit")
    assert resp.status_code == 303 and resp.headers["location"] == "/admin/login"
