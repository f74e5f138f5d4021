"""The console's risk pages (issue #23): the rule sets and the one in force, a diff between two versions
(rules added, removed, changed field by field), a pasted candidate replayed over recent decisions, shadow
rule hits from the recorded decisions, and the block and allow lists changed by a risk analyst as
themselves in the audit chain; a wrong role, a missing CSRF token, unknown versions or entries, bad JSON
and an invalid rule set are refused."""

from __future__ import annotations

import json
import re
import secrets
from datetime import timedelta

import httpx
import pytest

from core.clock import utcnow
from models.audit import AuditEvent
from models.risk import RiskEvent, RiskListEntry
from services import audit
from tests.helpers import rules_in_force
from tests.staff_helpers import csrf_of, log_in, new_staff

UA = {"user-agent": "staff-test-browser/1.0"}


@pytest.fixture
async def empty_afterwards():
    """Afterwards an empty rule set is in force (nothing fires for the next test)."""
    yield
    await rules_in_force([])


async def logged_in(ctx, admin_client, clock, role: str):
    me = await new_staff(ctx, role)
    resp = await log_in(admin_client, me, at=clock.now)
    assert resp.status_code == 303, resp.text
    return me


def amount(rule_id: str, max_amount_fen: int, *, status: str = "active", action: str = "block") -> dict:
    return {"id": rule_id, "type": "amount", "status": status, "action": action, "applies_to": ["partner_debit"],
            "max_amount_fen": max_amount_fen}


def velocity(rule_id: str, max_count: int) -> dict:
    return {"id": rule_id, "type": "velocity", "status": "active", "action": "review", "applies_to": ["partner_debit"],
            "key": "account", "window": "1m", "max_count": max_count}


async def staff_action(action: str, staff_id: int) -> list[AuditEvent]:
    return await AuditEvent.filter(action=action, actor=f"staff:{staff_id}").order_by("id")


# -- rule sets and their diff --


async def test_the_rule_sets_are_listed_with_the_one_in_force(ctx, admin_client, clock, empty_afterwards):
    old = await rules_in_force([amount("big", 100_000)], description="旧版")
    new = await rules_in_force([amount("big", 50_000), amount("watch", 20_000, status="shadow")], description="新版")
    await logged_in(ctx, admin_client, clock, "reviewer")
    shown = await admin_client.get("/admin/risk")
    assert shown.status_code == 200
    row_new = re.search(rf'<tr id="ruleset-{new}"([^>]*)>(.*?)</tr>', shown.text, re.S)
    row_old = re.search(rf'<tr id="ruleset-{old}"([^>]*)>(.*?)</tr>', shown.text, re.S)
    assert "in-force" in row_new.group(1) and "生效中" in row_new.group(2) and "新版" in row_new.group(2)
    assert "in-force" not in row_old.group(1) and "生效中" not in row_old.group(2)
    assert 'id="ruleset-proposals"' in shown.text  # where maker-checker's forms go
    assert 'id="rules-test-form"' not in shown.text and 'id="list-add-form"' not in shown.text  # a reviewer looks only


async def test_the_diff_names_rules_added_removed_and_changed_field_by_field(ctx, admin_client, clock,
                                                                            empty_afterwards):
    a = await rules_in_force([amount("big", 100_000), velocity("burst", 5), amount("gone", 1_000)])
    b = await rules_in_force([amount("big", 50_000, action="review"), velocity("burst", 5),
                              amount("watch", 20_000, status="shadow")])
    me = await logged_in(ctx, admin_client, clock, "risk")
    shown = await admin_client.get(f"/admin/risk/rulesets/diff?a={a}&b={b}")
    assert shown.status_code == 200
    added = re.search(r'id="diff-added">(.*?)</table>', shown.text, re.S).group(1)
    removed = re.search(r'id="diff-removed">(.*?)</table>', shown.text, re.S).group(1)
    changed = re.findall(r'<tr data-rule="([^"]+)" data-field="([^"]+)">.*?class="old">([^<]*)<.*?class="new">([^<]*)<',
                         shown.text, re.S)
    assert "watch" in added and "shadow" in added and "big" not in added
    assert "gone" in removed and "burst" not in removed
    assert sorted(changed) == [("big", "action", "block", "review"), ("big", "max_amount_fen", "100000", "50000")]
    same = await admin_client.get(f"/admin/risk/rulesets/diff?a={b}&b={b}")
    assert 'id="diff-same"' in same.text
    views = [e.data for e in await staff_action("staff.page_view", me.id) if e.data["page"] == "risk.diff"]
    assert views[0]["a"] == str(a) and views[0]["b"] == str(b)


async def test_the_diff_of_an_unknown_version_is_404_and_a_bad_one_400(ctx, admin_client, clock):
    await logged_in(ctx, admin_client, clock, "risk")
    assert (await admin_client.get("/admin/risk/rulesets/diff?a=1&b=2147483000")).status_code == 404
    for query in ("a=x&b=1", "a=1", "a=-1&b=1", "a=99999999999&b=1"):
        assert (await admin_client.get(f"/admin/risk/rulesets/diff?{query}")).status_code == 400, query


# -- rules test --


async def test_a_pasted_candidate_is_replayed_over_recent_decisions(ctx, admin_client, clock):
    reference = "console-" + secrets.token_hex(6)
    await RiskEvent.create(subject="partner_debit", at=utcnow() - timedelta(minutes=30), reference=reference,
                           account_id=900_000_001, amount_fen=8_888_800, category="toll", decision="allow",
                           rule_version=1, reasons=[], counted=True)
    me = await logged_in(ctx, admin_client, clock, "risk")
    csrf = csrf_of(await admin_client.get("/admin/risk"))
    candidate = {"version": 999_999, "rules": [amount("huge", 8_000_000), amount("huge-shadow", 8_000_000,
                                                                                status="shadow")]}
    resp = await admin_client.post("/admin/risk/rules/test", data={"csrf_token": csrf, "rules": json.dumps(candidate),
                                                                   "since": "24h"})
    assert resp.status_code == 200, resp.text
    differences = re.search(r'id="replay-differences">(.*?)</table>', resp.text, re.S).group(1)
    row = re.search(rf"<tr>(?:(?!</tr>).)*{reference}(?:(?!</tr>).)*</tr>", differences, re.S).group(0)
    assert "allow" in row and "block" in row and "huge" in row
    assert int(re.search(r'id="replayed">(\d+)<', resp.text).group(1)) >= 1
    shadow = re.search(r'id="replay-shadow">(.*?)</table>', resp.text, re.S).group(1)
    assert "huge-shadow" in shadow
    block = re.search(r'data-decision="block">.*?class="num candidate">(\d+)<', resp.text, re.S)
    assert int(block.group(1)) >= 1
    assert not await AuditEvent.filter(action="risk.rules.loaded", entity_id="999999").exists()  # nothing in force
    assert "risk.rules_test" in [e.data["page"] for e in await staff_action("staff.page_view", me.id)]


async def test_bad_json_an_invalid_rule_set_and_a_huge_one_are_400(ctx, admin_client, clock):
    await logged_in(ctx, admin_client, clock, "risk")
    csrf = csrf_of(await admin_client.get("/admin/risk"))
    for text, words in (("{not json", "RISK_RULES_INVALID"),
                        (json.dumps({"version": 1, "rules": [{"id": "x", "type": "amount"}]}), "RISK_RULES_INVALID"),
                        (json.dumps({"version": 1, "rules": [amount("a", 1), amount("a", 2)]}), "unique"),
                        ("[" + "1," * 200_000 + "1]", "256 KB"), ("", "RISK_RULES_INVALID")):
        resp = await admin_client.post("/admin/risk/rules/test", data={"csrf_token": csrf, "rules": text, "since": "1h"})
        assert resp.status_code == 400 and words in resp.text, (text[:40], resp.status_code, resp.text[-600:])
    ok = json.dumps({"version": 5, "rules": []})
    bad_since = await admin_client.post("/admin/risk/rules/test", data={"csrf_token": csrf, "rules": ok, "since": "99y"})
    assert bad_since.status_code == 422


# -- shadow hits --


async def test_shadow_rule_hits_are_counted_from_the_recorded_decisions(ctx, admin_client, clock):
    rule = "shadow-" + secrets.token_hex(4)
    for n in range(3):
        await RiskEvent.create(subject="partner_debit", at=utcnow() - timedelta(hours=n + 1), decision="allow",
                               reasons=[{"rule": rule, "type": "amount", "action": "block", "shadow": True},
                                        {"rule": "active-one", "type": "amount", "action": "review", "shadow": False}])
    await RiskEvent.create(subject="partner_debit", at=utcnow() - timedelta(days=30), decision="allow",
                           reasons=[{"rule": rule, "type": "amount", "action": "block", "shadow": True}])  # too old
    await logged_in(ctx, admin_client, clock, "reviewer")
    shown = await admin_client.get("/admin/risk")
    hits = re.search(r'id="shadow-hits">(.*?)</table>', shown.text, re.S).group(1)
    assert re.search(rf"<code>{rule}</code></td><td class=\"num\">3<", hits)
    assert "active-one" not in hits


# -- the lists --


async def test_an_analyst_puts_and_removes_list_values_as_themselves(ctx, admin_client, clock):
    me = await logged_in(ctx, admin_client, clock, "risk")
    csrf = csrf_of(await admin_client.get("/admin/risk"))
    device = "dev-" + secrets.token_hex(6)
    no_reason = await admin_client.post("/admin/risk/lists", data={"csrf_token": csrf, "list": "device", "value": device,
                                                                  "action": "block"})
    assert no_reason.status_code == 422 and not await RiskListEntry.filter(value=device).exists()
    resp = await admin_client.post("/admin/risk/lists", data={"csrf_token": csrf, "list": "device", "value": device,
                                                             "action": "block", "note": "盗刷设备", "expires_in_s": "600",
                                                             "reason": "客户报案"})
    assert resp.status_code == 303 and resp.headers["location"].startswith("/admin/risk?done=")
    entry = await RiskListEntry.get(list="device", value=device)
    assert entry.action == "block" and entry.note == "盗刷设备" and entry.expires_at is not None
    shown = await admin_client.get("/admin/risk")
    assert f'id="entry-{entry.id}"' in shown.text and device in shown.text
    [put] = (await staff_action("risk.list.block", me.id))[:1]
    assert put.entity_id == str(entry.id) and put.data["reason"] == "客户报案" and put.data["value"] == device
    # a card is listed by its blind index: the page never shows the number
    card = "6222021234567890128"  # Luhn-valid
    resp = await admin_client.post("/admin/risk/lists", data={"csrf_token": csrf, "list": "bank_card", "value": card,
                                                             "action": "block", "reason": "冒用"})
    assert resp.status_code == 303
    assert card not in (await admin_client.get("/admin/risk")).text
    assert card not in str([e.data for e in await staff_action("risk.list.block", me.id)])
    bad = await admin_client.post("/admin/risk/lists", data={"csrf_token": csrf, "list": "ip", "value": "not-an-ip",
                                                            "action": "block", "reason": "x"})
    assert bad.status_code == 422
    removed = await admin_client.post(f"/admin/risk/lists/{entry.id}/remove", data={"csrf_token": csrf, "reason": "误报"})
    assert removed.status_code == 303 and not await RiskListEntry.filter(id=entry.id).exists()
    [gone] = await staff_action("risk.list.removed", me.id)
    assert gone.entity_id == str(entry.id) and gone.data["reason"] == "误报"
    again = await admin_client.post(f"/admin/risk/lists/{entry.id}/remove", data={"csrf_token": csrf, "reason": "误报"})
    assert again.status_code == 404
    assert (await admin_client.post(f"/admin/risk/lists/{10**30}/remove",
                                    data={"csrf_token": csrf, "reason": "x"})).status_code == 404
    assert not await AuditEvent.filter(action__startswith="risk.list.", actor="operator", entity_id=str(entry.id)).exists()
    assert (await audit.verify()).ok


# -- refused --


async def test_wrong_roles_are_refused_and_audited(ctx, admin_client, clock):
    viewer = await logged_in(ctx, admin_client, clock, "viewer")
    assert (await admin_client.get("/admin/risk")).status_code == 403
    assert (await admin_client.get("/admin/risk/rulesets/diff?a=1&b=1")).status_code == 403
    assert [e.data["permission"] for e in await staff_action("staff.refused", viewer.id)] == ["risk.view"] * 2
    async with httpx.AsyncClient(base_url=str(admin_client.base_url), timeout=15, trust_env=False, headers=UA) as other:
        reviewer = await logged_in(ctx, other, clock, "reviewer")
        csrf = csrf_of(await other.get("/admin/risk"))
        test = await other.post("/admin/risk/rules/test", data={"csrf_token": csrf, "since": "1h",
                                                               "rules": json.dumps({"version": 1, "rules": []})})
        assert test.status_code == 403
        listed = await other.post("/admin/risk/lists", data={"csrf_token": csrf, "list": "device", "value": "d-x",
                                                            "action": "block", "reason": "x"})
        assert listed.status_code == 403 and not await RiskListEntry.filter(value="d-x").exists()
        assert [e.data["permission"] for e in await staff_action("staff.refused", reviewer.id)] == ["risk.rules",
                                                                                                   "risk.lists"]


async def test_a_form_without_its_csrf_token_is_refused(ctx, admin_client, clock):
    await logged_in(ctx, admin_client, clock, "risk")
    device = "dev-" + secrets.token_hex(6)
    resp = await admin_client.post("/admin/risk/lists", data={"list": "device", "value": device, "action": "block",
                                                             "reason": "x"})
    assert resp.status_code == 403 and "CSRF_REFUSED" in resp.text
    assert not await RiskListEntry.filter(value=device).exists()
    resp = await admin_client.post("/admin/risk/rules/test", data={"rules": "{}", "since": "1h"})
    assert resp.status_code == 403
    resp = await admin_client.post("/admin/risk/lists/1/remove", data={"reason": "x", "csrf_token": "nope"})
    assert resp.status_code == 403
