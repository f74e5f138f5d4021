"""Maker-checker: one service for every sensitive staff action.

A sensitive action (``services.staff.actions.ACTIONS``: unfreezing an account, approving a held transfer
or refunding above ``ADMIN_FOUR_EYES_ABOVE_FEN``, putting a risk rule set in force, changing a partner's
scopes, rotating a partner's secret, revealing personal data beyond the daily allowance) is stored as a
proposal with its exact parameters and reason. It takes effect only when a different member whose role
holds the action's approving permission approves it:

- a proposer cannot approve their own proposal (403, audited);
- a proposal expires ``ADMIN_PROPOSAL_TTL_S`` after it was made (the worker's ``staff.proposals`` job
  marks it; an approval of an expired one is refused and marks it there and then);
- a second pending proposal of the same action with the same parameters is refused (409): the database
  holds the pending one's digest in a unique column;
- two approvals racing: the first to lock the row moves it ``pending → approved`` and applies it; the
  second finds it no longer pending (409). The action runs once.

The approval is claimed in one transaction and the action applied after it, through the action's own
service (which moves money in its own retryable transaction, as it does for every other caller); the
outcome is recorded as ``applied`` or ``failed`` with what the action answered. Every step is an audit
event naming the staff member, their role, IP, user agent and the reason.

The command line proposes and approves as a named member (``--as USERNAME``) through this same service;
``break_glass`` applies an action at once without a second person, for an emergency, and is audited
loudly (``staff.break_glass``, and a warning in the log).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from core.clock import utcnow
from core.errors import AppError, Conflict, Forbidden, NotFound, ValidationFailed
from models.enums import ProposalStatus as P
from models.staff import StaffProposal
from services.context import ServiceContext
from services.db import atomic
from services.idempotency import fingerprint
from services.staff import fields, permissions
from services.staff.actions import ACTIONS, Action, Applied
from services.staff.sessions import Client, Current, record, staff_data
from services.state_machine import Machine, transition

log = logging.getLogger(__name__)

MACHINE = Machine(
    entity="proposal",
    allowed={
        P.PENDING: frozenset({P.APPROVED, P.REJECTED, P.EXPIRED}),
        P.APPROVED: frozenset({P.APPLIED, P.FAILED}),
    },
    milestones={P.APPROVED: "decided_at", P.REJECTED: "decided_at", P.APPLIED: "applied_at", P.FAILED: "applied_at"},
)


class ProposalNotFound(NotFound):
    code, message = "PROPOSAL_NOT_FOUND", "复核申请不存在"


class ProposalDuplicate(Conflict):
    code, message = "PROPOSAL_DUPLICATE", "已有一项相同的复核申请待处理"


class ProposalNotPending(Conflict):
    code, message = "PROPOSAL_NOT_PENDING", "该复核申请已处理"


class ProposalExpired(Conflict):
    code, message = "PROPOSAL_EXPIRED", "该复核申请已过期"


class OwnProposal(Forbidden):
    code, message = "OWN_PROPOSAL", "不能复核自己提交的申请，须由另一位有权限的员工复核"


class ActionNotAllowed(Forbidden):
    code, message = "ROLE_NOT_ALLOWED", "您的角色无权执行此操作"


@dataclass(frozen=True)
class Outcome:
    proposal: StaffProposal
    applied: Applied | None = None  # what the action answered, when it ran (shown_once: for this answer only)
    error: AppError | None = None  # the action's refusal, when it was approved but failed


def reason_of(text: str, field: str = "reason") -> str:
    return fields.reason(text, field=field)


def _action(name: str) -> Action:
    if name not in ACTIONS:
        raise ValidationFailed("未知的操作", field="action")
    return ACTIONS[name]


async def _allowed(me: Current, client: Client, permission: str) -> None:
    if not permissions.allows(me.staff.role, permission):
        await atomic(lambda conn: record(conn, me, client, "staff.refused", entity_type="staff",
                                         entity_id=me.staff.id, permission=permission))
        raise ActionNotAllowed()


def needs_second(ctx: ServiceContext, action: Action, params: dict) -> bool:
    return action.four_eyes(ctx.settings, params)


async def propose(ctx: ServiceContext, me: Current, client: Client, action_name: str, params: dict,
                  reason: str) -> StaffProposal:
    """Store a proposal of ``action_name`` with ``params`` (checked and normalised by the action) for a
    second member to approve. 409 when the same one is pending already."""
    action, reason, params, summary = await _checked(ctx, me, client, action_name, params, reason)
    return await _store(ctx, me, client, action, params, summary, reason)


async def _checked(ctx: ServiceContext, me: Current, client: Client, action_name: str, params: dict,
                   reason: str) -> tuple[Action, str, dict, str]:
    """The action, the reason, and the parameters as the action normalises them with their summary: the
    member's permission first (a refused member learns nothing of the parameters)."""
    action, reason = _action(action_name), reason_of(reason)
    await _allowed(me, client, action.propose)
    params, summary = await action.parse(ctx, params)
    return action, reason, params, summary


async def _store(ctx: ServiceContext, me: Current, client: Client, action: Action, params: dict, summary: str,
                 reason: str) -> StaffProposal:
    key = fingerprint({"action": action.name, "params": params})
    now = utcnow()

    async def work(conn: BaseDBAsyncClient) -> StaffProposal:
        # a pending one past its time no longer blocks a new one
        stale = await StaffProposal.filter(pending_key=key, status=P.PENDING, expires_at__lte=now).using_db(conn) \
            .select_for_update().first()
        if stale is not None:
            await _expire(conn, stale)
        try:
            row = await StaffProposal.create(
                action=action.name, params=params, summary=summary[:200], reason=reason, pending_key=key,
                proposed_by_id=me.staff.id, proposed_at=now,
                expires_at=now + timedelta(seconds=ctx.settings.admin_proposal_ttl_s), using_db=conn)
        except IntegrityError:
            raise ProposalDuplicate() from None
        await record(conn, me, client, "proposal.proposed", entity_type="proposal", entity_id=row.id, reason=reason,
                     action=action.name, params=params, summary=row.summary)
        return row

    return await atomic(work)


async def _expire(conn: BaseDBAsyncClient, row: StaffProposal) -> None:
    await transition(conn, MACHINE, StaffProposal, row.id, P.EXPIRED, actor="system", reason="not approved in time",
                     locked=row, updates={"pending_key": None}, audit_data={"action": row.action})


async def _locked_pending(conn: BaseDBAsyncClient, proposal_id: int) -> StaffProposal:
    row = await StaffProposal.filter(id=proposal_id).select_for_update().using_db(conn).first()
    if row is None:
        raise ProposalNotFound()
    if row.status != P.PENDING:
        raise ProposalNotPending()
    return row


async def approve(ctx: ServiceContext, me: Current, client: Client, proposal_id: int, note: str = "") -> Outcome:
    """The second person's yes: checked, claimed (``approved``) in one transaction, then applied."""
    note = (note or "").strip()[:200]
    row = await StaffProposal.get_or_none(id=proposal_id)
    if row is None:
        raise ProposalNotFound()
    action = _action(row.action)
    if row.proposed_by_id == me.staff.id:
        await atomic(lambda conn: record(conn, me, client, "proposal.own_approval_refused", entity_type="proposal",
                                         entity_id=row.id, action=row.action))
        raise OwnProposal()
    await _allowed(me, client, action.approve)

    async def claim(conn: BaseDBAsyncClient) -> StaffProposal | None:
        locked = await _locked_pending(conn, proposal_id)
        if utcnow() >= locked.expires_at:
            await _expire(conn, locked)
            return None
        moved = await transition(conn, MACHINE, StaffProposal, locked.id, P.APPROVED, actor=me.actor,
                                 reason=note, locked=locked,
                                 updates={"pending_key": None, "decided_by_id": me.staff.id, "decision_note": note},
                                 audit_data={"action": locked.action, "proposed_by": f"staff:{locked.proposed_by_id}",
                                             **staff_data(me, client)})
        return moved.obj

    claimed = await atomic(claim)
    if claimed is None:
        raise ProposalExpired()
    return await _apply(ctx, claimed, action, me, client)


async def _apply(ctx: ServiceContext, row: StaffProposal, action: Action, me: Current, client: Client) -> Outcome:
    try:
        applied = await action.apply(ctx, row.params, me, client, row.reason, row.id)
    except AppError as exc:
        failed = {"error": exc.code, "message": exc.message[:200]}
        return Outcome(await _finish(row, me, P.FAILED, failed, exc.code), error=exc)
    return Outcome(await _finish(row, me, P.APPLIED, applied.result, "applied"), applied=applied)


async def _finish(row: StaffProposal, me: Current, to: P, result: dict, reason: str) -> StaffProposal:
    """Record what the approved action answered: ``applied`` with its result, or ``failed`` with its refusal."""
    data = {"action": row.action, **(result if to == P.FAILED else {"result": result})}
    moved = await atomic(lambda conn: transition(conn, MACHINE, StaffProposal, row.id, to, actor=me.actor,
                                                 reason=reason, updates={"result": result}, audit_data=data))
    return moved.obj


async def reject(ctx: ServiceContext, me: Current, client: Client, proposal_id: int, note: str) -> StaffProposal:
    """A checker's no, or the proposer withdrawing their own: nothing is applied."""
    note = reason_of(note, "note")
    row = await StaffProposal.get_or_none(id=proposal_id)
    if row is None:
        raise ProposalNotFound()
    if row.proposed_by_id != me.staff.id:
        await _allowed(me, client, _action(row.action).approve)

    async def work(conn: BaseDBAsyncClient) -> StaffProposal:
        locked = await _locked_pending(conn, proposal_id)
        return (await transition(conn, MACHINE, StaffProposal, locked.id, P.REJECTED, actor=me.actor, reason=note,
                                 locked=locked,
                                 updates={"pending_key": None, "decided_by_id": me.staff.id, "decision_note": note},
                                 audit_data={"action": locked.action, **staff_data(me, client)})).obj

    return await atomic(work)


async def break_glass(ctx: ServiceContext, me: Current, client: Client, action_name: str, params: dict,
                      reason: str) -> Applied:
    """An emergency: the action applied now by one member, with no second person. Audited as
    ``staff.break_glass`` with the parameters and reason, and logged as a warning."""
    action, reason, params, summary = await _checked(ctx, me, client, action_name, params, reason)
    await atomic(lambda conn: record(conn, me, client, "staff.break_glass", entity_type="staff", entity_id=me.staff.id,
                                     reason=reason, action=action.name, params=params, summary=summary[:200]))
    log.warning("BREAK GLASS: a sensitive action applied without a second person",
                extra={"staff": me.actor, "action": action.name, "summary": summary[:200]})
    return await action.apply(ctx, params, me, client, reason, None)


async def act(ctx: ServiceContext, me: Current, client: Client, action_name: str, params: dict,
              reason: str) -> StaffProposal | Applied:
    """What a console form or a command calls: an action that needs four eyes for these parameters is
    proposed (the proposal is answered); one that does not (e.g. a refund at or below the threshold) is
    applied now by this member, audited as theirs."""
    action, reason, parsed, summary = await _checked(ctx, me, client, action_name, params, reason)
    if needs_second(ctx, action, parsed):
        return await _store(ctx, me, client, action, parsed, summary, reason)
    await atomic(lambda conn: record(conn, me, client, "staff.action", entity_type="staff", entity_id=me.staff.id,
                                     reason=reason, action=action.name, params=parsed, summary=summary[:200]))
    return await action.apply(ctx, parsed, me, client, reason, None)


async def expire_due(limit: int = 500) -> int:
    """The worker's ``staff.proposals`` job: pending proposals past their time become ``expired``."""
    due = await StaffProposal.filter(status=P.PENDING, expires_at__lte=utcnow()).order_by("id").limit(limit) \
        .values_list("id", flat=True)
    done = 0
    for proposal_id in due:
        async def work(conn: BaseDBAsyncClient, proposal_id=proposal_id) -> int:
            row = await StaffProposal.filter(id=proposal_id, status=P.PENDING).select_for_update().using_db(conn).first()
            if row is None:
                return 0
            await _expire(conn, row)
            return 1

        done += await atomic(work)
    return done


async def listing(*, status: P | None = P.PENDING, limit: int = 100) -> list[StaffProposal]:
    query = StaffProposal.all().select_related("proposed_by", "decided_by").order_by("-id").limit(limit)
    if status is not None:
        query = query.filter(status=status)
    return await query


async def get(proposal_id: int) -> StaffProposal:
    row = await StaffProposal.get_or_none(id=proposal_id).select_related("proposed_by", "decided_by")
    if row is None:
        raise ProposalNotFound()
    return row

