"""Restrictions of an account: the holder's loss report, the bank's fraud and judicial freezes (and, later,
an expired ID), and the account's status that follows them.

An account is ``restricted`` while one or more restrictions are in force, ``active`` when none is. Each
restriction is a row (``AccountRestriction``) that says who set it (``holder``, ``system`` or
``operator:<name>``), when and why, and, once lifted, who lifted it, when and why. Setting and lifting
run in one transaction under the account's row lock (the ledger's lock: an outflow waits for it and then
sees the restriction), each an audit event, and the status moves through the state machine (``MACHINE``)
in that same transaction. What a restriction stops is the ledger's rule (``ledger.check_outflow``).

A loss report is set at once, without a face check (speed matters when a phone is stolen), and lifted
only with a fresh face verification of the holder, used once (``services.identity.face``), as a
signature is; a new report tells the holder by subscribe message, in its transaction. ``ID_EXPIRED`` is
set by the worker (``services.accounts.id_expiry``) once the holder's ID card is past its validity, and
lifted on every account of the holder by the face verification that follows a renewal (the face check's
own transaction, ``services.identity.face``). The bank's freezes are set and lifted by a named operator with a reason (``python -m app
account freeze|unfreeze``; the staff console will call the same functions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import utcnow
from core.errors import AppError, Conflict, ValidationFailed
from core.money import MAX_AMOUNT_FEN
from core.pii import mask_card
from models.accounts import Account, AccountRestriction, AccountStatus, RestrictionCode
from services import audit
from services.accounts import ledger
from services.accounts.ledger import AccountClosed, AccountNotFound
from services.context import ServiceContext
from services.db import atomic
from services.identity import face
from services.notifications import notices
from services.state_machine import Machine, transition

A = AccountStatus
MACHINE = Machine(
    entity="account",
    allowed={
        # a restriction set; closing with a balance (paid out first) or without one (closed at once)
        A.ACTIVE: frozenset({A.RESTRICTED, A.CLOSING, A.CLOSED}),
        A.RESTRICTED: frozenset({A.ACTIVE}),  # the last restriction lifted (closing waits for that)
        A.CLOSING: frozenset({A.CLOSED, A.ACTIVE}),  # the payout paid; or declined, and the balance back
    },
    milestones={A.CLOSED: "closed_at"},
)

HOLDER, SYSTEM = "holder", "system"
BANK_KINDS = {"fraud": RestrictionCode.FRAUD_FREEZE, "judicial": RestrictionCode.JUDICIAL_FREEZE}


class RestrictionNotInForce(Conflict):
    code, message = "RESTRICTION_NOT_IN_FORCE", "该账户没有此项限制"


class LossReportNotInForce(Conflict):
    code, message = "LOSS_REPORT_NOT_IN_FORCE", "该账户未挂失"


class RestrictionAmbiguous(Conflict):
    code, message = "RESTRICTION_AMBIGUOUS", "该账户有多项此类冻结，请指明文书编号"


class HeldAmountInvalid(AppError):
    status, code, message = 422, "HELD_AMOUNT_INVALID", "冻结金额须为正整数（分），且仅用于司法冻结"


def operator(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise ValidationFailed("请提供操作员姓名（最多 64 个字符）", field="operator")
    return f"operator:{name}"


def _reason(text: str) -> str:
    text = (text or "").strip()
    if not text or len(text) > 255:
        raise ValidationFailed("请提供原因（最多 255 个字符）", field="reason")
    return text


def shown_by(set_by: str) -> str:
    """What the holder is shown of who set a restriction: themselves, the system, or the bank (an
    operator's name stays in the bank's records and audit trail)."""
    return set_by if set_by in (HOLDER, SYSTEM) else "bank"


@dataclass(frozen=True)
class Changed:
    restriction: AccountRestriction
    account: Account  # as it stands after the change
    changed: bool  # False: the restriction was in force already (a repeat)


def _audited(r: AccountRestriction) -> dict:
    data = {"restriction_id": r.id, "code": str(r.code), "by": r.set_by, "reason": r.reason}
    if r.held_fen is not None:
        data["held_fen"] = r.held_fen
    if r.document_ref:
        data["document_ref"] = r.document_ref
    return data


async def in_force(account_ids: list[int], conn: BaseDBAsyncClient | None = None) -> dict[int, list[AccountRestriction]]:
    """The restrictions in force of each account, oldest first."""
    found: dict[int, list[AccountRestriction]] = {i: [] for i in account_ids}
    if not account_ids:
        return found
    query = AccountRestriction.filter(account_id__in=account_ids, lifted_at=None).order_by("id")
    for r in await (query.using_db(conn) if conn is not None else query):
        found[r.account_id].append(r)
    return found


async def _restrict(conn: BaseDBAsyncClient, account_id: int, code: RestrictionCode, *, by: str, actor: str,
                    reason: str, held_fen: int | None = None, document_ref: str | None = None) -> Changed:
    account = await ledger.locked_account(conn, account_id)
    if account.status in ledger.SHUT:  # closing: the balance is on its way out; a decline makes it active again
        raise AccountClosed()
    current = (await in_force([account_id], conn))[account_id]
    for r in current:
        # A repeat finds the one in force; judicial freezes stack, one per document (each court's own).
        if r.code == code and (code != RestrictionCode.JUDICIAL_FREEZE or r.document_ref == document_ref):
            return Changed(r, account, False)
    made = await AccountRestriction.create(
        account_id=account_id, code=code, set_by=by, reason=reason, held_fen=held_fen, document_ref=document_ref,
        created_at=utcnow(), using_db=conn)
    await audit.append(conn, actor=actor, action="account.restriction.set", entity_type="account",
                       entity_id=account_id, data=_audited(made))
    account = (await transition(conn, MACHINE, Account, account_id, AccountStatus.RESTRICTED, actor=actor,
                                reason=str(code), locked=account)).obj
    return Changed(made, account, True)


async def _lift(conn: BaseDBAsyncClient, account_id: int, code: RestrictionCode, *, by: str, actor: str, reason: str,
                document_ref: str | None = None, not_in_force: type[AppError] = RestrictionNotInForce) -> Changed:
    account = await ledger.locked_account(conn, account_id)
    current = (await in_force([account_id], conn))[account_id]
    matching = [r for r in current if r.code == code and (document_ref is None or r.document_ref == document_ref)]
    if not matching:
        raise not_in_force()
    if len(matching) > 1:
        raise RestrictionAmbiguous(field="document")
    target = matching[0]
    target.lifted_at, target.lifted_by, target.lift_reason = utcnow(), by, reason
    await target.save(using_db=conn, update_fields=["lifted_at", "lifted_by", "lift_reason"])
    await audit.append(conn, actor=actor, action="account.restriction.lifted", entity_type="account",
                       entity_id=account_id, data=_audited(target) | {"lifted_by": by, "lift_reason": reason})
    if len(current) == 1:  # that was the last one: the account is free again
        account = (await transition(conn, MACHINE, Account, account_id, AccountStatus.ACTIVE, actor=actor,
                                    reason=f"{code} lifted", locked=account)).obj
    return Changed(target, account, True)


# -- the holder's loss report -------------------------------------------------------------------------


async def _owned(user_id: int, account_id: int) -> Account:
    account = await Account.get_or_none(id=account_id, user_id=user_id)
    if account is None:  # another user's account answers as one that does not exist
        raise AccountNotFound()
    return account


async def report_loss(ctx: ServiceContext, user_id: int, account_id: int) -> Changed:
    """Restrict the account at once, and tell the holder; a repeat while the report is in force changes
    nothing and sends nothing."""
    await _owned(user_id, account_id)

    async def work(conn: BaseDBAsyncClient) -> Changed:
        reported = await _restrict(conn, account_id, RestrictionCode.LOSS_REPORTED, by=HOLDER,
                                   actor=f"user:{user_id}", reason="reported lost by the holder")
        if reported.changed:
            await notices.loss_reported(ctx, conn, reported.account, reported.restriction)
        return reported

    return await atomic(work)


async def lift_loss_report(ctx: ServiceContext, user_id: int, account_id: int, verify_id: str) -> Changed:
    """Lift the loss report with a fresh face verification of the holder, used up by the lifting."""
    await _owned(user_id, account_id)
    fv = await face.check_intent(ctx, user_id, verify_id, max_age_s=ctx.settings.face_intent_s)

    async def work(conn: BaseDBAsyncClient) -> Changed:
        lifted = await _lift(conn, account_id, RestrictionCode.LOSS_REPORTED, by=HOLDER, actor=f"user:{user_id}",
                             reason=f"lifted by the holder after face verification {fv.out_seq_no}",
                             not_in_force=LossReportNotInForce)
        await face.consume(conn, fv, purpose=f"loss_report:{lifted.restriction.id}")
        return lifted

    return await atomic(work)


# -- an expired ID card ------------------------------------------------------------------------------


async def restrict_id_expired(conn: BaseDBAsyncClient, account_id: int, *, valid_until: date) -> Changed:
    """Restrict the account because its holder's ID card ended on ``valid_until``, in the caller's
    transaction (the worker's, which has checked the card under the identity's lock); a repeat finds the
    restriction in force and changes nothing."""
    return await _restrict(conn, account_id, RestrictionCode.ID_EXPIRED, by=SYSTEM, actor=SYSTEM,
                           reason=f"ID card valid until {valid_until.isoformat()}")


async def lift_id_expired(conn: BaseDBAsyncClient, user_id: int, *, reason: str) -> list[Changed]:
    """Lift ``ID_EXPIRED`` on every account of the user where it is in force, by the holder, in the caller's
    transaction (the face verification that confirms a renewed, valid card). Other restrictions stay: an
    account with one still in force stays ``restricted``."""
    account_ids = await AccountRestriction.filter(
        account__user_id=user_id, code=RestrictionCode.ID_EXPIRED, lifted_at=None,
    ).using_db(conn).values_list("account_id", flat=True)
    lifted = []
    for account_id in sorted(set(account_ids)):  # one order for every lifter: no deadlock between two
        try:
            lifted.append(await _lift(conn, account_id, RestrictionCode.ID_EXPIRED, by=HOLDER,
                                      actor=f"user:{user_id}", reason=reason))
        except RestrictionNotInForce:  # lifted by a concurrent pass since it was read: nothing to do
            continue
    return lifted


# -- the bank's freezes ---------------------------------------------------------------------------------


def _kind(kind: str) -> RestrictionCode:
    if kind not in BANK_KINDS:
        raise ValidationFailed("冻结类型须为 fraud 或 judicial", field="kind")
    return BANK_KINDS[kind]


async def freeze(account_id: int, *, kind: str, reason: str, operator_name: str = "", held_fen: int | None = None,
                 document_ref: str | None = None, by: str | None = None) -> Changed:
    """A fraud freeze (the whole account), or a judicial one: the whole account, or only ``held_fen``.
    ``by``: the staff member (``staff:ID``) when it comes from the console, else ``operator_name``."""
    code, by, reason = _kind(kind), by or operator(operator_name), _reason(reason)
    if held_fen is not None and (code != RestrictionCode.JUDICIAL_FREEZE or isinstance(held_fen, bool)
                                 or not isinstance(held_fen, int) or not 1 <= held_fen <= MAX_AMOUNT_FEN):
        raise HeldAmountInvalid(field="held_fen")
    if document_ref is not None and not 1 <= len(document_ref.strip()) <= 64:
        raise ValidationFailed("文书编号最多 64 个字符", field="document")
    if not await Account.exists(id=account_id):
        raise AccountNotFound()
    return await atomic(lambda conn: _restrict(conn, account_id, code, by=by, actor=by, reason=reason,
                                               held_fen=held_fen, document_ref=document_ref and document_ref.strip()))


async def unfreeze(account_id: int, *, kind: str, reason: str, operator_name: str = "",
                   document_ref: str | None = None, by: str | None = None) -> Changed:
    """Lift a bank's freeze: applied by maker-checker (``services.staff.actions``, ``account.unfreeze``)
    once a second staff member approved, ``by`` the approver."""
    code, by, reason = _kind(kind), by or operator(operator_name), _reason(reason)
    if not await Account.exists(id=account_id):
        raise AccountNotFound()
    return await atomic(lambda conn: _lift(conn, account_id, code, by=by, actor=by, reason=reason,
                                           document_ref=document_ref and document_ref.strip()))


# -- the full account number, for its holder -----------------------------------------------------------


async def reveal_number(ctx: ServiceContext, user_id: int, account_id: int, verify_id: str) -> str:
    """The account's full number after a fresh face verification (used up), audited with the number
    masked: the full number is in the answer only, never in a log or an event."""
    await _owned(user_id, account_id)
    fv = await face.check_intent(ctx, user_id, verify_id, max_age_s=ctx.settings.face_intent_s)

    async def work(conn: BaseDBAsyncClient) -> str:
        account = await Account.filter(id=account_id).using_db(conn).first()
        await face.consume(conn, fv, purpose=f"reveal_number:{account_id}")
        await audit.append(conn, actor=f"user:{user_id}", action="account.number.revealed", entity_type="account",
                           entity_id=account_id, data={"number": mask_card(account.number),
                                                       "verify_id": fv.verify_id})
        return account.number

    return await atomic(work)
