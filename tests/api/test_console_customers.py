"""The console's customer pages (issue #23, "customers" and "accountability"): the search by account number,
phone, ID number or last 4 digits; one customer's page, masked; a full value only through a reveal with a
reason, within a daily allowance counted in the database; every step in the audit chain as ``staff:ID``.
A real customer is opened through the API against the sandbox emulators (tests.account_helpers)."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from core.clock import utcnow
from core.pii import mask_card
from models.accounts import Account
from models.audit import AuditEvent
from models.identity import Identity
from models.staff import StaffRevealCount
from models.users import User
from services import audit
from tests.helpers import Sandbox
from tests.staff_helpers import Clock, csrf_of, log_in, new_staff

UA = {"user-agent": "staff-test-browser/1.0"}
REFUSED = "今日查看额度已用完，请提交复核申请"


@pytest.fixture(scope="module")
async def customer(server):
    """One customer with an open Class II account (and so every identity check and a signed agreement)."""
    from tests.account_helpers import open_account

    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as c:
        user, person, account = await open_account(c, Sandbox(c))
    row = await Account.get(id=account["id"])
    return {"user_id": row.user_id, "person": person, "account_id": row.id, "number": row.number,
            "bound_card": person.card_number}


@pytest.fixture
async def console(server):
    clients = []

    async def one(ctx, role: str, clock: Clock, creds=None):
        me = creds or await new_staff(ctx, role)
        c = httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False, headers=UA)
        clients.append(c)
        resp = await log_in(c, me, at=clock.now)
        assert resp.status_code == 303, resp.text
        return me, c

    yield one
    for c in clients:
        await c.aclose()


async def events(staff_id: int, action: str) -> list[AuditEvent]:
    return await AuditEvent.filter(actor=f"staff:{staff_id}", action=action).order_by("id")


async def csrf(c: httpx.AsyncClient, user_id: int) -> str:
    page = await c.get(f"/admin/customers/{user_id}")
    assert page.status_code == 200, page.text[:300]
    return csrf_of(page)


async def reveal(c, user_id: int, field: str, reason: str = "客户来电核实身份", token: str | None = None):
    return await c.post(f"/admin/customers/{user_id}/reveal",
                        data={"csrf_token": token or await csrf(c, user_id), "field": field, "reason": reason})


def result_ids(page: httpx.Response) -> set[int]:
    return {int(x) for x in re.findall(r'<a href="/admin/customers/(\d+)">', page.text)}


# -- the search --


async def test_search_by_account_number_phone_id_number_and_last_4(ctx, console, clock, customer):
    me, c = await console(ctx, "viewer", clock)
    p, uid = customer["person"], customer["user_id"]
    searches = [("account", customer["number"]), ("phone", p.phone), ("id_number", p.id_number),
                ("id_number", p.id_number.lower()), ("last4", p.phone[-4:]), ("last4", p.id_number[-4:]),
                ("last4", customer["number"][-4:])]
    for kind, q in searches:
        page = await c.get("/admin/customers", params={"kind": kind, "q": q})
        assert page.status_code == 200, (kind, page.text[:300])
        assert uid in result_ids(page), (kind, q)
        # the row is masked: the name, phone, ID number and account number never in full
        for full in (p.name, p.phone, p.id_number, customer["number"]):
            assert full not in page.text, (kind, full)
        assert mask_card(customer["number"]) in page.text
        assert f"{p.phone[:3]}****{p.phone[-4:]}" in page.text
        assert "未找到" not in page.text
    # each search is a page view naming its kind, the value masked, never in clear
    views = [e for e in await events(me.id, "staff.page_view") if e.data.get("search")]
    assert [(e.data["search"]) for e in views] == [k for k, _ in searches]
    stored = json.dumps([e.data for e in views], ensure_ascii=False)
    for full in (p.phone, p.id_number, customer["number"]):
        assert full not in stored
    assert views[1].data["query"] == f"{p.phone[:3]}****{p.phone[-4:]}"


async def test_a_search_that_finds_nobody_says_so(ctx, console, clock, customer):
    _, c = await console(ctx, "viewer", clock)
    page = await c.get("/admin/customers", params={"kind": "phone", "q": "19900000000"})
    assert page.status_code == 200 and "未找到" in page.text and 'id="no-match"' in page.text
    assert result_ids(page) == set()
    page = await c.get("/admin/customers", params={"kind": "account", "q": "6230990000000000000"})
    assert page.status_code == 200 and "未找到" in page.text


@pytest.mark.parametrize("kind,q", [("phone", "1381234567"), ("phone", "1381234567a"), ("id_number", "11010519491231002"),
                                    ("id_number", "1101051949123100ZZ"), ("last4", "123"), ("last4", "12a4"),
                                    ("last4", "12345"), ("account", "6230-99"), ("name", "张三"), ("", "1234")])
async def test_bad_search_input_is_a_400_page(ctx, console, clock, kind, q):
    me, c = await console(ctx, "viewer", clock)
    page = await c.get("/admin/customers", params={"kind": kind, "q": q})
    assert page.status_code == 400, page.text[:300]
    assert "STAFF_BAD_SEARCH" in page.text and "text/html" in page.headers["content-type"]
    [view] = [e for e in await events(me.id, "staff.page_view") if e.data.get("page") == "customers"]
    assert view.data["search"] == kind


async def test_the_search_page_without_a_query_is_the_form(ctx, console, clock):
    _, c = await console(ctx, "viewer", clock)
    page = await c.get("/admin/customers")
    assert page.status_code == 200 and 'id="customer-search"' in page.text and "查询结果" not in page.text
    anonymous = await httpx.AsyncClient(base_url=str(c.base_url), trust_env=False).get("/admin/customers")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login"


# -- one customer's page --


async def test_the_customer_page_is_masked_and_shows_the_checks_contracts_and_accounts(ctx, console, clock, customer):
    me, c = await console(ctx, "viewer", clock)
    p, uid = customer["person"], customer["user_id"]
    page = await c.get(f"/admin/customers/{uid}")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    for full in (p.name, p.phone, p.id_number, customer["number"], customer["bound_card"]):
        assert full not in page.text, full
    assert f'id="masked-phone">{p.phone[:3]}****{p.phone[-4:]}<' in page.text
    assert f'id="masked-id-number">{p.id_number[:4]}**********{p.id_number[-4:]}<' in page.text
    assert re.search(r'<td>[^<]+</td><td>(id_card|face|bank_card)</td><td>OK</td>', page.text)  # evidence rows
    assert "account_agreement" in page.text and "已签 PDF" in page.text
    assert f'id="account-{customer["account_id"]}"' in page.text and "生效中的限制" in page.text
    # a viewer sees the page but no reveal form works for them (below); the view is audited
    [view] = [e for e in await events(me.id, "staff.page_view") if e.data.get("page") == "customer"]
    assert view.data["user_id"] == uid and view.entity_type == "staff"


async def test_an_unknown_customer_is_404(ctx, console, clock):
    _, c = await console(ctx, "viewer", clock)
    top = await User.all().order_by("-id").first()
    for uid in (top.id + 1000, 2**63 + 5, 0):
        page = await c.get(f"/admin/customers/{uid}")
        assert page.status_code == 404, (uid, page.status_code)


async def test_a_contract_pdf_is_streamed_and_audited(ctx, console, clock, customer):
    me, c = await console(ctx, "viewer", clock)
    uid = customer["user_id"]
    page = await c.get(f"/admin/customers/{uid}")
    link = re.search(rf'href="(/admin/customers/{uid}/contracts/(\d+)/pdf\?signed=1)"', page.text)
    assert link, page.text[:500]
    pdf = await c.get(link.group(1))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and "no-store" in pdf.headers["cache-control"]
    unsigned = await c.get(f"/admin/customers/{uid}/contracts/{link.group(2)}/pdf")
    assert unsigned.status_code == 200 and unsigned.content.startswith(b"%PDF")
    [one, _] = [e for e in await events(me.id, "staff.page_view") if e.data.get("page") == "customer.contract_pdf"]
    assert one.data["contract_id"] == int(link.group(2)) and one.data["signed"] is True
    # another customer's id with this contract: not found
    other = await c.get(f"/admin/customers/{uid + 1}/contracts/{link.group(2)}/pdf")
    assert other.status_code == 404


# -- reveal --


async def test_a_viewer_can_view_but_not_reveal(ctx, console, clock, customer):
    me, c = await console(ctx, "viewer", clock)
    uid = customer["user_id"]
    resp = await reveal(c, uid, "phone")
    assert resp.status_code == 403
    assert customer["person"].phone not in resp.text
    [refused] = await events(me.id, "staff.refused")
    assert refused.data["permission"] == "customers.reveal"
    assert await events(me.id, "staff.pii_revealed") == []


async def test_a_reveal_needs_a_reason_and_the_csrf_token(ctx, console, clock, customer):
    me, c = await console(ctx, "operator", clock)
    uid, phone = customer["user_id"], customer["person"].phone
    for reason in ("", "   ", "abc", "x" * 201):
        resp = await reveal(c, uid, "phone", reason)
        assert resp.status_code == 400 and phone not in resp.text, reason
    for bad in ("email", "account_number:abc", "account_number:0", "bound_card:", ""):
        resp = await reveal(c, uid, bad)
        assert resp.status_code == 400, bad
    missing = await c.post(f"/admin/customers/{uid}/reveal", data={"field": "phone", "reason": "客户来电核实身份"})
    assert missing.status_code == 403 and phone not in missing.text
    other = await reveal(c, uid, f"account_number:{customer['account_id'] + 10_000}")
    assert other.status_code == 404
    assert await events(me.id, "staff.pii_revealed") == []
    assert await StaffRevealCount.get_or_none(staff_id=me.id) is None  # nothing counted


async def test_the_full_value_only_after_a_reveal_and_only_on_that_page(ctx, console, clock, customer):
    me, c = await console(ctx, "operator", clock)
    p, uid, aid = customer["person"], customer["user_id"], customer["account_id"]
    wanted = {"phone": p.phone, "name": p.name, "id_number": p.id_number, f"account_number:{aid}": customer["number"],
              f"bound_card:{aid}": customer["bound_card"]}
    for field, full in wanted.items():
        resp = await reveal(c, uid, field, reason=f"核实 {field} 工单 #1234")
        assert resp.status_code == 200, resp.text[:300]
        assert f'id="revealed-value">{full}<' in resp.text
        assert resp.headers["cache-control"] == "no-store"
        assert full not in str(resp.url)
        again = await c.get(f"/admin/customers/{uid}")
        assert full not in again.text  # masked again
    revealed = await events(me.id, "staff.pii_revealed")
    assert [e.data["field"] for e in revealed] == ["phone", "name", "id_number", "account_number", "bound_card"]
    for e in revealed:
        assert e.entity_type == "user" and e.entity_id == str(uid) and e.data["subject"] == f"user:{uid}"
        assert e.data["reason"].startswith("核实") and e.data["role"] == "operator"
        assert e.data["session_id"] and e.data["ip"]
    stored = json.dumps([e.data for e in revealed], ensure_ascii=False)
    for full in wanted.values():
        assert full not in stored
    assert (await StaffRevealCount.get(staff_id=me.id)).count == 5


async def test_the_allowance_is_enforced_and_shared_by_the_members_sessions(ctx, console, clock, customer,
                                                                            monkeypatch):
    monkeypatch.setattr(ctx, "settings", ctx.settings.replace(admin_reveal_daily_allowance=2))
    me, first = await console(ctx, "operator", clock)
    clock.move(seconds=31)  # a later TOTP step: a second login of the same member
    _, second = await console(ctx, "operator", clock, creds=me)
    uid = customer["user_id"]
    assert (await reveal(first, uid, "phone")).status_code == 200
    assert (await reveal(second, uid, "name")).status_code == 200
    for c in (first, second):
        over = await reveal(c, uid, "id_number")
        assert over.status_code == 429 and REFUSED in over.text
        assert customer["person"].id_number not in over.text
    assert len(await events(me.id, "staff.pii_revealed")) == 2
    refused = await events(me.id, "staff.pii_reveal_refused")
    assert len(refused) == 2 and refused[0].data["allowance"] == 2 and refused[0].data["field"] == "id_number"
    # another member has their own allowance
    _, other = await console(ctx, "risk", clock)
    assert (await reveal(other, uid, "phone")).status_code == 200


async def test_concurrent_reveals_at_the_allowance_edge_let_exactly_one_through(ctx, console, clock, customer,
                                                                               monkeypatch):
    monkeypatch.setattr(ctx, "settings", ctx.settings.replace(admin_reveal_daily_allowance=3))
    me, c = await console(ctx, "operator", clock)
    uid = customer["user_id"]
    assert (await reveal(c, uid, "phone")).status_code == 200
    assert (await reveal(c, uid, "phone")).status_code == 200
    token = await csrf(c, uid)
    answers = await asyncio.gather(*(reveal(c, uid, "phone", token=token) for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [200, 429]
    assert (await StaffRevealCount.get(staff_id=me.id)).count == 3
    assert len(await events(me.id, "staff.pii_revealed")) == 3


async def test_concurrent_reveals_through_the_service_never_pass_the_allowance(ctx, customer, monkeypatch):
    from services.staff import pii, sessions
    from models.staff import Staff, StaffSession

    monkeypatch.setattr(ctx, "settings", ctx.settings.replace(admin_reveal_daily_allowance=2))
    creds = await new_staff(ctx, "risk")
    staff = await Staff.get(id=creds.id)
    now = utcnow()
    row = await StaffSession.create(token_hash=f"t{creds.id}".ljust(64, "0"), staff_id=staff.id, csrf_token="x",
                                    ip="127.0.0.1", user_agent="test", created_at=now, last_seen_at=now,
                                    expires_at=now)
    current, client = sessions.Current(row, staff), sessions.Client("127.0.0.1", "test")

    async def one():
        try:
            return await pii.reveal(ctx, current, client, user_id=customer["user_id"], field="phone",
                                    reason="并发核实测试")
        except pii.RevealAllowanceExceeded:
            return None

    got = await asyncio.gather(*(one() for _ in range(6)))
    assert sorted(g is not None for g in got) == [False] * 4 + [True] * 2
    assert (await StaffRevealCount.get(staff_id=staff.id)).count == 2


# -- the last-4 columns of older rows --


async def test_older_rows_get_their_last_4_from_the_worker_step(ctx, customer, settings):
    from services import worker
    from services.staff import customers

    uid = customer["user_id"]
    await User.filter(id=uid).update(phone_last4=None)
    await Identity.filter(user_id=uid).update(id_number_last4=None)
    await Account.filter(id=customer["account_id"]).update(number_last4=None)
    assert uid not in {f.user_id for f in await customers.search(ctx, "last4", customer["person"].phone[-4:])}
    done = await customers.fill_last4(ctx)
    assert done["users"] >= 1 and done["identities"] >= 1 and done["accounts"] >= 1
    assert (await User.get(id=uid)).phone_last4 == customer["person"].phone[-4:]
    assert (await Identity.get(user_id=uid)).id_number_last4 == customer["person"].id_number[-4:]
    assert (await Account.get(id=customer["account_id"])).number_last4 == customer["number"][-4:]
    assert await customers.fill_last4(ctx) == {"users": 0, "identities": 0, "accounts": 0}  # idempotent
    for q in (customer["person"].phone[-4:], customer["person"].id_number[-4:], customer["number"][-4:]):
        assert uid in {f.user_id for f in await customers.search(ctx, "last4", q)}
    assert "customers.last4" in [j.name for j in worker.periodic_jobs(ctx, settings)]


# -- the audit chain --


async def test_every_console_action_is_in_the_chain_as_the_member(ctx, console, clock, customer):
    me, c = await console(ctx, "admin", clock)
    uid = customer["user_id"]
    await c.get("/admin/customers", params={"kind": "phone", "q": customer["person"].phone})
    await c.get(f"/admin/customers/{uid}")
    assert (await reveal(c, uid, "phone")).status_code == 200
    mine = await AuditEvent.filter(actor=f"staff:{me.id}").order_by("seq")
    actions = [e.action for e in mine]
    assert actions[0] == "staff.login" and "staff.page_view" in actions and actions[-1] == "staff.pii_revealed"
    assert all(e.actor == f"staff:{me.id}" for e in mine)
    assert (await audit.verify()).ok


async def test_the_results_as_csv_are_masked_and_the_export_audited(ctx, console, clock, customer):
    me, c = await console(ctx, "viewer", clock)
    p = customer["person"]
    resp = await c.get("/admin/customers", params={"kind": "phone", "q": p.phone, "format": "csv"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert str(customer["user_id"]) in resp.text and mask_card(customer["number"]) in resp.text
    for full in (p.phone, p.id_number, customer["number"], p.name):
        assert full not in resp.text
    [export] = await events(me.id, "staff.export")
    assert export.data["list"] == "customers" and export.data["rows"] == 1
    assert export.data["filters"] == {"kind": "phone", "query": f"{p.phone[:3]}****{p.phone[-4:]}"}


async def test_a_reveal_beyond_the_allowance_needs_a_second_member_and_is_good_once(ctx, console, clock, customer,
                                                                                    monkeypatch):
    from models.staff import StaffProposal

    monkeypatch.setattr(ctx, "settings", ctx.settings.replace(admin_reveal_daily_allowance=1))
    me, mine = await console(ctx, "operator", clock)
    checker, theirs = await console(ctx, "risk", clock)
    uid, full = customer["user_id"], customer["person"].id_number
    assert (await reveal(mine, uid, "phone")).status_code == 200
    over = await reveal(mine, uid, "id_number")
    assert over.status_code == 429 and 'id="reveal-proposal"' in over.text and full not in over.text
    token = csrf_of(over)
    proposed = await mine.post("/admin/proposals", data={"csrf_token": token, "action": "pii.reveal", "user_id": str(uid),
                                                         "field": "id_number", "reason": "司法协查需核对身份证号"})
    assert proposed.status_code == 303, proposed.text[:300]
    pid = int(proposed.headers["location"].split("/")[-1].split("?")[0])
    # not before a second member approves; the approver is not shown the value
    assert (await reveal(mine, uid, "id_number")).status_code == 429
    approved = await theirs.post(f"/admin/proposals/{pid}/approve", data={"csrf_token": csrf_of(await theirs.get(
        f"/admin/proposals/{pid}")), "note": "已核对协查函"})
    assert approved.status_code == 200 and "已生效" in approved.text and full not in approved.text
    assert (await StaffProposal.get(id=pid)).result["granted_to"] == f"staff:{me.id}"
    # the proposer reveals it once, that field only
    assert (await reveal(mine, uid, "name")).status_code == 429
    done = await reveal(mine, uid, "id_number")
    assert done.status_code == 200 and full in done.text
    assert (await reveal(mine, uid, "id_number")).status_code == 429
    shown = (await events(me.id, "staff.pii_revealed"))[-1]
    assert shown.data["proposal_id"] == pid and shown.data["field"] == "id_number"
    assert (await audit.verify()).ok
