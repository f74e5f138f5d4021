"""Money between an account and its bound card, through the card network: top-ups (a pull from the
card) and withdrawals (a push to it). Neither counts against the outflow limits: moves to and from the
bound card are outside them.

A top-up reserves room under the balance cap, records the transfer as pending and commits, and only
then asks the network to pull: a Class III top-up that would pass the cap is refused before any money
moves. A withdrawal debits the account with the pending transfer in one transaction, then asks the
network to push; a push the network declines is reversed. Until its answer is final (pending, or held
for an operator) a withdrawal keeps its amount counted as on its way in (``ledger.hold_return``), so a
Class III account whose withdrawal is declined after a top-up still never holds more than its cap.

Risk control decides first, under the account lock (``services.risk.engine``): a transfer it blocks is
recorded as declined (``RISK_BLOCKED``) and nothing moves; one it holds is reserved (or debited) like any
other and waits, ``held``, unsent, until an operator approves it (then it is sent) or rejects it (then
the reservation is released, or the debit reversed): ``review_held``.

Each transfer is sent under a request id of its own, which the network answers idempotently (a repeat of
an id gets its first answer, never a second pull). When the answer is lost the transfer stays pending
and is settled by asking the network about that id (``get_transfer``): at once, again when the user
retries with the same ``Idempotency-Key`` (the retry finds the transfer by the key's record), and by the
reconciliation job for the rest. A pending transfer the network has never heard of when the user
retries is sent again by that retry, under the same id (``_resend``): the first run may have committed it
and never sent it (the database's answer to its COMMIT lost, a 503, or the process gone before the send),
and its own retry, not only reconciliation, completes it. A transfer the network has never heard of
``UNKNOWN_AFTER_S`` after it was last sent did not happen and is closed as declined (``NOT_RECEIVED``).
Settling locks the transfer row and moves it out of ``pending`` once, so the money is booked once whoever
settles. Every status move goes through the state machine (``MACHINE``): an audit event in the hash chain,
in the transaction that books the money. A transfer's creation (pending, held, or declined by risk
control) is not a move; the risk decision that chose it is recorded by risk control.

Closing an account (``services.accounts.closing``) pays its whole balance out through this same machinery:
a push with ``purpose`` ``closing`` (its entries ``closing_payout`` / ``closing_reversal``), settled by the
same rules, and the transaction that settles it moves the account: paid, ``closing`` → ``closed`` (with the
closing notice); declined, ``closing`` → ``active`` before its reversal credits the balance back.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import CHINA_TZ, utcnow
from core.errors import AppError, Conflict, UpstreamUnavailable
from core.money import MAX_AMOUNT_FEN  # what one transfer may carry
from integrations.cardnet import CardNetworkUnavailable, TransferAnswer, TransferNotSent, TransferOutcomeUnknown
from models.accounts import (
    Account, AccountStatus, CardTransfer, EntryDirection, EntryKind, TransferDirection, TransferPurpose, TransferStatus,
)
from services.accounts import ledger, restrictions
from services.accounts.ledger import AccountNotFound
from services.accounts.opening import ACCOUNT_CARD_PURPOSE
from services.context import ServiceContext
from services.db import atomic
from services.notifications import notices
from services.risk import engine as risk
from services.state_machine import Machine, transition

log = logging.getLogger(__name__)

UNKNOWN_AFTER_S = 300  # a transfer the network still does not know after this was never received

T = TransferStatus
MACHINE = Machine(
    entity="card_transfer",
    allowed={
        T.HELD: frozenset({T.PENDING, T.DECLINED}),  # an operator approves (sent) or rejects it
        T.PENDING: frozenset({T.SUCCEEDED, T.DECLINED}),  # the card network's answer
    },
    # released_at: an approved held transfer is let go to the network now (a resend stamps it too)
    milestones={T.PENDING: "released_at", T.SUCCEEDED: "finished_at", T.DECLINED: "finished_at"},
)

DECLINE_MESSAGES = {
    "INSUFFICIENT_FUNDS": "绑定银行卡余额不足",
    "CARD_BLOCKED": "绑定银行卡状态异常，请联系发卡行",
    "CARD_NOT_FOUND": "绑定银行卡不存在",
    "NOT_RECEIVED": "银行卡转账未受理，请重试",
    "NOT_SENT": "银行卡转账未受理，请重试",
    "RISK_REJECTED": "交易未通过审核",
}


class CardDeclined(AppError):
    status, code, message = 422, "CARD_DECLINED", "绑定银行卡交易被拒绝"


class TransferPending(Conflict):
    code, message = "TRANSFER_PENDING", "账户有未完成的转账，请待其完成后再试"


class CardNetworkDown(UpstreamUnavailable):
    code, message = "CARD_NETWORK_UNAVAILABLE", "银行卡网络暂不可用，请稍后重试"


class TransferPending(Conflict):
    """A top-up or withdrawal of the account is not final (``pending`` or ``held``): what waits for it
    (a new bound card, closing) is refused until it is."""

    code, message = "TRANSFER_PENDING", "账户有处理中的充值或提现，请待其完成后再试"


IN_FLIGHT = (TransferStatus.PENDING, TransferStatus.HELD)


async def refuse_in_flight(conn: BaseDBAsyncClient, account_id: int) -> None:
    """Raise ``TransferPending`` while a transfer of the account is pending or held. Call it under the
    account's lock (``ledger.locked_account``): a transfer is created under that lock too (``_start``), so
    none can begin between this check and the caller's commit. A pending transfer is sent, and sent again,
    to the card read from the account (``_send``), so the bound card must not change under it."""
    if await CardTransfer.filter(account_id=account_id, status__in=IN_FLIGHT).using_db(conn).exists():
        raise TransferPending()


@dataclass(frozen=True)
class Outcome:
    transfer: CardTransfer
    account: Account  # as it stands after


def _wire(direction: TransferDirection) -> str:
    """The card network's word for it: a pull debits the card, a push credits it."""
    return "debit" if direction == TransferDirection.PULL else "credit"


def new_request_id(direction: TransferDirection, purpose: TransferPurpose = TransferPurpose.FUNDING) -> str:
    prefix = "CL" if purpose == TransferPurpose.CLOSING else "TU" if direction == TransferDirection.PULL else "WD"
    return f"{prefix}{utcnow().astimezone(CHINA_TZ):%Y%m%d}{secrets.token_hex(10).upper()}"


async def _owned_account(user_id: int, account_id: int) -> Account:
    account = await Account.get_or_none(id=account_id, user_id=user_id)
    if account is None:
        raise AccountNotFound()
    return account


async def top_up(ctx: ServiceContext, user_id: int, account_id: int, amount_fen: int, *,
                 idempotency_id: int | None = None, client: dict | None = None) -> Outcome:
    return await _move(ctx, user_id, account_id, amount_fen, TransferDirection.PULL, idempotency_id, client or {})


async def withdraw(ctx: ServiceContext, user_id: int, account_id: int, amount_fen: int, *,
                   idempotency_id: int | None = None, client: dict | None = None) -> Outcome:
    return await _move(ctx, user_id, account_id, amount_fen, TransferDirection.PUSH, idempotency_id, client or {})


async def _move(ctx: ServiceContext, user_id: int, account_id: int, amount_fen: int, direction: TransferDirection,
                idempotency_id: int | None, client: dict) -> Outcome:
    if not 1 <= amount_fen <= MAX_AMOUNT_FEN:
        raise ValueError("amount out of range")  # the contract bounds it before this
    account = await _owned_account(user_id, account_id)
    transfer = None
    if idempotency_id is not None:
        transfer = await CardTransfer.get_or_none(idempotency_id=idempotency_id)
    answer = None
    retried = transfer is not None  # a retry under the key: what the first run committed may be unsent
    if transfer is None:
        transfer, account = await atomic(lambda conn: _start(conn, account, user_id, amount_fen, direction,
                                                             idempotency_id, client))
        if transfer.status != TransferStatus.PENDING:  # blocked, or held for an operator: nothing sent
            return _outcome_of(transfer, await Account.get(id=account_id))
        try:
            answer = await _send(ctx, transfer, account)  # the card bound as the transfer was made
        except TransferNotSent:
            # Nothing reached the network: undo the reservation (or the debit), and let a retry under the
            # same key start afresh rather than find this transfer.
            not_sent = TransferAnswer(transfer.request_id, "DECLINED", "NOT_SENT", amount_fen, _wire(direction))
            await atomic(lambda conn: _apply(conn, transfer.id, not_sent, actor="system", ctx=ctx))
            raise CardNetworkDown() from None
    elif transfer.account_id != account_id or transfer.amount_fen != amount_fen or transfer.direction != direction:
        raise RuntimeError("an idempotency record maps to another transfer")  # the request hash prevents it
    transfer = await settle(ctx, transfer, answer, resend_unknown=retried)
    return _outcome_of(transfer, await Account.get(id=account_id))


def _outcome_of(transfer: CardTransfer, account: Account) -> Outcome:
    if transfer.status == TransferStatus.DECLINED:
        reason = transfer.decline_reason or ""
        if reason == risk.RiskBlocked.code:
            raise risk.RiskBlocked()
        raise CardDeclined(DECLINE_MESSAGES.get(reason, CardDeclined.message))
    return Outcome(transfer, account)


async def _start(conn: BaseDBAsyncClient, account: Account, user_id: int, amount_fen: int,
                 direction: TransferDirection, idempotency_id: int | None, client: dict) -> tuple[CardTransfer, Account]:
    """The transfer, made under the account's lock, and the account as locked: its bound card is the one
    risk control judges, the entry names and the network is sent (a new bound card waits for the lock,
    and then for the transfer to be final: ``refuse_in_flight``)."""
    request_id = new_request_id(direction)
    locked = await ledger.locked_account(conn, account.id)  # the ledger's lock order: the account first
    decision = await risk.decide(conn, risk.Movement(
        "top_up" if direction == TransferDirection.PULL else "withdrawal", utcnow(), amount_fen,
        account_id=account.id, user_id=user_id, reference=request_id,
        values={"bank_card": locked.bound_card_index, "device": client.get("device"), "ip": client.get("ip")},
        balance_fen=locked.balance_fen))
    verdict = decision.decision if decision is not None else "allow"
    if verdict == "block":  # recorded as a refusal; nothing reserved, nothing sent
        refused = await CardTransfer.create(
            request_id=request_id, idempotency_id=idempotency_id, account_id=account.id, user_id=user_id,
            direction=direction, amount_fen=amount_fen, status=TransferStatus.DECLINED,
            decline_reason=risk.RiskBlocked.code, finished_at=utcnow(), using_db=conn)
        return refused, locked
    if direction == TransferDirection.PULL:
        await ledger.reserve_inflow(conn, account.id, amount_fen)
    else:
        await ledger.post(conn, account.id, direction=EntryDirection.DEBIT, kind=EntryKind.WITHDRAWAL,
                          amount_fen=amount_fen, reference=request_id, counterparty=locked.bound_card_masked)
        await ledger.hold_return(conn, account.id, amount_fen)  # until final, its reversal keeps its room
    transfer = await CardTransfer.create(
        request_id=request_id, idempotency_id=idempotency_id, account_id=account.id, user_id=user_id,
        direction=direction, amount_fen=amount_fen, using_db=conn,
        status=TransferStatus.HELD if verdict == "review" else TransferStatus.PENDING)
    return transfer, locked


async def _send(ctx: ServiceContext, transfer: CardTransfer, account: Account) -> TransferAnswer | None:
    card = ctx.pii.decrypt(account.bound_card_enc, purpose=ACCOUNT_CARD_PURPOSE)
    try:
        return await ctx.cardnet.transfer(
            request_id=transfer.request_id, card_number=card, amount_fen=transfer.amount_fen,
            direction=_wire(transfer.direction),
            memo="电子账户销户" if transfer.purpose == TransferPurpose.CLOSING
            else "电子账户充值" if transfer.direction == TransferDirection.PULL else "电子账户提现",
        )
    except TransferOutcomeUnknown as exc:
        log.warning("card transfer answer lost", extra={"request_id": transfer.request_id, "reason": str(exc)})
        return None


async def settle(ctx: ServiceContext, transfer: CardTransfer, answer: TransferAnswer | None = None, *,
                 give_up_unknown: bool = False, resend_unknown: bool = False) -> CardTransfer:
    """Bring a pending transfer to its outcome if the network knows it (``answer``, or asked now).

    A transfer the network has never heard of: with ``resend_unknown`` (the user's retry) it is sent
    again under its request id (``_resend``); with ``give_up_unknown``, last sent more than
    ``UNKNOWN_AFTER_S`` ago, it is closed as declined (``NOT_RECEIVED``); otherwise it stays pending."""
    if transfer.status != TransferStatus.PENDING:
        return transfer
    if answer is None:
        try:
            answer = await ctx.cardnet.get_transfer(transfer.request_id)
        except CardNetworkUnavailable as exc:
            await CardTransfer.filter(id=transfer.id).update(checked_at=utcnow())
            log.warning("card transfer query failed", extra={"request_id": transfer.request_id, "reason": str(exc)})
            return transfer
        if answer is None:
            await CardTransfer.filter(id=transfer.id).update(checked_at=utcnow())
            if resend_unknown:
                return await _resend(ctx, transfer)
            if not (give_up_unknown and _last_sent(transfer) <= utcnow() - timedelta(seconds=UNKNOWN_AFTER_S)):
                return transfer
            answer = TransferAnswer(transfer.request_id, "DECLINED", "NOT_RECEIVED", transfer.amount_fen,
                                    _wire(transfer.direction))
    if answer.amount_fen != transfer.amount_fen or answer.direction != _wire(transfer.direction) or answer.status not in (
            "SUCCEEDED", "DECLINED"):
        log.error("card network answer does not match the transfer", extra={"request_id": transfer.request_id})
        return transfer  # left pending for a person to look at; never booked on a doubtful answer
    return await atomic(lambda conn: _apply(conn, transfer.id, answer, actor="cardnet", ctx=ctx))


def _last_sent(transfer: CardTransfer):
    """When the transfer was last handed to the network: when created, or when an operator released a
    held one or a retry sent it again (``released_at``). The network may receive it until a while after."""
    return transfer.released_at or transfer.created_at


async def _resend(ctx: ServiceContext, transfer: CardTransfer) -> CardTransfer:
    """Send again a pending transfer the network has never heard of, under its own request id (the network
    answers a repeated id with its first answer: a send that did arrive meanwhile is not made twice).

    ``released_at`` is stamped first, and only while the transfer is still pending: the give-up clock
    runs from this send (``_apply`` checks it again under the lock), and a transfer the reconciliation
    closed meanwhile is not sent."""
    now = utcnow()
    if not await CardTransfer.filter(id=transfer.id, status=TransferStatus.PENDING).update(released_at=now):
        return await CardTransfer.get(id=transfer.id)
    transfer.released_at = now
    log.info("card transfer unknown to the network sent again", extra={"request_id": transfer.request_id})
    try:
        answer = await _send(ctx, transfer, await Account.get(id=transfer.account_id))
    except TransferNotSent as exc:
        # Not sent now, but an earlier send may still arrive: left pending, for a later retry or reconciliation.
        log.warning("card transfer resend not sent", extra={"request_id": transfer.request_id, "reason": str(exc)})
        return transfer
    return await settle(ctx, transfer, answer)


async def _apply(conn: BaseDBAsyncClient, transfer_id: int, answer: TransferAnswer, *, actor: str,
                 status: TransferStatus = TransferStatus.PENDING, audit_data: dict | None = None,
                 ctx: ServiceContext | None = None) -> CardTransfer:
    """Book ``answer`` on the transfer if it is still in ``status`` (pending; held, for an operator's
    rejection), and move it (audited as ``actor``: the card network, or the operator who rejected it).

    A closing payout moves its account too (``ctx`` gives the closing notice its template; a closing
    payout is never held, so an operator's rejection, which passes none, never settles one)."""
    transfer = await CardTransfer.filter(id=transfer_id).select_for_update().using_db(conn).first()
    if transfer.status != status:
        return transfer  # settled by someone else meanwhile
    if answer.reason == "NOT_RECEIVED" and _last_sent(transfer) > utcnow() - timedelta(seconds=UNKNOWN_AFTER_S):
        return transfer  # sent again meanwhile (a user's retry): the network may still receive it
    account = await Account.get(id=transfer.account_id).using_db(conn)
    succeeded = answer.status == "SUCCEEDED"
    if transfer.direction == TransferDirection.PULL:
        if succeeded:
            await ledger.post(conn, transfer.account_id, direction=EntryDirection.CREDIT, kind=EntryKind.TOP_UP,
                              amount_fen=transfer.amount_fen, reference=transfer.request_id,
                              counterparty=account.bound_card_masked, reserved_fen=transfer.amount_fen, settling=True)
        else:
            await ledger.release_inflow(conn, transfer.account_id, transfer.amount_fen)
    elif succeeded:  # final: the room kept for its reversal is given back
        await ledger.release_inflow(conn, transfer.account_id, transfer.amount_fen)
        if transfer.purpose == TransferPurpose.CLOSING:  # paid: the account is closed, in this transaction
            closed = (await transition(conn, restrictions.MACHINE, Account, transfer.account_id, AccountStatus.CLOSED,
                                       actor=actor, reason="closing payout paid", audit_data=_audited(transfer))).obj
            if ctx is not None:
                await notices.account_closed(ctx, conn, closed, transfer.amount_fen)
    else:
        closing = transfer.purpose == TransferPurpose.CLOSING
        if closing:  # declined: the account is open again, and its balance comes back to it
            await transition(conn, restrictions.MACHINE, Account, transfer.account_id, AccountStatus.ACTIVE,
                             actor=actor, reason=f"closing payout declined: {answer.reason or answer.status}",
                             audit_data=_audited(transfer))
        await ledger.post(conn, transfer.account_id, direction=EntryDirection.CREDIT,
                          kind=EntryKind.CLOSING_REVERSAL if closing else EntryKind.WITHDRAWAL_REVERSAL,
                          amount_fen=transfer.amount_fen, reference=transfer.request_id,
                          counterparty=account.bound_card_masked, reserved_fen=transfer.amount_fen, settling=True,
                          reversal=True)
    updates = {"decline_reason": None if succeeded else (answer.reason or "DECLINED")[:32]}
    if answer.reason == "NOT_SENT":
        updates["idempotency_id"] = None  # a retry under the key sends a new transfer
    return (await transition(conn, MACHINE, CardTransfer, transfer.id, T.SUCCEEDED if succeeded else T.DECLINED,
                             actor=actor, reason=answer.reason or answer.status, updates=updates, locked=transfer,
                             audit_data={**_audited(transfer), **(audit_data or {})})).obj


def _audited(transfer: CardTransfer) -> dict:
    return {"request_id": transfer.request_id, "amount_fen": transfer.amount_fen, "direction": str(transfer.direction)}


class TransferNotFound(AppError):
    status, code, message = 404, "TRANSFER_NOT_FOUND", "转账不存在"


class TransferNotHeld(AppError):
    status, code, message = 409, "TRANSFER_NOT_HELD", "该笔转账不在待审核状态"


async def held(limit: int = 100) -> list[CardTransfer]:
    """Transfers waiting for an operator, oldest first."""
    return await CardTransfer.filter(status=TransferStatus.HELD).order_by("id").limit(limit)


async def review_held(ctx: ServiceContext, transfer_id: int, *, approve: bool, actor: str, note: str = "") -> CardTransfer:
    """An operator's verdict on a held transfer: approved, it is sent (and settled like any other);
    rejected, its reservation is released (a top-up) or its debit reversed (a withdrawal). The move is
    audited as the operator's, with the note; a transfer no longer held is refused (``TransferNotHeld``),
    so two operators cannot both act."""

    async def work(conn: BaseDBAsyncClient) -> CardTransfer:
        transfer = await CardTransfer.filter(id=transfer_id).select_for_update().using_db(conn).first()
        if transfer is None:
            raise TransferNotFound()
        if transfer.status != TransferStatus.HELD:
            raise TransferNotHeld()
        verdict = {"review": "approved" if approve else "rejected", "note": note[:200]}
        if approve:
            return (await transition(conn, MACHINE, CardTransfer, transfer.id, T.PENDING, actor=actor,
                                     reason="risk review approved", locked=transfer,
                                     audit_data={**_audited(transfer), **verdict})).obj
        rejected = TransferAnswer(transfer.request_id, "DECLINED", "RISK_REJECTED", transfer.amount_fen,
                                  _wire(transfer.direction))
        return await _apply(conn, transfer.id, rejected, actor=actor, status=TransferStatus.HELD, audit_data=verdict)

    transfer = await atomic(work)
    if not approve:
        return transfer
    account = await Account.get(id=transfer.account_id)
    try:
        answer = await _send(ctx, transfer, account)
    except TransferNotSent:
        not_sent = TransferAnswer(transfer.request_id, "DECLINED", "NOT_SENT", transfer.amount_fen,
                                  _wire(transfer.direction))
        return await atomic(lambda conn: _apply(conn, transfer.id, not_sent, actor="system", ctx=ctx))
    return await settle(ctx, transfer, answer)


async def reconcile(ctx: ServiceContext, *, older_than_s: float = 30, batch: int = 200) -> dict:
    """The reconciliation job: settle the pending transfers whose answer was lost."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    pending = await CardTransfer.filter(status=TransferStatus.PENDING, created_at__lte=cutoff).order_by("id").limit(batch)
    counts = {"checked": 0, "succeeded": 0, "declined": 0, "pending": 0}
    for transfer in pending:
        counts["checked"] += 1
        settled = await settle(ctx, transfer, give_up_unknown=True)
        counts[str(settled.status)] += 1
    return counts
