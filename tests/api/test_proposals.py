"""Maker-checker (``services.staff.proposals``): a sensitive action is a proposal with its exact parameters
and reason, applied only when a different staff member with the role approves it; a proposer cannot
approve their own; it expires; a duplicate pending one is refused; two approvals racing apply once; the
command line proposes and approves as named staff, and its break-glass flag is audited loudly."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta

import pytest

from core.errors import AppError
from models.accounts import Account, AccountRestriction, CardTransfer
from models.audit import AuditEvent
from models.enums import ProposalStatus
from models.partners import Partner
from models.staff import Staff, StaffProposal
from services import audit
from services.accounts import restrictions
from services.staff import proposals
from services.staff.actions import Applied
from services.staff.sessions import Client, Current
from tests.account_helpers import ledger_is_consistent, open_account, top_up
from tests.helpers import rules_in_force
from tests.partner_helpers import new_partner
from tests.payment_helpers import run_cli
from tests.staff_helpers import new_staff

CLIENT = Client(ip="203.0.113.9", user_agent="pytest")


async def member(ctx, role: str) -> Current:
    creds = await new_staff(ctx, role)
    return Current(None, await Staff.get(id=creds.id))


async def frozen_account(client, sandbox) -> int:
    _, _, account = await open_account(client, sandbox, card_balance_fen=10_000)
    await restrictions.freeze(account["id"], kind="fraud", reason="疑似电信诈骗", operator_name="张三")
    return account["id"]


def unfreeze(account_id: int) -> dict:
    return {"account_id": account_id, "kind": "fraud"}


async def refused(awaitable, status: int, code: str) -> None:
    with pytest.raises(AppError) as caught:
        await awaitable
    assert (caught.value.status, caught.value.code) == (status, code), caught.value


async def test_an_unfreeze_takes_effect_only_when_a_different_member_with_the_role_approves(client, sandbox, ctx):
    account_id = await frozen_account(client, sandbox)
    maker, checker, viewer = await member(ctx, "operator"), await member(ctx, "risk"), await member(ctx, "viewer")
    proposal = await proposals.propose(ctx, maker, CLIENT, "account.unfreeze", unfreeze(account_id), "核实为本人交易")
    assert proposal.status == ProposalStatus.PENDING
    assert proposal.params == {"account_id": account_id, "kind": "fraud", "document": None}
    assert "欺诈冻结" in proposal.summary
    assert (await Account.get(id=account_id)).status == "restricted"  # nothing happened yet

    await refused(proposals.approve(ctx, maker, CLIENT, proposal.id), 403, "OWN_PROPOSAL")
    await refused(proposals.approve(ctx, viewer, CLIENT, proposal.id), 403, "ROLE_NOT_ALLOWED")
    assert (await StaffProposal.get(id=proposal.id)).status == ProposalStatus.PENDING
    assert (await Account.get(id=account_id)).status == "restricted"

    outcome = await proposals.approve(ctx, checker, CLIENT, proposal.id, "客户已到柜面核实")
    assert outcome.error is None and outcome.proposal.status == ProposalStatus.APPLIED
    assert outcome.proposal.decided_by_id == checker.staff.id and outcome.proposal.result["status"] == "active"
    assert (await Account.get(id=account_id)).status == "active"
    lifted = await AccountRestriction.get(account_id=account_id)
    assert lifted.lifted_by == checker.actor and lifted.lift_reason == "核实为本人交易"

    # every step in the chain with the member's id, role and client
    made = await AuditEvent.get(action="proposal.proposed", entity_id=str(proposal.id))
    assert made.actor == maker.actor and made.data["reason"] == "核实为本人交易" and made.data["ip"] == CLIENT.ip
    assert (await AuditEvent.get(action="proposal.own_approval_refused", entity_id=str(proposal.id))).actor == maker.actor
    assert await AuditEvent.filter(action="staff.refused", actor=viewer.actor).exists()
    approved = await AuditEvent.get(action="proposal.approved", entity_id=str(proposal.id))
    assert approved.actor == checker.actor and approved.data["proposed_by"] == maker.actor
    assert approved.data["role"] == "risk" and approved.data["via"] == "cli"
    assert await AuditEvent.filter(action="account.restriction.lifted", entity_id=str(account_id),
                                   actor=checker.actor).count() == 1
    assert await AuditEvent.filter(action="proposal.applied", entity_id=str(proposal.id)).exists()
    assert (await audit.verify()).ok


async def test_a_duplicate_pending_proposal_is_refused_and_a_rejected_one_frees_the_way(client, sandbox, ctx):
    account_id = await frozen_account(client, sandbox)
    maker, other, checker = await member(ctx, "operator"), await member(ctx, "operator"), await member(ctx, "risk")
    first = await proposals.propose(ctx, maker, CLIENT, "account.unfreeze", unfreeze(account_id), "核实为本人交易")
    # the same action with the same parameters, by anyone, while one is pending
    await refused(proposals.propose(ctx, other, CLIENT, "account.unfreeze", unfreeze(account_id), "另一个原因"),
                  409, "PROPOSAL_DUPLICATE")
    await refused(proposals.reject(ctx, checker, CLIENT, first.id, "x"), 422, "VALIDATION_ERROR")  # a reason
    rejected = await proposals.reject(ctx, checker, CLIENT, first.id, "证据不足，暂不解冻")
    assert rejected.status == ProposalStatus.REJECTED and rejected.pending_key is None
    await refused(proposals.approve(ctx, checker, CLIENT, first.id), 409, "PROPOSAL_NOT_PENDING")
    assert (await Account.get(id=account_id)).status == "restricted"
    second = await proposals.propose(ctx, other, CLIENT, "account.unfreeze", unfreeze(account_id), "补充材料后再次申请")
    assert second.status == ProposalStatus.PENDING
    # bad parameters never become a proposal
    await refused(proposals.propose(ctx, maker, CLIENT, "account.unfreeze", {"account_id": account_id, "kind": "x"},
                                    "原因四个字"), 422, "VALIDATION_ERROR")
    await refused(proposals.propose(ctx, maker, CLIENT, "account.unfreeze", {"account_id": 2**63, "kind": "fraud"},
                                    "原因四个字"), 422, "VALIDATION_ERROR")
    await refused(proposals.propose(ctx, maker, CLIENT, "account.unfreeze", {"account_id": account_id,
                                                                             "kind": "judicial"}, "原因四个字"),
                  409, "RESTRICTION_NOT_IN_FORCE")
    await refused(proposals.propose(ctx, maker, CLIENT, "no.such", {}, "原因四个字"), 422, "VALIDATION_ERROR")
    assert await StaffProposal.filter(proposed_by_id=maker.staff.id).count() == 1


async def test_a_proposal_expires(client, sandbox, ctx, monkeypatch):
    account_id = await frozen_account(client, sandbox)
    maker, checker = await member(ctx, "operator"), await member(ctx, "risk")
    proposal = await proposals.propose(ctx, maker, CLIENT, "account.unfreeze", unfreeze(account_id), "核实为本人交易")
    later = proposal.expires_at + timedelta(seconds=1)
    monkeypatch.setattr("services.staff.proposals.utcnow", lambda: later)
    await refused(proposals.approve(ctx, checker, CLIENT, proposal.id), 409, "PROPOSAL_EXPIRED")
    expired = await StaffProposal.get(id=proposal.id)
    assert expired.status == ProposalStatus.EXPIRED and expired.pending_key is None
    assert (await Account.get(id=account_id)).status == "restricted"
    # a new one may be made; the worker's job expires what is due
    again = await proposals.propose(ctx, maker, CLIENT, "account.unfreeze", unfreeze(account_id), "核实为本人交易")
    monkeypatch.setattr("services.staff.proposals.utcnow", lambda: again.expires_at)
    assert await proposals.expire_due() >= 1
    assert (await StaffProposal.get(id=again.id)).status == ProposalStatus.EXPIRED
    assert await AuditEvent.filter(action="proposal.expired", entity_id=str(again.id), actor="system").exists()


async def test_two_approvals_racing_apply_once(client, sandbox, ctx):
    account_id = await frozen_account(client, sandbox)
    maker = await member(ctx, "operator")
    checkers = [await member(ctx, "risk") for _ in range(4)]
    proposal = await proposals.propose(ctx, maker, CLIENT, "account.unfreeze", unfreeze(account_id), "核实为本人交易")
    answers = await asyncio.gather(*(proposals.approve(ctx, c, CLIENT, proposal.id) for c in checkers),
                                   return_exceptions=True)
    done = [a for a in answers if not isinstance(a, BaseException)]
    lost = [a for a in answers if isinstance(a, BaseException)]
    assert len(done) == 1 and done[0].proposal.status == ProposalStatus.APPLIED, answers
    assert all(isinstance(e, AppError) and e.code == "PROPOSAL_NOT_PENDING" for e in lost), lost
    assert await AuditEvent.filter(action="account.restriction.lifted", entity_id=str(account_id)).count() == 1
    assert await AuditEvent.filter(action="proposal.approved", entity_id=str(proposal.id)).count() == 1
    assert (await audit.verify()).ok


async def test_a_held_transfer_needs_four_eyes_above_the_threshold_only(client, sandbox, ctx):
    from services.staff import queues

    user, _, account = await open_account(client, sandbox, card_balance_fen=100_000)
    await rules_in_force([{"id": "hold-all-top-ups", "type": "amount", "status": "active", "action": "review",
                           "applies_to": ["top_up"], "max_amount_fen": 0}])
    try:
        small = await top_up(client, user, account["id"], 300)
        large = await top_up(client, user, account["id"], 900)
        third = await top_up(client, user, account["id"], 700)
    finally:
        await rules_in_force([])
    assert [a.status_code for a in (small, large, third)] == [202] * 3, [a.text for a in (small, large, third)]
    strict = dataclasses.replace(ctx, settings=ctx.settings.replace(admin_four_eyes_above_fen=500))
    reviewer, second = await member(ctx, "reviewer"), await member(ctx, "reviewer")
    # at or below the threshold one reviewer's approval sends it
    at_once = await proposals.act(strict, reviewer, CLIENT, "transfer.approve", {"transfer_id": small.json()["id"]},
                                  "客户来电确认")
    assert isinstance(at_once, Applied) and at_once.result["status"] == "succeeded"
    assert await AuditEvent.filter(action="staff.action", actor=reviewer.actor).exists()
    # above it: a proposal; the same reviewer cannot finish it; a second one does
    proposal = await proposals.act(strict, reviewer, CLIENT, "transfer.approve", {"transfer_id": large.json()["id"]},
                                   "客户来电确认")
    assert isinstance(proposal, StaffProposal) and proposal.params["amount_fen"] == 900
    assert (await CardTransfer.get(id=large.json()["id"])).status == "held"
    await refused(proposals.approve(strict, reviewer, CLIENT, proposal.id), 403, "OWN_PROPOSAL")
    outcome = await proposals.approve(strict, second, CLIENT, proposal.id)
    assert outcome.proposal.status == ProposalStatus.APPLIED
    assert (await CardTransfer.get(id=large.json()["id"])).status == "succeeded"
    # approved, but rejected by a reviewer in between: the proposal fails with the reason, nothing is sent
    pending = await proposals.act(strict, reviewer, CLIENT, "transfer.approve", {"transfer_id": third.json()["id"]},
                                  "客户来电确认")
    await queues.reject_held(strict, second, CLIENT, third.json()["id"], "风险较高，拒绝")
    outcome = await proposals.approve(strict, second, CLIENT, pending.id)
    assert outcome.proposal.status == ProposalStatus.FAILED and outcome.error.code == "TRANSFER_NOT_HELD"
    assert (await CardTransfer.get(id=third.json()["id"])).status == "declined"
    assert (await Account.get(id=account["id"])).balance_fen == 1_200
    assert await ledger_is_consistent() == []


async def test_a_partner_secret_rotation_shows_the_secret_once_and_stores_none(ctx):
    partner = await new_partner(ctx)
    maker, checker = await member(ctx, "operator"), await member(ctx, "admin")
    proposal = await proposals.propose(ctx, maker, CLIENT, "partner.rotate_secret",
                                       {"app_id": partner.app_id, "grace_s": 60}, "密钥疑似泄露")
    before = (await Partner.get(app_id=partner.app_id)).secret_enc
    assert (await Partner.get(app_id=partner.app_id)).secret_enc == before
    outcome = await proposals.approve(ctx, checker, CLIENT, proposal.id)
    secret = outcome.applied.shown_once["secret"]
    assert secret.startswith("sk_") and (await Partner.get(app_id=partner.app_id)).secret_enc != before
    stored = await StaffProposal.get(id=proposal.id)
    assert secret not in json.dumps(stored.result) and secret not in json.dumps(stored.params)
    events = await AuditEvent.filter(entity_id__in=[str(proposal.id), partner.app_id]).all()
    assert all(secret not in json.dumps(e.data) for e in events)
    assert any(e.action == "partner.secret_rotated" and e.actor == checker.actor for e in events)


async def test_a_partners_scopes_and_a_rule_set_change_only_through_a_second_member(ctx):
    from services.risk import rules

    partner = await new_partner(ctx)
    operator, admin = await member(ctx, "operator"), await member(ctx, "admin")
    scoped = await proposals.propose(ctx, operator, CLIENT, "partner.scopes",
                                     {"app_id": partner.app_id, "scopes": "etc:read,etc:debit"}, "开通只读权限")
    assert scoped.params["scopes"] == ["etc:debit", "etc:read"]
    await proposals.approve(ctx, admin, CLIENT, scoped.id)
    assert (await Partner.get(app_id=partner.app_id)).scopes == ["etc:debit", "etc:read"]

    analyst, second = await member(ctx, "risk"), await member(ctx, "risk")
    newest = await rules.newest_version() or 0
    stale = {"version": max(newest, 1), "rules": []}
    await refused(proposals.propose(ctx, analyst, CLIENT, "risk.rules", {"rule_set": stale}, "规则更新"), 409,
                  "RISK_RULES_STALE")
    proposal = await proposals.propose(ctx, analyst, CLIENT, "risk.rules",
                                       {"rule_set": {"version": newest + 1, "rules": []}}, "规则更新")
    assert await rules.newest_version() == newest  # not in force yet
    await refused(proposals.approve(ctx, operator, CLIENT, proposal.id), 403, "ROLE_NOT_ALLOWED")
    await proposals.approve(ctx, second, CLIENT, proposal.id)
    assert await rules.newest_version() == newest + 1


async def test_the_command_line_proposes_and_approves_as_named_staff_and_break_glass_is_loud(client, sandbox, ctx,
                                                                                           settings):
    maker, checker = await new_staff(ctx, "operator"), await new_staff(ctx, "risk")
    account_id = await frozen_account(client, sandbox)
    proposed = await run_cli(settings, "account", "unfreeze", str(account_id), "--kind", "fraud",
                             "--reason", "核实为本人交易", "--as", maker.username)
    assert proposed.returncode == 0, proposed.stderr
    made = json.loads(proposed.stdout)
    assert made["status"] == "pending" and "proposal approve" in made["next"]
    assert (await Account.get(id=account_id)).status == "restricted"
    own = await run_cli(settings, "proposal", "approve", str(made["proposal_id"]), "--as", maker.username)
    assert own.returncode == 2 and "OWN_PROPOSAL" in own.stderr
    listed = json.loads((await run_cli(settings, "proposal", "list")).stdout)
    assert made["proposal_id"] in [p["proposal_id"] for p in listed]
    approved = await run_cli(settings, "proposal", "approve", str(made["proposal_id"]), "--as", checker.username)
    assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "applied", approved.stderr
    assert (await Account.get(id=account_id)).status == "active"
    # without --as the command does not run; an unknown member is refused
    assert (await run_cli(settings, "account", "unfreeze", str(account_id), "--kind", "fraud",
                          "--reason", "核实为本人交易")).returncode == 2
    unknown = await run_cli(settings, "account", "unfreeze", str(account_id), "--kind", "fraud",
                            "--reason", "核实为本人交易", "--as", "nobody-here")
    assert unknown.returncode == 1 and "STAFF_NOT_FOUND" in unknown.stderr
    # break glass: applied at once by one member, and loudly audited
    await restrictions.freeze(account_id, kind="fraud", reason="再次可疑", operator_name="张三")
    glass = await run_cli(settings, "account", "unfreeze", str(account_id), "--kind", "fraud",
                          "--reason", "夜间紧急解冻，次日补复核", "--as", maker.username, "--break-glass")
    assert glass.returncode == 0 and json.loads(glass.stdout)["break_glass"] is True, glass.stderr
    assert "BREAK GLASS" in glass.stderr
    assert (await Account.get(id=account_id)).status == "active"
    loud = await AuditEvent.filter(action="staff.break_glass", actor=f"staff:{maker.id}").order_by("-seq").first()
    assert loud.data["action"] == "account.unfreeze" and loud.data["reason"] == "夜间紧急解冻，次日补复核"
    assert loud.data["via"] == "cli" and loud.data["user_agent"].startswith("python -m app")
    assert (await audit.verify()).ok
