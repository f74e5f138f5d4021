"""Remote account opening: an application moves draft → identity_verified → signed → opened (or
rejected / expired) through the one state machine, and submit opens the account.

What is still missing is computed, in order, from the user's own state: the phone WeChat knows, a valid
ID card, a fresh face verification (within ``FACE_VALID_S``), the same-name bank card, the signed
account agreement (the ``account_agreement`` contract whose subject is this application, its class the
application's). The milestones reached are stamped as they are first seen (``sync``).

Submit re-checks everything, then opens the account in one transaction: the person's row
(``AccountHolder``) locked so the count limit per person and class holds across workers (on a
multi-primary cluster, two openings for one person conflict on that row and one is run again), the
account created with a fresh number and the bound card, the application moved to ``opened``, and an
"account opened" message written to the outbox. Submitting an opened application returns its account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from core.clock import CHINA_TZ, china_day, utcnow
from core.errors import Conflict, NotFound
from core.pii import mask_card
from core.validators import age_on
from models.accounts import Account, AccountApplication, AccountBoundCard, AccountHolder, ApplicationStatus
from models.contracts import Contract, ContractStatus
from models.users import User
from services import outbox
from services.accounts.numbers import new_account_number
from services.accounts.rules import RULES_VERSION, rules_for
from services.context import ServiceContext
from services.db import atomic
from services.esign.contracts import register_subject
from services.esign.errors import SubjectClosed, SubjectNotFound
from services.identity.bank_card import CARD_PURPOSE
from services.identity.errors import UnderAge
from services.identity.id_card import verified_identity
from services.state_machine import Machine, transition

S = ApplicationStatus
MACHINE = Machine(
    entity="account_application",
    allowed={
        S.DRAFT: frozenset({S.IDENTITY_VERIFIED, S.REJECTED, S.EXPIRED}),
        S.IDENTITY_VERIFIED: frozenset({S.SIGNED, S.REJECTED, S.EXPIRED}),
        S.SIGNED: frozenset({S.OPENED, S.REJECTED, S.EXPIRED}),
    },
    milestones={S.IDENTITY_VERIFIED: "identity_verified_at", S.SIGNED: "signed_at", S.OPENED: "opened_at",
                S.REJECTED: "rejected_at", S.EXPIRED: "expired_at"},
)
OPEN_STATUSES = (S.DRAFT, S.IDENTITY_VERIFIED, S.SIGNED)
STEPS = ("phone", "id_card", "face", "bank_card", "agreement")  # in the order the user does them
AGREEMENT = "account_agreement"


class ApplicationNotFound(NotFound):
    code, message = "APPLICATION_NOT_FOUND", "开户申请不存在"


class ApplicationIncomplete(Conflict):
    code, message = "APPLICATION_INCOMPLETE", "开户资料尚未完成"


class ApplicationClosed(Conflict):
    code, message = "APPLICATION_CLOSED", "该开户申请已结束，请重新申请"


class AccountLimitReached(Conflict):
    code, message = "ACCOUNT_LIMIT_REACHED", "您在本行开立的该类账户已达上限"


@dataclass(frozen=True)
class Progress:
    application: AccountApplication
    missing: list[str]
    contract_id: int | None  # the signed agreement, when there is one


async def _owned(user_id: int, application_id: int) -> AccountApplication:
    app = await AccountApplication.get_or_none(id=application_id, user_id=user_id)
    if app is None:
        raise ApplicationNotFound()
    return app


async def start(ctx: ServiceContext, user_id: int, *, account_class: str) -> tuple[AccountApplication, bool]:
    """The user's open application for this class, or a new one: ``(application, created)``."""
    rules_for(account_class)  # an unknown class is refused by the contract before this
    for app in await AccountApplication.filter(user_id=user_id, account_class=account_class,
                                               status__in=OPEN_STATUSES).order_by("-id"):
        app = await _expire_if_due(app)
        if app.status in OPEN_STATUSES:
            return app, False
    app = await AccountApplication.create(
        user_id=user_id, account_class=account_class, rules_version=RULES_VERSION,
        expires_at=utcnow() + timedelta(seconds=ctx.settings.application_ttl_s),
    )
    return app, True


async def _expire_if_due(app: AccountApplication) -> AccountApplication:
    if app.status in OPEN_STATUSES and app.expires_at <= utcnow():
        moved = await atomic(lambda conn: transition(conn, MACHINE, AccountApplication, app.id, S.EXPIRED,
                                                     actor="system", reason="not submitted in time"))
        return moved.obj
    return app


async def _signed_agreement(user_id: int, application_id: int) -> Contract | None:
    return await Contract.filter(user_id=user_id, template=AGREEMENT, subject_id=str(application_id),
                                 status=ContractStatus.SIGNED).order_by("-id").first()


async def missing_steps(ctx: ServiceContext, user_id: int, app: AccountApplication) -> tuple[list[str], Contract | None]:
    user = await User.get(id=user_id)
    found = await verified_identity(ctx, user_id)
    identity = found[0] if found else None
    today, now = china_day(), utcnow()
    done = {
        "phone": user.phone_bound_at is not None,
        "id_card": identity is not None and (identity.id_valid_until is None or identity.id_valid_until >= today),
        "face": identity is not None and identity.face_passed_at is not None
        and identity.face_passed_at + timedelta(seconds=ctx.settings.face_valid_s) > now,
        "bank_card": identity is not None and identity.card_verified_at is not None,
    }
    agreement = await _signed_agreement(user_id, app.id)
    done["agreement"] = agreement is not None
    return [step for step in STEPS if not done[step]], agreement


async def sync(ctx: ServiceContext, user_id: int, application_id: int) -> Progress:
    """Where the application stands: stamps the milestones reached, returns what is still missing."""
    app = await _expire_if_due(await _owned(user_id, application_id))
    missing, agreement = await missing_steps(ctx, user_id, app)
    identity_done = not {"phone", "id_card", "face", "bank_card"} & set(missing)
    if (app.status == S.DRAFT and identity_done) or (app.status == S.IDENTITY_VERIFIED and agreement is not None):
        async def advance(conn: BaseDBAsyncClient) -> AccountApplication:
            # From the locked row, not the one read above: a concurrent request may have moved it on.
            current = await AccountApplication.filter(id=app.id).select_for_update().using_db(conn).first()
            if current.status == S.DRAFT and identity_done:
                current = (await transition(conn, MACHINE, AccountApplication, app.id, S.IDENTITY_VERIFIED,
                                            actor=f"user:{user_id}", reason="checks done")).obj
            if current.status == S.IDENTITY_VERIFIED and identity_done and agreement is not None:
                current = (await transition(conn, MACHINE, AccountApplication, app.id, S.SIGNED, actor=f"user:{user_id}",
                                            reason="agreement signed", updates={"contract_id": agreement.id})).obj
            return current

        app = await atomic(advance)
    return Progress(app, missing, agreement.id if agreement else None)


async def submit(ctx: ServiceContext, user_id: int, application_id: int, *,
                 client: dict | None = None) -> tuple[Account, bool]:
    """Open the account: ``(account, opened_now)``. Idempotent; concurrent submits open one.

    Risk control decides first (subject ``account_opening``: the holder's ID and bank card by blind
    index, the device and IP): a block rejects the application (``RISK_BLOCKED``), a review refuses
    this submit (``RISK_REVIEW``) and leaves the application as it was, for ops to look at."""
    from services.risk import engine as risk

    client = client or {}
    progress = await sync(ctx, user_id, application_id)
    app = progress.application
    if app.status == S.OPENED:
        return await Account.get(id=app.account_id), False
    if app.status not in OPEN_STATUSES:
        raise ApplicationClosed()
    if progress.missing:
        raise ApplicationIncomplete(f"尚未完成：{'、'.join(STEP_NAMES[s] for s in progress.missing)}")
    found = await verified_identity(ctx, user_id)
    identity = found[0]
    rules = rules_for(app.account_class)
    if age_on(identity.birth_date, china_day()) < rules.min_age_years:
        raise UnderAge()
    card = ctx.pii.decrypt(identity.card_number_enc, purpose=CARD_PURPOSE)
    user = await User.get(id=user_id)

    card_index = ctx.pii.blind_index(card, purpose=ACCOUNT_CARD_PURPOSE)

    async def work(conn: BaseDBAsyncClient) -> tuple[Account | None, bool] | risk.Refused:
        current = await AccountApplication.filter(id=app.id).select_for_update().using_db(conn).first()
        if current.status == S.OPENED:
            return await Account.get(id=current.account_id).using_db(conn), False
        if current.status not in (S.SIGNED,):
            raise ApplicationClosed()
        holder = await _lock_holder(conn, identity.id_number_index)
        decision = await risk.decide(conn, risk.Movement(
            "account_opening", utcnow(), user_id=user_id, reference=f"application:{app.id}",
            values={"id": identity.id_number_index, "bank_card": card_index, "device": client.get("device"),
                    "ip": client.get("ip")}), account_locked=False)
        if decision is not None and decision.refusal is not None:
            if decision.decision == "block":  # the refusal is recorded with the application and the decision
                await transition(conn, MACHINE, AccountApplication, app.id, S.REJECTED, actor="risk",
                                 reason="risk control", updates={"rejection_code": risk.RiskBlocked.code},
                                 audit_data={"rules": [r["rule"] for r in decision.reasons if not r["shadow"]],
                                             "version": decision.version})
            return risk.Refused(decision.refusal)
        count = await Account.filter(holder_index=identity.id_number_index, account_class=app.account_class,
                                     status__not="closed").using_db(conn).count()
        if count >= rules.max_accounts_per_person:
            await transition(conn, MACHINE, AccountApplication, app.id, S.REJECTED, actor="system",
                             reason="per-person account limit", updates={"rejection_code": AccountLimitReached.code},
                             audit_data={"accounts": count, "limit": rules.max_accounts_per_person})
            return None, False
        number = await _unused_number(conn, ctx.settings.bank_account_prefix)
        account = await Account.create(
            number=number, number_last4=number[-4:], user_id=user_id,
            holder_index=identity.id_number_index, account_class=app.account_class, rules_version=RULES_VERSION,
            bound_card_enc=ctx.pii.encrypt(card, purpose=ACCOUNT_CARD_PURPOSE),
            bound_card_index=card_index,
            bound_card_masked=mask_card(card), opened_at=utcnow(), using_db=conn,
        )
        await AccountBoundCard.create(  # the first of the account's bound cards (services.accounts.bound_card)
            account_id=account.id, card_enc=account.bound_card_enc, card_index=card_index,
            card_masked=account.bound_card_masked, card_class=identity.card_class, bank_name=identity.card_bank_name,
            bound_at=account.opened_at, using_db=conn)
        await AccountHolder.filter(holder_index=holder.holder_index).using_db(conn).update(
            opened_accounts=holder.opened_accounts + 1)
        await transition(conn, MACHINE, AccountApplication, app.id, S.OPENED, actor=f"user:{user_id}",
                         reason="submitted", updates={"account_id": account.id},
                         audit_data={"account_id": account.id, "account_class": app.account_class,
                                     "number": mask_card(account.number)})
        if ctx.settings.account_opened_template_id:
            await outbox.enqueue(conn, "subscribe_message", {
                "touser": user.openid, "template_id": ctx.settings.account_opened_template_id,
                "page": f"pages/account/account?id={account.id}", "data": {
                    "thing1": {"value": f"个人{rules.label}电子账户"},
                    "character_string2": {"value": mask_card(account.number)},
                    "time3": {"value": account.opened_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")},
                    "thing4": {"value": "请妥善保管账户信息"},
                }})
        return account, True

    account, opened = await risk.commit_then_refuse(work)  # a risk refusal: recorded, committed, then raised
    if account is None:
        raise AccountLimitReached()
    return account, opened


ACCOUNT_CARD_PURPOSE = "account.bound_card"
STEP_NAMES = {"phone": "绑定手机号", "id_card": "身份证验证", "face": "人脸核验", "bank_card": "同名银行卡验证",
              "agreement": "签署开户协议"}


async def _lock_holder(conn: BaseDBAsyncClient, holder_index: str) -> AccountHolder:
    holder = await AccountHolder.filter(holder_index=holder_index).select_for_update().using_db(conn).first()
    if holder is None:
        try:
            await AccountHolder.create(holder_index=holder_index, using_db=conn)
        except IntegrityError:
            pass  # created by a concurrent opening for the same person; lock theirs
        holder = await AccountHolder.filter(holder_index=holder_index).select_for_update().using_db(conn).first()
    return holder


async def _unused_number(conn: BaseDBAsyncClient, prefix: str) -> str:
    for _ in range(5):
        number = new_account_number(prefix)
        if not await Account.filter(number=number).using_db(conn).exists():
            return number
    raise RuntimeError("could not draw an unused account number")


# -- the account agreement's subject -----------------------------------------------------------------


async def _agreement_subject(ctx: ServiceContext, user_id: int, subject_id: str) -> tuple[dict, str | None]:
    """``account_agreement`` is signed for an application: its class is the agreement's variant."""
    if not subject_id.isdigit():
        raise SubjectNotFound(field="subject_id")
    app = await AccountApplication.get_or_none(id=int(subject_id), user_id=user_id)
    if app is None:
        raise SubjectNotFound(field="subject_id")
    app = await _expire_if_due(app)
    if app.status not in OPEN_STATUSES:
        raise SubjectClosed(field="subject_id")
    context: dict = {"account_class": app.account_class}
    found = await verified_identity(ctx, user_id)
    if found is not None and found[0].card_number_enc:
        context["bound_card_number"] = ctx.pii.decrypt(found[0].card_number_enc, purpose=CARD_PURPOSE)
    return context, app.account_class


register_subject("account_application", _agreement_subject)
