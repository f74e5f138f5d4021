"""Maker-checker in the console (``/admin/proposals``, ``/admin/queues``, ``/admin/accounts``): over HTTP
with real sessions, each staff member with their own cookies. A freeze is one member's act; lifting it
is proposed by one and applied by another; a held transfer is sent on one reviewer's say at or below the
threshold and on two above it; every action is in the audit chain under the member's id."""

from __future__ import annotations

import asyncio
import contextlib
import re

import pytest

from models.accounts import Account, CardTransfer
from models.audit import AuditEvent
from models.enums import ProposalStatus
from models.partners import PartnerDebit
from models.staff import StaffProposal
from services import audit
from services.accounts import restrictions
from tests.account_helpers import open_account, top_up
from tests.helpers import rules_in_force
from tests.staff_helpers import console


@pytest.fixture
async def stack():
    async with contextlib.AsyncExitStack() as s:
        yield s


def proposal_id(resp) -> int:
    found = re.search(r"/admin/proposals/([0-9]+)", resp.headers.get("location", ""))
    assert found, (resp.status_code, resp.headers, resp.text[:300])
    return int(found.group(1))


async def test_a_freeze_and_its_unfreeze_under_four_eyes(server, ctx, client, sandbox, stack):
    _, _, account = await open_account(client, sandbox, card_balance_fen=10_000)
    operator, risk, viewer = (await console(server, ctx, "operator", stack), await console(server, ctx, "risk", stack),
                              await console(server, ctx, "viewer", stack))
    number = (await Account.get(id=account["id"])).number
    found = await operator.get("/admin/accounts", params={"number": number})
    assert found.status_code == 303 and found.headers["location"] == f"/admin/accounts/{account['id']}"
    page = await operator.get(f"/admin/accounts/{account['id']}")
    assert page.status_code == 200 and number not in page.text and number[-4:] in page.text  # masked

    # a freeze: one member, a reason; without the CSRF token or the role it is refused
    form = {"kind": "judicial", "held_yuan": "50.00", "document": "(2026)京0105执123号", "reason": "法院协助冻结"}
    assert (await operator.post(f"/admin/accounts/{account['id']}/freeze", form, csrf=False)).status_code == 403
    assert (await viewer.post(f"/admin/accounts/{account['id']}/freeze", form)).status_code == 403
    assert await AuditEvent.filter(action="staff.refused", actor=viewer.actor).exists()
    bad = await operator.post(f"/admin/accounts/{account['id']}/freeze", {**form, "held_yuan": "1.234"})
    assert bad.status_code == 422 and "两位小数" in bad.text
    done = await operator.post(f"/admin/accounts/{account['id']}/freeze", form)
    assert done.status_code == 303, done.text[:300]
    frozen = await Account.get(id=account["id"])
    assert frozen.status == "restricted"
    held = (await restrictions.in_force([account["id"]]))[account["id"]][0]
    assert (held.held_fen, held.document_ref, held.set_by) == (5_000, "(2026)京0105执123号", operator.actor)

    # lifting it: proposed by the operator, refused as their own, applied by the risk analyst
    unfreeze = {"action": "account.unfreeze", "account_id": str(account["id"]), "kind": "judicial",
                "document": "(2026)京0105执123号", "reason": "法院解除冻结通知"}
    proposed = await operator.post("/admin/proposals", unfreeze)
    pid = proposal_id(proposed)
    again = await operator.post("/admin/proposals", unfreeze)
    assert again.status_code == 409 and "待处理" in again.text
    listed = await risk.get("/admin/proposals")
    assert listed.status_code == 200 and f'data-proposal="{pid}"' in listed.text
    shown = await risk.get(f"/admin/proposals/{pid}")
    assert shown.status_code == 200 and "解除账户" in shown.text and "司法冻结" in shown.text
    own = await operator.post(f"/admin/proposals/{pid}/approve", {"note": ""})
    assert own.status_code == 403 and "另一位" in own.text
    assert (await Account.get(id=account["id"])).status == "restricted"
    approved = await risk.post(f"/admin/proposals/{pid}/approve", {"note": "已核对法院文书"})
    assert approved.status_code == 200 and "已生效" in approved.text, approved.text[:500]
    assert (await Account.get(id=account["id"])).status == "active"
    row = await StaffProposal.get(id=pid)
    assert row.status == ProposalStatus.APPLIED and row.decided_by_id == risk.creds.id
    assert f'data-proposal="{pid}"' not in (await risk.get("/admin/proposals")).text  # no longer pending
    assert f'data-proposal="{pid}"' in (await risk.get("/admin/proposals", params={"status": "all"})).text

    # every console action is in the chain with the member's id, role, IP and user agent
    for actor, action in ((operator.actor, "staff.account_frozen"), (operator.actor, "proposal.proposed"),
                          (operator.actor, "proposal.own_approval_refused"), (risk.actor, "proposal.approved"),
                          (risk.actor, "account.restriction.lifted")):
        event = await AuditEvent.filter(actor=actor, action=action).order_by("-seq").first()
        assert event is not None, (actor, action)
    frozen_event = await AuditEvent.filter(actor=operator.actor, action="staff.account_frozen").first()
    assert frozen_event.data["reason"] == "法院协助冻结" and frozen_event.data["user_agent"] == "console-test/operator"
    assert frozen_event.data["role"] == "operator" and frozen_event.data["ip"]
    assert (await audit.verify()).ok


async def test_two_approvals_racing_in_the_console_apply_once(server, ctx, client, sandbox, stack):
    _, _, account = await open_account(client, sandbox, card_balance_fen=10_000)
    await restrictions.freeze(account["id"], kind="fraud", reason="疑似电信诈骗", operator_name="张三")
    operator = await console(server, ctx, "operator", stack)
    checkers = [await console(server, ctx, "risk", stack) for _ in range(3)]
    pid = proposal_id(await operator.post("/admin/proposals", {
        "action": "account.unfreeze", "account_id": str(account["id"]), "kind": "fraud", "reason": "核实为本人交易"}))
    answers = await asyncio.gather(*(c.post(f"/admin/proposals/{pid}/approve", {"note": ""}) for c in checkers))
    assert sorted(a.status_code for a in answers) == [200, 409, 409], [a.text[:200] for a in answers]
    assert await AuditEvent.filter(action="account.restriction.lifted", entity_id=str(account["id"])).count() == 1


async def test_the_queue_sends_a_held_transfer_on_one_or_two_reviewers_say(server, ctx, client, sandbox, stack,
                                                                           monkeypatch):
    user, _, account = await open_account(client, sandbox, card_balance_fen=100_000)
    await rules_in_force([{"id": "hold-all-top-ups", "type": "amount", "status": "active", "action": "review",
                           "applies_to": ["top_up"], "max_amount_fen": 0}])
    try:
        small, large, third = [await top_up(client, user, account["id"], n) for n in (300, 900, 400)]
    finally:
        await rules_in_force([])
    assert [a.status_code for a in (small, large, third)] == [202] * 3
    services = server.app.ctx.services
    monkeypatch.setattr(services, "settings", services.settings.replace(admin_four_eyes_above_fen=500))
    first, second = await console(server, ctx, "reviewer", stack), await console(server, ctx, "reviewer", stack)
    queue = await first.get("/admin/queues")
    assert queue.status_code == 200 and "hold-all-top-ups" in queue.text and f'data-transfer="{small.json()["id"]}"' in queue.text
    approve = {"action": "transfer.approve", "reason": "客户来电确认"}
    at_once = await first.post("/admin/proposals", {**approve, "transfer_id": str(small.json()["id"])})
    assert at_once.status_code == 200 and "已生效" in at_once.text
    assert (await CardTransfer.get(id=small.json()["id"])).status == "succeeded"
    pid = proposal_id(await first.post("/admin/proposals", {**approve, "transfer_id": str(large.json()["id"])}))
    assert (await CardTransfer.get(id=large.json()["id"])).status == "held"
    assert (await second.post(f"/admin/proposals/{pid}/approve", {"note": "双人复核"})).status_code == 200
    assert (await CardTransfer.get(id=large.json()["id"])).status == "succeeded"
    rejected = await second.post(f"/admin/queues/transfers/{third.json()['id']}/reject", {"reason": "风险较高，拒绝"})
    assert rejected.status_code == 303
    assert (await CardTransfer.get(id=third.json()["id"])).status == "declined"
    assert (await second.post(f"/admin/queues/transfers/{third.json()['id']}/reject",
                              {"reason": "风险较高，拒绝"})).status_code == 409
    assert (await second.post("/admin/queues/transfers/99999999/reject", {"reason": "风险较高"})).status_code == 404
    assert await AuditEvent.filter(action="staff.transfer_rejected", actor=second.actor).exists()
    assert (await Account.get(id=account["id"])).balance_fen == 1_200


async def test_a_refused_debit_gets_one_verdict(server, ctx, client, sandbox, stack):
    from tests.partner_helpers import bound_car, call, debit_body, new_partner

    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    await rules_in_force([{"id": "no-fuel-over-1", "type": "amount", "status": "active", "action": "block",
                           "applies_to": ["partner_debit"], "max_amount_fen": 1}])
    try:
        refused = await call(client, partner, "POST", "/open/v1/debits", debit_body(car, 500))
    finally:
        await rules_in_force([])
    assert refused.status_code in (402, 403, 409, 422), refused.text
    debit = await PartnerDebit.filter(status="refused").order_by("-id").first()
    reviewer, viewer = await console(server, ctx, "reviewer", stack), await console(server, ctx, "viewer", stack)
    assert "no-fuel-over-1" in (await reviewer.get("/admin/queues")).text
    assert (await viewer.get("/admin/queues")).status_code == 403
    review = {"verdict": "false_positive", "reason": "阈值过低，误拦截"}
    assert (await reviewer.post(f"/admin/queues/debits/{debit.id}/review", {**review, "verdict": "maybe"})).status_code == 422
    assert (await reviewer.post(f"/admin/queues/debits/{debit.id}/review", review)).status_code == 303
    assert (await reviewer.post(f"/admin/queues/debits/{debit.id}/review", review)).status_code == 409
    row = await PartnerDebit.get(id=debit.id)
    assert (row.review_verdict, row.reviewed_by) == ("false_positive", reviewer.actor)
    assert f'data-debit="{debit.id}"' not in (await reviewer.get("/admin/queues")).text


async def test_proposal_forms_refuse_bad_input_without_writing(server, ctx, stack):
    operator = await console(server, ctx, "operator", stack)
    before = await StaffProposal.all().count()
    for form in ({"action": "account.unfreeze", "account_id": "abc", "kind": "fraud", "reason": "原因四个字"},
                 {"action": "account.unfreeze", "account_id": "1", "kind": "fraud", "reason": "短"},
                 {"action": "no.such.action", "reason": "原因四个字"},
                 {"action": "account.unfreeze", "account_id": "999999999999", "kind": "fraud", "reason": "原因四个字"},
                 {"reason": "原因四个字"}):
        answer = await operator.post("/admin/proposals", form)
        assert 400 <= answer.status_code < 500, (form, answer.status_code)
    assert (await operator.get("/admin/proposals/99999999")).status_code == 404
    assert (await operator.get("/admin/proposals", params={"status": "bogus"})).status_code == 422
    assert await StaffProposal.all().count() == before


async def test_a_secret_rotation_from_its_form_shows_the_new_secret_once_to_the_approver(server, ctx, stack):
    from tests.partner_helpers import new_partner

    partner = await new_partner(ctx)
    operator, admin = await console(server, ctx, "operator", stack), await console(server, ctx, "admin", stack)
    form = await operator.get("/admin/proposals/new", params={"action": "partner.rotate_secret", "app_id": partner.app_id})
    assert form.status_code == 200 and f'value="{partner.app_id}"' in form.text and 'name="grace_s"' in form.text
    assert (await operator.get("/admin/proposals/new", params={"action": "bogus"})).status_code == 422
    pid = proposal_id(await operator.post("/admin/proposals", {"action": "partner.rotate_secret",
                                                               "app_id": partner.app_id, "grace_s": "600",
                                                               "reason": "密钥疑似泄露"}))
    done = await admin.post(f"/admin/proposals/{pid}/approve", {"note": ""})
    secret = re.search(r'id="shown-secret">(sk_[^<]+)<', done.text)
    assert done.status_code == 200 and secret, done.text[:500]
    assert done.headers["cache-control"] == "no-store"
    for later in (await admin.get(f"/admin/proposals/{pid}"), await operator.get(f"/admin/proposals/{pid}")):
        assert secret.group(1) not in later.text
    assert secret.group(1) not in str((await StaffProposal.get(id=pid)).result)


async def test_a_refund_from_the_payments_page_needs_four_eyes_above_the_threshold(server, ctx, client, sandbox, stack,
                                                                                   monkeypatch):
    from models.payments import PaymentOrder, PaymentRefund
    from tests.payment_helpers import paid_device_fee, wait_refund

    _, order = await paid_device_fee(client, sandbox, ctx)
    services = server.app.ctx.services
    monkeypatch.setattr(services, "settings", services.settings.replace(admin_four_eyes_above_fen=500))
    operator, second = await console(server, ctx, "operator", stack), await console(server, ctx, "operator", stack)
    listed = await operator.get("/admin/payments")
    link = f"/admin/proposals/new?action=payment.refund&amp;order_id={order['id']}"
    assert listed.status_code == 200 and link in listed.text
    refund = {"action": "payment.refund", "order_id": str(order["id"]), "reason": "客户申请退还设备费"}
    small = await operator.post("/admin/proposals", {**refund, "amount_fen": "300"})
    assert small.status_code == 200 and "已生效" in small.text, small.text[:300]
    made = await PaymentRefund.filter(order_id=order["id"]).order_by("-id").first()
    assert made.amount_fen == 300 and (await wait_refund(made.id)).status == "success"
    pid = proposal_id(await operator.post("/admin/proposals", {**refund, "amount_fen": "600"}))
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == 300
    assert (await second.post(f"/admin/proposals/{pid}/approve", {"note": ""})).status_code == 200
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == 900
    too_much = await operator.post("/admin/proposals", {**refund, "amount_fen": "999999"})
    assert too_much.status_code == 422 and "最多还可退" in too_much.text
