"""Living with an account: report it lost (and lift the report with a face check), read its full number, and
bind it to a new card, and close it (its balance to the bound card)."""

from __future__ import annotations

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from core.errors import UpstreamUnavailable
from handlers.common import services
from handlers.miniprogram.accounts import ACCOUNT_ID, AccountOut, TransferOut
from handlers.miniprogram.identity import BankCardBody
from handlers.spec import Body, Out, Response, answer, operation
from models.enums import AccountStatus
from services.accounts import bound_card, closing, restrictions, views
from services.accounts.bound_card import CardAlreadyBound
from services.accounts.closing import AccountHasBindings, ClosingArrears
from services.accounts.funding import CardDeclined, CardNetworkDown, TransferPending
from services.accounts.ledger import AccountClosed, AccountRestricted
from services.accounts.restrictions import LossReportNotInForce
from services.identity.errors import (
    CardClassNotAllowed,
    CardMismatch,
    CardNotFound,
    CardNumberInvalid,
    FaceVerificationInvalid,
    FaceVerificationPending,
    FaceVerificationStale,
    FaceVerificationUsed,
    IdCardRequired,
    IdExpired,
    PhoneInvalid,
    TooManyAttempts,
)

bp = Blueprint("mp_lifecycle")

FACE_ERRORS = (FaceVerificationInvalid, FaceVerificationPending, FaceVerificationStale, FaceVerificationUsed)


VERIFY_ID = Field(min_length=1, max_length=256, description="a face verification of the holder, passed in the last "
                  "5 minutes and not used before (POST /identity/face, then its result)")


class VerifiedBody(Body):
    verify_id: str = VERIFY_ID


class BoundCardBody(BankCardBody):
    """The new card, checked as at opening (``POST /identity/bank-card``), and the holder's face."""

    verify_id: str = VERIFY_ID


class AccountNumberOut(Out):
    account_number: str = Field(description="the full account number, for the holder to give an employer or a "
                                "lottery: show it, never store it")


@bp.post("/accounts/<account_id:int>/loss-report")
@operation(
    summary="Report the account lost: no money goes out until the report is lifted",
    description="Restricts the account at once, without a face check (speed matters when a phone is stolen): "
    "partner debits and withdrawals are refused (409 ACCOUNT_RESTRICTED); money still comes in. 201 with the "
    "account; 200 when the report was in force already. A new report sends the holder the loss-report subscribe "
    "message (账户挂失通知) through the outbox; a repeat sends nothing.",
    tag="accounts",
    auth=True,
    path={"account_id": ACCOUNT_ID},
    responses={200: Response(AccountOut, description="reported lost already"),
               201: Response(AccountOut, description="reported lost now")},
    errors=(AccountClosed,),
)
async def report_loss(request: Request, account_id: int) -> HTTPResponse:
    changed = await restrictions.report_loss(services(request), request.ctx.user_id, account_id)
    account = await views.account(request.ctx.user_id, account_id)
    return answer(AccountOut.of(account), status=201 if changed.changed else 200)


@bp.delete("/accounts/<account_id:int>/loss-report", ignore_body=False)
@operation(
    summary="Lift the loss report, with a fresh face verification of the holder",
    description="The face verification's result must have been fetched (POST /identity/face/{verify_id}/result) "
    "and passed within 5 minutes, for the person on the current ID card; it is used up by the lifting. The bank's "
    "freezes stay in force (the account stays `restricted` while one does).",
    tag="accounts",
    auth=True,
    path={"account_id": ACCOUNT_ID},
    body=VerifiedBody,
    responses={200: Response(AccountOut, description="the report lifted")},
    errors=(*FACE_ERRORS, LossReportNotInForce),
)
async def lift_loss_report(request: Request, account_id: int, body: VerifiedBody) -> HTTPResponse:
    await restrictions.lift_loss_report(services(request), request.ctx.user_id, account_id, body.verify_id)
    return answer(AccountOut.of(await views.account(request.ctx.user_id, account_id)))


@bp.post("/accounts/<account_id:int>/reveal-number")
@operation(
    summary="The account's full number, after a fresh face verification",
    description="For the holder to give an employer or a lottery. The face verification is used up; the reading "
    "is audited (with the number masked: the full number is in this answer only, and is never logged).",
    tag="accounts",
    auth=True,
    path={"account_id": ACCOUNT_ID},
    body=VerifiedBody,
    responses={200: Response(AccountNumberOut)},
    errors=FACE_ERRORS,
)
async def reveal_number(request: Request, account_id: int, body: VerifiedBody) -> HTTPResponse:
    number = await restrictions.reveal_number(services(request), request.ctx.user_id, account_id, body.verify_id)
    return answer(AccountNumberOut(account_number=number))


@bp.post("/accounts/<account_id:int>/bound-card")
@operation(
    limit="identity",
    summary="Bind the account to a new card, after its same-name check and a fresh face verification",
    description="The new card is checked as at opening (POST /identity/bank-card): a Class I debit or a credit card "
    "in the holder's name and ID number, with the phone its bank holds; the check counts against the daily attempt "
    "limit, and a card that fails it leaves the bound card as it was. The face verification (passed within 5 "
    "minutes, for the person on the current ID card) is used up by the change. Top-ups then pull from the new card "
    "and withdrawals push to it; the old card's reference stays in the account's history. Refused before anything "
    "is checked on a closed account (409 ACCOUNT_CLOSED), while a restriction is in force (409 ACCOUNT_RESTRICTED: "
    "a loss report, a bank's freeze, or an expired ID card, to be renewed first), while a top-up or withdrawal is "
    "pending or held (409 TRANSFER_PENDING), when the holder's ID card has expired (422 ID_EXPIRED), and for the "
    "card bound now (409 CARD_ALREADY_BOUND).",
    tag="accounts",
    auth=True,
    path={"account_id": ACCOUNT_ID},
    body=BoundCardBody,
    responses={200: Response(AccountOut, description="the account, bound to the new card")},
    errors=(AccountClosed, AccountRestricted, TransferPending, CardAlreadyBound, IdExpired, IdCardRequired,
            CardNumberInvalid, PhoneInvalid, CardMismatch, CardNotFound, CardClassNotAllowed, TooManyAttempts,
            UpstreamUnavailable, *FACE_ERRORS),
)
async def change_bound_card(request: Request, account_id: int, body: BoundCardBody) -> HTTPResponse:
    await bound_card.change(services(request), request.ctx.user_id, account_id, card_number=body.card_number,
                            reserved_phone=body.reserved_phone, verify_id=body.verify_id)
    return answer(AccountOut.of(await views.account(request.ctx.user_id, account_id)))


class ClosingOut(Out):
    account: AccountOut
    payout: TransferOut | None = Field(description="the whole balance paid to the bound card (`purpose` closing); "
                                       "null when the balance was 0")

    @classmethod
    def of(cls, result: closing.Closing) -> ClosingOut:  # type: ignore[override]
        return cls(account=AccountOut.of(result.account),
                   payout=None if result.payout is None else TransferOut.of(result.payout, result.account))


@bp.post("/accounts/<account_id:int>/close")
@operation(
    summary="Close the account: its whole balance to the bound card, after a fresh face verification",
    description="Refused (409) while an ETC binding on the account is not unbound (ACCOUNT_HAS_BINDINGS), arrears "
    "are owed on any of its bindings (ARREARS_OUTSTANDING), a transfer with the bound card is held or pending "
    "(TRANSFER_PENDING), or a restriction is in force (ACCOUNT_RESTRICTED: the bank's freezes, and also the "
    "holder's loss report and an expired ID, to be lifted or renewed first). Otherwise the face verification is "
    "used up, the whole balance is paid to the bound card through the card network and the account is `closed` "
    "(200). 202 while the card network's answer is not known: the account is `closing` (nothing moves on it) "
    "until it is; retry with the same Idempotency-Key to learn the outcome (the payout is never sent twice). A "
    "payout the card network declines leaves the account `active` with its balance back (422 CARD_DECLINED). A "
    "balance of 0 closes at once. A closed account answers 200 as it stands; its number is never given again, and "
    "it counts no more toward the per-person limit of its class.",
    tag="accounts",
    auth=True,
    idempotent=True,
    path={"account_id": ACCOUNT_ID},
    body=VerifiedBody,
    responses={200: Response(ClosingOut, description="closed"),
               202: Response(ClosingOut, description="`closing`: the payout's answer is not known yet: retry with "
                             "the same Idempotency-Key")},
    errors=(*FACE_ERRORS, AccountHasBindings, ClosingArrears, TransferPending, AccountRestricted, CardDeclined,
            CardNetworkDown),
)
async def close_account(request: Request, account_id: int, body: VerifiedBody) -> HTTPResponse:
    result = await closing.close(services(request), request.ctx.user_id, account_id, body.verify_id,
                                 idempotency_id=request.ctx.idempotency.id)
    return answer(ClosingOut.of(result), status=202 if result.account.status == AccountStatus.CLOSING else 200)
