"""ETC-card bindings: a user's ETC card and vehicle tied to one of their Class II accounts for auto-debit.

A binding is created ``pending`` together with its ETC auto-debit authorisation (the ``etc_autodebit``
contract, whose subject is the binding), becomes ``active`` only once that authorisation is signed, may
be ``suspended`` and resumed by the user, and ends ``unbound``; every move goes through
``services.state_machine.transition`` with an audit event. While not unbound, a binding holds its card's
blind index and its plate in unique columns, so one card and one plate are bound at most once across
all users, whatever races. A pending binding lets go of them when it expires.

Partners that issue ETC cards (scope ``etc:debit`` or ``etc:read``) are told when a binding becomes
active, is suspended or ends, through the outbox (``services.partners.notify``).
"""

from __future__ import annotations

from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from core.clock import utcnow
from core.errors import AppError, Conflict, NotFound
from core.money import yuan
from core.pii import mask_card
from core.validators import ETC_CARD_RE
from models.accounts import Account, AccountStatus
from services.accounts.ledger import AccountNotFound
from models.contracts import Contract, ContractStatus
from models.etc import BindingStatus, EtcBinding
from models.partners import PartnerDebit
from services.context import ServiceContext
from services.db import atomic
from services.esign import contracts
from services.esign.contracts import register_subject
from services.esign.errors import SubjectClosed, SubjectNotFound
from services.etc import vehicles
from services.partners import notify
from services.state_machine import Machine, transition

B = BindingStatus
MACHINE = Machine(
    entity="etc_binding",
    allowed={
        B.PENDING: frozenset({B.ACTIVE, B.UNBOUND}),
        B.ACTIVE: frozenset({B.SUSPENDED, B.UNBOUND}),
        B.SUSPENDED: frozenset({B.ACTIVE, B.UNBOUND}),
    },
    milestones={B.ACTIVE: "activated_at", B.SUSPENDED: "suspended_at", B.UNBOUND: "unbound_at"},
)
AUTHORISATION = "etc_autodebit"
CARD_PURPOSE = "etc.card"
OBU_RE = r"^[0-9]{16,20}$"
PENDING_TTL_S = 24 * 3600


class BindingNotFound(NotFound):
    code, message = "BINDING_NOT_FOUND", "ETC 绑定不存在"


class EtcCardInvalid(AppError):
    status, code, message = 422, "ETC_CARD_INVALID", "ETC 卡号应为 20 位数字"


class AlreadyBound(Conflict):
    code, message = "ALREADY_BOUND", "该 ETC 卡或车牌已绑定"


class AccountNotEligible(Conflict):
    code, message = "ACCOUNT_NOT_ELIGIBLE", "ETC 代扣只能绑定状态正常的Ⅱ类户"


class AuthorisationNotSigned(Conflict):
    code, message = "AUTHORISATION_NOT_SIGNED", "请先签署 ETC 自动扣款授权书"


class ArrearsOutstanding(Conflict):
    code, message = "ARREARS_OUTSTANDING", "尚有欠费未补缴，补缴后才能解绑"


class BindingClosed(Conflict):
    code, message = "BINDING_CLOSED", "该绑定已解除"


class BindingNotActive(Conflict):
    code, message = "BINDING_NOT_ACTIVE", "该 ETC 绑定尚未生效或已暂停"


def card_index(ctx: ServiceContext, card_number: str) -> str:
    return ctx.pii.blind_index(card_number, purpose=CARD_PURPOSE)


async def _owned(user_id: int, binding_id: int) -> EtcBinding:
    binding = await EtcBinding.get_or_none(id=binding_id, user_id=user_id)
    if binding is None:
        raise BindingNotFound()
    return await _expire_if_due(binding)


async def _expire_if_due(binding: EtcBinding) -> EtcBinding:
    """A binding still pending past ``expires_at`` ends, and lets go of its card and plate."""
    if binding.status != B.PENDING or binding.expires_at > utcnow():
        return binding

    async def work(conn: BaseDBAsyncClient) -> EtcBinding:
        moved = await transition(conn, MACHINE, EtcBinding, binding.id, B.UNBOUND, actor="system",
                                 reason="authorisation not signed in time",
                                 updates={"card_key": None, "plate_key": None, "unbind_reason": "expired"})
        return moved.obj

    current = await EtcBinding.get(id=binding.id)
    return await atomic(work) if current.status == B.PENDING else current


async def create(ctx: ServiceContext, user_id: int, *, vehicle_id: int, card_number: str, account_id: int,
                 obu_id: str | None = None, client: dict | None = None) -> tuple[EtcBinding, Contract | None, bool]:
    """``(binding, authorisation to sign, created)``. The same card, car and account again, while that
    binding is pending, active or suspended, return it (a double tap makes one; once it is signed there is
    nothing more to sign, and the authorisation is ``binding.contract_id``). Before a new binding is made, risk
    control decides (subject ``etc_binding``: the card by blind index, the plate, the device and IP);
    a block or a review refuses it (``RiskBlocked``, ``RiskReview``), recorded."""
    if not ETC_CARD_RE.fullmatch(card_number or ""):
        raise EtcCardInvalid(field="card_number")
    vehicle = await vehicles.owned(user_id, vehicle_id)
    account = await Account.get_or_none(id=account_id, user_id=user_id)
    if account is None:
        raise AccountNotFound(field="account_id")
    if account.account_class != "II" or account.status != AccountStatus.ACTIVE:
        raise AccountNotEligible(field="account_id")
    index = card_index(ctx, card_number)
    plate = vehicles.plate_key(vehicle.plate_number, vehicle.plate_color)

    binding, created, decided = None, False, False
    for _ in range(2):
        mine = await EtcBinding.get_or_none(card_key=index, user_id=user_id)
        if mine is not None:
            mine = await _expire_if_due(mine)
            if mine.status != B.UNBOUND and mine.vehicle_id == vehicle.id and mine.account_id == account.id:
                binding = mine
                break
        if not decided:
            await _risk_check(account.id, user_id, index, plate, client or {})
            decided = True
        try:
            binding = await EtcBinding.create(
                user_id=user_id, vehicle_id=vehicle.id, account_id=account.id,
                card_enc=ctx.pii.encrypt(card_number, purpose=CARD_PURPOSE), card_index=index,
                card_masked=mask_card(card_number), obu_id=obu_id, plate=plate, card_key=index, plate_key=plate,
                expires_at=utcnow() + timedelta(seconds=PENDING_TTL_S))
            created = True
            break
        except IntegrityError:
            # the card or the plate is held: by a pending binding that has expired, let it go and try again
            holders = [b for b in await EtcBinding.filter(card_key=index)] + [
                b for b in await EtcBinding.filter(plate_key=plate)]
            released = [await _expire_if_due(b) for b in holders]
            if not any(b.status == B.UNBOUND for b in released):
                raise AlreadyBound() from None
    if binding is None:
        raise AlreadyBound()
    if binding.status != B.PENDING:
        return binding, None, False  # active or suspended: its authorisation is signed (``binding.contract_id``)
    prepared = await contracts.prepare(ctx, user_id, template=AUTHORISATION, subject_id=str(binding.id))
    return binding, prepared.contract, created


async def _risk_check(account_id: int, user_id: int, card_key: str, plate: str, client: dict) -> None:
    from services.risk import engine as risk

    await risk.screen(risk.Movement(
        "etc_binding", utcnow(), account_id=account_id, user_id=user_id, reference=f"etc_card:{card_key[:16]}",
        values={"etc_card": card_key, "plate": plate, "device": client.get("device"), "ip": client.get("ip")}))


async def get(user_id: int, binding_id: int) -> EtcBinding:
    return await _owned(user_id, binding_id)


async def of_user(user_id: int) -> list[EtcBinding]:
    found = await EtcBinding.filter(user_id=user_id).order_by("-id")
    return [await _expire_if_due(b) for b in found]


async def _signed_authorisation(user_id: int, binding_id: int) -> Contract | None:
    return await Contract.filter(user_id=user_id, template=AUTHORISATION, subject_id=str(binding_id),
                                 status=ContractStatus.SIGNED).order_by("-id").first()


async def activate(user_id: int, binding_id: int) -> EtcBinding:
    binding = await _owned(user_id, binding_id)
    if binding.status == B.UNBOUND:
        raise BindingClosed()
    if binding.status != B.PENDING:
        return binding  # active already (a repeat), or suspended (resume says so)
    signed = await _signed_authorisation(user_id, binding.id)
    if signed is None:
        raise AuthorisationNotSigned()

    async def work(conn: BaseDBAsyncClient) -> EtcBinding:
        moved = await transition(conn, MACHINE, EtcBinding, binding.id, B.ACTIVE, actor=f"user:{user_id}",
                                 reason="authorisation signed", updates={"contract_id": signed.id},
                                 audit_data={"contract_id": signed.id})
        if moved.changed:
            await notify.binding_event(conn, "binding.activated", moved.obj)
        return moved.obj

    return await atomic(work)


async def _move(user_id: int, binding_id: int, to: BindingStatus, *, reason: str, event: str,
                allowed_from: tuple[BindingStatus, ...], updates: dict | None = None) -> EtcBinding:
    binding = await _owned(user_id, binding_id)
    if binding.status == B.UNBOUND:
        raise BindingClosed()

    async def work(conn: BaseDBAsyncClient) -> EtcBinding:
        current = await EtcBinding.filter(id=binding.id).select_for_update().using_db(conn).first()
        if current.status == to:
            return current
        if current.status not in allowed_from:
            raise BindingNotActive()
        if to == B.UNBOUND and current.arrears_fen > 0:
            raise ArrearsOutstanding(f"尚有欠费 ¥{yuan(current.arrears_fen)} 未补缴，补缴后才能解绑")
        moved = await transition(conn, MACHINE, EtcBinding, binding.id, to, actor=f"user:{user_id}", reason=reason,
                                 updates=updates)
        if moved.before != B.PENDING:
            await notify.binding_event(conn, event, moved.obj)
        return moved.obj

    return await atomic(work)


async def suspend(user_id: int, binding_id: int) -> EtcBinding:
    return await _move(user_id, binding_id, B.SUSPENDED, reason="suspended by the user", event="binding.suspended",
                       allowed_from=(B.ACTIVE,))


async def resume(user_id: int, binding_id: int) -> EtcBinding:
    return await _move(user_id, binding_id, B.ACTIVE, reason="resumed by the user", event="binding.activated",
                       allowed_from=(B.SUSPENDED,))


async def unbind(user_id: int, binding_id: int) -> EtcBinding:
    """Ends the binding (refused while arrears are owed on it); its card and plate are free again."""
    return await _move(user_id, binding_id, B.UNBOUND, reason="unbound by the user", event="binding.unbound",
                       allowed_from=(B.PENDING, B.ACTIVE, B.SUSPENDED),
                       updates={"card_key": None, "plate_key": None, "unbind_reason": "user"})


async def debits_of(user_id: int, binding_id: int, *, cursor: int | None, limit: int) -> tuple[list, int | None]:
    """A page of what partners debited on the binding, newest first, and the cursor of the next page."""
    binding = await _owned(user_id, binding_id)
    found = PartnerDebit.filter(binding_id=binding.id)
    if cursor is not None:
        found = found.filter(id__lt=cursor)
    rows = await found.order_by("-id").limit(limit + 1)
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit else None)


# -- the authorisation's subject ---------------------------------------------------------------------


async def _authorisation_subject(ctx: ServiceContext, user_id: int, subject_id: str) -> tuple[dict, str | None]:
    """``etc_autodebit`` is signed for a pending binding: it names the car, the ETC card and the account."""
    if not subject_id.isdigit():
        raise SubjectNotFound(field="subject_id")
    binding = await EtcBinding.get_or_none(id=int(subject_id), user_id=user_id)
    if binding is None:
        raise SubjectNotFound(field="subject_id")
    binding = await _expire_if_due(binding)
    if binding.status != B.PENDING:
        raise SubjectClosed(field="subject_id")
    account = await Account.get(id=binding.account_id)
    plate, color = vehicles.plate_parts(binding.plate)
    return {
        "plate_number": plate, "plate_color": color, "account_class": account.account_class,
        "etc_card_number": ctx.pii.decrypt(binding.card_enc, purpose=CARD_PURPOSE), "account_number": account.number,
    }, None


register_subject("etc_binding", _authorisation_subject)
