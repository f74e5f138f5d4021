"""Account opening, accounts with their limits and ledgers, and funding from the bound card."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from core.money import MAX_AMOUNT_FEN
from core.pii import mask_card
from handlers.common import client, services
from handlers.spec import Body, Out, Query, Response, answer, id_param, operation
from models.enums import AccountStatus, ApplicationStatus, RestrictionCode, TransferStatus
from models.enums import TransferPurpose
from services.accounts import funding, opening, restrictions, views
from services.accounts.funding import CardDeclined, CardNetworkDown
from services.accounts.ledger import (
    AccountClosed, AccountNotFound, AccountRestricted, BalanceCapExceeded, InsufficientFunds,
)
from services.accounts.opening import (
    STEPS,
    AccountLimitReached,
    ApplicationClosed,
    ApplicationIncomplete,
    ApplicationNotFound,
)
from services.accounts.rules import ACCOUNT_CLASSES
from services.identity.errors import IdCardRequired, UnderAge
from services.risk.engine import RiskBlocked, RiskReview

bp = Blueprint("mp_accounts")

AccountClass = Literal[ACCOUNT_CLASSES]  # type: ignore[valid-type]
Step = Literal[STEPS]  # type: ignore[valid-type]
APPLICATION_ID = id_param(ApplicationNotFound, "the application's id")
ACCOUNT_ID = id_param(AccountNotFound, "the account's id")
Fen = Field(ge=1, le=MAX_AMOUNT_FEN, description="an amount in fen (1 fen = ¥0.01): a JSON integer, never a float "
            "or a string")


class ApplicationBody(Body):
    account_class: AccountClass = Field(description="Class II (needs a same-name Class I debit or credit card) or III")


class AmountBody(Body):
    amount_fen: int = Fen


class TransactionsQuery(Query):
    cursor: str | None = Field(default=None, max_length=32, description="`next_cursor` of the previous page")
    limit: int = Field(default=20, ge=1, le=views.MAX_PAGE)


class Milestones(Out):
    identity_verified: datetime | None
    signed: datetime | None
    opened: datetime | None
    rejected: datetime | None
    expired: datetime | None


class ApplicationOut(Out):
    id: int
    account_class: AccountClass
    status: Literal[tuple(s.value for s in ApplicationStatus)]  # type: ignore[valid-type]
    missing: list[Step] = Field(description="what the user still has to do, in the order to do it")
    next_step: Literal[STEPS + ("submit",)] | None = Field(  # type: ignore[valid-type]
        description="the first missing step, `submit` when nothing is missing, null once the application is closed")
    rules_version: str
    contract_id: int | None = Field(description="the signed account agreement")
    account_id: int | None
    rejection_code: str | None
    created_at: datetime
    expires_at: datetime
    milestones: Milestones

    @classmethod
    def of(cls, progress: opening.Progress) -> ApplicationOut:  # type: ignore[override]
        app = progress.application
        open_ = app.status in opening.OPEN_STATUSES
        return super().of(
            app, missing=progress.missing if open_ else [],
            next_step=(progress.missing[0] if progress.missing else "submit") if open_ else None,
            contract_id=progress.contract_id,
            milestones={str(status): getattr(app, stamp) for status, stamp in opening.MACHINE.milestones.items()})


class Limits(Out):
    daily_outflow_fen: int
    daily_outflow_used_fen: int
    daily_outflow_remaining_fen: int
    yearly_outflow_fen: int
    yearly_outflow_used_fen: int
    yearly_outflow_remaining_fen: int
    balance_cap_fen: int | None = Field(description="Class III: the balance may never exceed it")
    balance_room_fen: int | None = Field(description="how much more the account can take in now")


class RestrictionOut(Out):
    code: Literal[tuple(c.value for c in RestrictionCode)]  # type: ignore[valid-type]
    since: datetime
    by: Literal["holder", "system", "bank"] = Field(description="who set it: the holder (a loss report), the "
                                                    "system (an expired ID) or the bank (a freeze)")
    held_fen: int | None = Field(default=None, description="a judicial freeze of this amount only: the account lets "
                                 "out what its balance has above the sum held")

    @classmethod
    def of(cls, restriction: Any) -> RestrictionOut:  # type: ignore[override]
        shown = {"code": restriction.code, "since": restriction.created_at,
                 "by": restrictions.shown_by(restriction.set_by)}
        if restriction.held_fen is not None:  # only a judicial freeze of an amount has one
            shown["held_fen"] = restriction.held_fen
        return cls.model_validate(shown)


class AccountOut(Out):
    id: int
    number_masked: str
    account_class: AccountClass
    status: Literal[tuple(s.value for s in AccountStatus)] = Field(  # type: ignore[valid-type]
        description="`restricted` while a restriction is in force: no money goes out, money still comes in; "
        "`closing` while its balance is on its way to the bound card (nothing moves); `closed` for good")
    restrictions: list[RestrictionOut] = Field(default_factory=list, description="the restrictions in force")
    balance_fen: int
    pending_in_fen: int = Field(description="money that may still come in: top-ups on their way from the bound card, "
                                "and withdrawals not yet final (returned if the card network declines them)")
    bound_card_masked: str
    rules_version: str
    opened_at: datetime
    closed_at: datetime | None = Field(description="when it was closed (null while open)")
    limits: Limits = Field(description="outflow counted today and this year (China Standard Time)")

    @classmethod
    def of(cls, account: Any) -> AccountOut:  # type: ignore[override]
        return super().of(account, number_masked=mask_card(account.number), limits=views.limits(account),
                          restrictions=[RestrictionOut.of(r) for r in getattr(account, "restrictions", ())])


class AccountsOut(Out):
    accounts: list[AccountOut]


class EntryOut(Out):
    id: int
    direction: Literal["credit", "debit"]
    kind: str
    amount_fen: int
    balance_after_fen: int
    counts_as_outflow: bool
    counterparty: str | None
    reference: str
    booked_at: datetime


class TransactionsOut(Out):
    entries: list[EntryOut]
    next_cursor: str | None


class TransferOut(Out):
    id: int
    account_id: int
    direction: Literal["pull", "push"]
    purpose: Literal[tuple(p.value for p in TransferPurpose)] = Field(  # type: ignore[valid-type]
        description="`funding`: a top-up or a withdrawal; `closing`: the whole balance paid out when the account "
        "closes")
    amount_fen: int
    status: Literal[tuple(s.value for s in TransferStatus)]  # type: ignore[valid-type]
    decline_reason: str | None
    created_at: datetime
    finished_at: datetime | None
    balance_fen: int = Field(description="the account's balance after")

    @classmethod
    def of(cls, transfer: Any, account: Any) -> TransferOut:  # type: ignore[override]
        return super().of(transfer, balance_fen=account.balance_fen)


@bp.post("/account-applications")
@operation(
    summary="Start an application to open an account (or get the open one for that class)",
    description="Returns the user's open application for the class (200) or a new one (201). The account agreement "
    "to sign is the `account_agreement` contract with this application's id as `subject_id`.",
    tag="accounts",
    auth=True,
    body=ApplicationBody,
    responses={200: Response(ApplicationOut, description="the open application"),
               201: Response(ApplicationOut, description="a new application")},
)
async def start_application(request: Request, body: ApplicationBody) -> HTTPResponse:
    ctx = services(request)
    app, created = await opening.start(ctx, request.ctx.user_id, account_class=body.account_class)
    progress = await opening.sync(ctx, request.ctx.user_id, app.id)
    return answer(ApplicationOut.of(progress), status=201 if created else 200)


@bp.get("/account-applications/<application_id:int>")
@operation(
    summary="An application's status, milestones and what is still missing, in order",
    tag="accounts",
    auth=True,
    path={"application_id": APPLICATION_ID},
    responses={200: Response(ApplicationOut)},
)
async def get_application(request: Request, application_id: int) -> HTTPResponse:
    progress = await opening.sync(services(request), request.ctx.user_id, application_id)
    return answer(ApplicationOut.of(progress))


@bp.post("/account-applications/<application_id:int>/submit")
@operation(
    summary="Open the account, once every check is valid and the agreement signed",
    description="201 with the new account; 200 with the same account when the application was already opened "
    "(concurrent submits open one). Refused while anything is missing (409 APPLICATION_INCOMPLETE), and when the "
    "person already holds as many accounts of the class as the rules allow (409 ACCOUNT_LIMIT_REACHED: the "
    "application is then rejected). Risk control decides before the account is opened: 403 RISK_BLOCKED rejects the "
    "application, 403 RISK_REVIEW leaves it as it is for the bank to look at.",
    tag="accounts",
    auth=True,
    path={"application_id": APPLICATION_ID},
    responses={200: Response(AccountOut, description="already opened"),
               201: Response(AccountOut, description="opened now")},
    errors=(ApplicationIncomplete, ApplicationClosed, AccountLimitReached, UnderAge, IdCardRequired,
            RiskBlocked, RiskReview),
)
async def submit_application(request: Request, application_id: int) -> HTTPResponse:
    account, opened = await opening.submit(services(request), request.ctx.user_id, application_id,
                                           client=client(request))
    return answer(AccountOut.of(account), status=201 if opened else 200)


@bp.get("/accounts")
@operation(
    summary="The user's accounts with balances and limits",
    tag="accounts",
    auth=True,
    responses={200: Response(AccountsOut)},
)
async def list_accounts(request: Request) -> HTTPResponse:
    return answer(AccountsOut(accounts=[AccountOut.of(a) for a in await views.accounts_of(request.ctx.user_id)]))


@bp.get("/accounts/<account_id:int>")
@operation(
    summary="An account: balance, and the limits used today and this year and what remains",
    tag="accounts",
    auth=True,
    path={"account_id": ACCOUNT_ID},
    responses={200: Response(AccountOut)},
)
async def get_account(request: Request, account_id: int) -> HTTPResponse:
    return answer(AccountOut.of(await views.account(request.ctx.user_id, account_id)))


@bp.get("/accounts/<account_id:int>/transactions")
@operation(
    summary="The account's ledger, newest first, a page at a time",
    tag="accounts",
    auth=True,
    path={"account_id": ACCOUNT_ID},
    query=TransactionsQuery,
    responses={200: Response(TransactionsOut)},
    errors=((422, "CURSOR_INVALID"),),
)
async def transactions(request: Request, account_id: int, query: TransactionsQuery) -> HTTPResponse:
    entries, cursor = await views.transactions(request.ctx.user_id, account_id, cursor=query.cursor, limit=query.limit)
    return answer(TransactionsOut(entries=entries, next_cursor=cursor))


FUNDING_ERRORS = (CardDeclined, AccountRestricted, AccountClosed, CardNetworkDown, RiskBlocked)
PENDING = Response(TransferOut, description="`pending`: the card network's answer is not known yet: retry with the "
                   "same Idempotency-Key to learn the outcome (the transfer is never sent twice). `held`: risk control "
                   "holds it for review; the money is reserved and nothing is sent until an operator decides")


def _transfer_response(outcome: funding.Outcome) -> HTTPResponse:
    status = 202 if outcome.transfer.status in (TransferStatus.PENDING, TransferStatus.HELD) else 201
    return answer(TransferOut.of(outcome.transfer, outcome.account), status=status)


@bp.post("/accounts/<account_id:int>/top-ups")
@operation(
    summary="Top up the account from its bound card",
    description="Pulls the amount from the bound card through the card network, then credits the account. A Class III "
    "top-up that would take the balance over its cap is refused (422 BALANCE_CAP_EXCEEDED) before any money moves.",
    tag="accounts",
    auth=True,
    idempotent=True,
    path={"account_id": ACCOUNT_ID},
    body=AmountBody,
    responses={201: Response(TransferOut, description="the money is in the account"), 202: PENDING},
    errors=(BalanceCapExceeded, *FUNDING_ERRORS),
)
async def top_up(request: Request, account_id: int, body: AmountBody) -> HTTPResponse:
    outcome = await funding.top_up(services(request), request.ctx.user_id, account_id, body.amount_fen,
                                   idempotency_id=request.ctx.idempotency.id, client=client(request))
    return _transfer_response(outcome)


@bp.post("/accounts/<account_id:int>/withdrawals")
@operation(
    summary="Withdraw from the account to its bound card",
    description="Debits the account, then pushes the amount to the bound card; a push the card network declines is "
    "reversed. Moves to the bound card do not count against the outflow limits.",
    tag="accounts",
    auth=True,
    idempotent=True,
    path={"account_id": ACCOUNT_ID},
    body=AmountBody,
    responses={201: Response(TransferOut, description="the money is on the card"), 202: PENDING},
    errors=(InsufficientFunds, *FUNDING_ERRORS),
)
async def withdraw(request: Request, account_id: int, body: AmountBody) -> HTTPResponse:
    outcome = await funding.withdraw(services(request), request.ctx.user_id, account_id, body.amount_fen,
                                     idempotency_id=request.ctx.idempotency.id, client=client(request))
    return _transfer_response(outcome)
