"""Closing an account, by its holder, in the channel that opened it.

``close`` is refused (409), under the account lock, while
* a restriction is in force (``ACCOUNT_RESTRICTED``): the bank's fraud and judicial freezes (the money is
  held for the bank or a court), and also the holder's own loss report (lift it first, with a face check:
  whoever holds the phone must not close the account while the report stands) and an expired ID (renew it
  first: the bank closes an account only for a holder whose identity is current);
* an ETC binding on the account is not ``unbound`` (``ACCOUNT_HAS_BINDINGS``): a partner could still debit it;
* arrears are owed on any of its bindings, unbound ones included (``ARREARS_OUTSTANDING``);
* a transfer with the bound card is held or pending (``TRANSFER_PENDING``): its outcome would move the
  balance after it was paid out.

Otherwise, in one transaction with a fresh face verification used up (``services.identity.face``), the
whole balance is debited (``closing_payout``) with a pending push to the bound card (``purpose`` closing,
``services.accounts.funding``) and the account moves ``active`` → ``closing``: nothing goes out and nothing
books on it any more (the ledger answers ``ACCOUNT_CLOSED``; a partner debit is refused and recorded so).
The push is then sent and settled by funding's rules for a lost answer (the network answers a request id
idempotently; settled by query, sent again on the user's retry under the same ``Idempotency-Key``, by the
reconciliation job, given up as ``NOT_RECEIVED``): the transaction that settles it moves the account to
``closed`` (with the closing notice through the outbox), or, declined, back to ``active`` with the balance
credited back (``closing_reversal``) and the decline answered (422 ``CARD_DECLINED``). A balance of 0
closes at once, without a transfer. Paid once: the money leaves only by that one transfer. A payout that
never reached the network (503 ``CARD_NETWORK_UNAVAILABLE``) is declined at once and the account is active
again; the face verification was used by the closing that committed, so closing again takes a new one.
Risk control is not asked: the money goes only to the holder's own bound card, after their face check.

A closed account stays (its entries, statements and number): its number is never drawn again (opening
draws numbers no account row has), and it counts no more toward the per-person limit of its class.
"""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from core.errors import Conflict
from integrations.cardnet import TransferAnswer, TransferNotSent
from models.accounts import (
    Account, AccountStatus, CardTransfer, EntryDirection, EntryKind, RestrictionCode, TransferDirection,
    TransferPurpose, TransferStatus,
)
from models.etc import BindingStatus, EtcBinding
from models.identity import FaceVerification
from services.accounts import funding, ledger, restrictions
from services.accounts.funding import CardNetworkDown, TransferPending
from services.accounts.ledger import AccountRestricted
from services.context import ServiceContext
from services.db import atomic
from services.etc.bindings import ArrearsOutstanding
from services.identity import face
from services.notifications import notices
from services.state_machine import transition

RESTRICTED_MESSAGES = {
    RestrictionCode.LOSS_REPORTED: "账户已挂失，请先解除挂失再销户",
    RestrictionCode.ID_EXPIRED: "身份证件已过期，请先更新身份证再销户",
    RestrictionCode.FRAUD_FREEZE: "账户已被银行冻结，暂不能销户",
    RestrictionCode.JUDICIAL_FREEZE: "账户已被司法冻结，暂不能销户",
}


class AccountHasBindings(Conflict):
    code, message = "ACCOUNT_HAS_BINDINGS", "账户仍绑定 ETC 代扣，请先解绑再销户"


class ClosingArrears(ArrearsOutstanding):
    message = "尚有欠费未补缴，补缴后才能销户"


@dataclass(frozen=True)
class Closing:
    account: Account  # as it stands after: closed, or closing while the payout's answer is unknown
    payout: CardTransfer | None  # None: closed with a balance of 0


async def close(ctx: ServiceContext, user_id: int, account_id: int, verify_id: str, *,
                idempotency_id: int | None = None) -> Closing:
    account = await funding._owned_account(user_id, account_id)
    if idempotency_id is not None:  # the user's retry: settle the payout the first run made, never another
        payout = await CardTransfer.get_or_none(idempotency_id=idempotency_id)
        if payout is not None:
            if payout.account_id != account_id or payout.purpose != TransferPurpose.CLOSING:
                raise RuntimeError("an idempotency record maps to another transfer")  # the request hash prevents it
            return await _outcome(await funding.settle(ctx, payout, resend_unknown=True))
    if account.status == AccountStatus.CLOSED:  # a repeat: how it stands, nothing done again
        return Closing(account, await CardTransfer.filter(
            account_id=account_id, purpose=TransferPurpose.CLOSING, status=TransferStatus.SUCCEEDED).first())
    if account.status == AccountStatus.CLOSING:  # closing under another key: asked about, never sent again
        payout = await CardTransfer.filter(account_id=account_id, purpose=TransferPurpose.CLOSING,
                                           status=TransferStatus.PENDING).first()
        if payout is not None:
            return await _outcome(await funding.settle(ctx, payout))
    fv = await face.check_intent(ctx, user_id, verify_id, max_age_s=ctx.settings.face_intent_s)
    started = await atomic(lambda conn: _start(conn, ctx, user_id, account_id, fv, idempotency_id))
    payout = started.payout
    if payout is None or started.account.status == AccountStatus.CLOSED:
        return started
    try:
        answer = await funding._send(ctx, payout, started.account)
    except TransferNotSent:
        # Nothing reached the network: the payout is declined (NOT_SENT), the balance back, the account
        # active; a retry under the same key starts afresh.
        not_sent = TransferAnswer(payout.request_id, "DECLINED", "NOT_SENT", payout.amount_fen, "credit")
        await atomic(lambda conn: funding._apply(conn, payout.id, not_sent, actor="system", ctx=ctx))
        raise CardNetworkDown() from None
    return await _outcome(await funding.settle(ctx, payout, answer))


async def _outcome(payout: CardTransfer) -> Closing:
    outcome = funding._outcome_of(payout, await Account.get(id=payout.account_id))  # a decline raises
    return Closing(outcome.account, outcome.transfer)


async def _start(conn: BaseDBAsyncClient, ctx: ServiceContext, user_id: int, account_id: int,
                 fv: FaceVerification, idempotency_id: int | None) -> Closing:
    actor = f"user:{user_id}"
    account = await ledger.locked_account(conn, account_id)
    if account.status == AccountStatus.CLOSED:  # closed meanwhile (a concurrent request)
        return Closing(account, None)
    if account.status == AccountStatus.CLOSING:
        raise TransferPending("账户正在销户，请稍后查看结果")
    for restriction in (await restrictions.in_force([account_id], conn))[account_id]:
        raise AccountRestricted(RESTRICTED_MESSAGES[restriction.code])
    if await EtcBinding.filter(account_id=account_id).exclude(status=BindingStatus.UNBOUND).using_db(conn).exists():
        raise AccountHasBindings()
    if await EtcBinding.filter(account_id=account_id, arrears_fen__gt=0).using_db(conn).exists():
        raise ClosingArrears()
    if account.pending_in_fen or await CardTransfer.filter(
            account_id=account_id, status__in=(TransferStatus.HELD, TransferStatus.PENDING)).using_db(conn).exists():
        raise TransferPending()
    await face.consume(conn, fv, purpose=f"account_close:{account_id}")
    balance = account.balance_fen
    if balance == 0:  # nothing to pay out: closed now
        closed = (await transition(conn, restrictions.MACHINE, Account, account_id, AccountStatus.CLOSED, actor=actor,
                                   reason="closed by the holder", locked=account,
                                   audit_data={"paid_out_fen": 0, "verify_id": fv.verify_id})).obj
        await notices.account_closed(ctx, conn, closed, 0)
        return Closing(closed, None)
    request_id = funding.new_request_id(TransferDirection.PUSH, TransferPurpose.CLOSING)
    await ledger.post(conn, account_id, direction=EntryDirection.DEBIT, kind=EntryKind.CLOSING_PAYOUT,
                      amount_fen=balance, reference=request_id, counterparty=account.bound_card_masked)
    await ledger.hold_return(conn, account_id, balance)  # until final, its reversal keeps its room
    payout = await CardTransfer.create(
        request_id=request_id, idempotency_id=idempotency_id, account_id=account_id, user_id=user_id,
        direction=TransferDirection.PUSH, purpose=TransferPurpose.CLOSING, amount_fen=balance,
        status=TransferStatus.PENDING, using_db=conn)
    moved = await transition(conn, restrictions.MACHINE, Account, account_id, AccountStatus.CLOSING, actor=actor,
                             reason="closing: the balance to the bound card",
                             audit_data={"request_id": request_id, "amount_fen": balance, "verify_id": fv.verify_id})
    return Closing(moved.obj, payout)
