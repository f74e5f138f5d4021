"""The console's customer pages (issue #23): the search, and one customer's page, masked throughout.

Search by account number (exact, ``accounts.number``), phone or ID number (through their blind indexes, the
purposes they are written with: ``user.phone``, ``identity.id_number``), or by the last 4 digits of any of
them (``users.phone_last4``, ``identities.id_number_last4``, ``accounts.number_last4``: written with the
value; rows from before those columns are filled by ``fill_last4``, a worker step). Nothing here returns a
full personal value: a member sees one only through ``services.staff.pii.reveal``, with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from core.pii import mask_card, mask_id_number, mask_name, mask_phone, redact_field
from models.accounts import Account, AccountRestriction, LedgerEntry
from models.contracts import Contract
from models.enums import DebitStatus
from models.etc import EtcBinding
from models.identity import FaceVerification, Identity, VerificationAttempt
from models.partners import PartnerDebit
from models.payments import PaymentOrder
from models.users import User
from services.accounts import restrictions
from services.context import ServiceContext
from services.identity.id_card import ID_PURPOSE, NAME_PURPOSE
from services.staff.errors import BadSearch, CustomerNotFound
from services.users import PHONE_PURPOSE

# kind -> what the form calls it
KINDS = {"account": "账号", "phone": "手机号", "id_number": "身份证号", "last4": "后四位"}
_FORMS = {
    "account": (re.compile(r"\d{12,19}"), "账号须为 12 到 19 位数字"),
    "phone": (re.compile(r"1\d{10}"), "手机号须为 11 位数字"),
    "id_number": (re.compile(r"\d{17}[\dX]"), "身份证号须为 18 位（末位可为 X）"),
    "last4": (re.compile(r"\d{3}[\dX]"), "后四位须为 4 位数字（身份证末位可为 X）"),
}
MAX_RESULTS = 50
RECENT_ENTRIES = 10
USER_MAX_ID = 2**63 - 1


def masked_query(kind: str, value: str) -> str:
    """What the audit keeps of a search: the value masked as its kind shows it (any input, valid or not)."""
    value = value.strip()[:32]
    if kind == "phone":
        return mask_phone(value)
    if kind == "id_number":
        return mask_id_number(value)
    if kind == "account":
        return mask_card(value)
    if kind == "last4":
        return "*" * max(len(value) - 4, 0) + value[-4:]  # what every masked form shows anyway
    return "*" * len(value)


def parse_query(kind: str, value: str) -> str:
    """The search value, normalised; ``BadSearch`` (400) when it is not what ``kind`` needs."""
    if kind not in _FORMS:
        raise BadSearch("请选择查询方式（账号、手机号、身份证号或后四位）", field="kind")
    pattern, message = _FORMS[kind]
    value = value.strip().upper()
    if not pattern.fullmatch(value):
        raise BadSearch(message, field="q")
    return value


@dataclass(frozen=True)
class FoundAccount:
    id: int
    number_masked: str
    account_class: str
    status: str
    opened_at: datetime


@dataclass(frozen=True)
class Found:
    user_id: int
    name_masked: str | None
    phone_masked: str | None
    id_number_masked: str | None
    created_at: datetime
    accounts: list[FoundAccount]


def _name(ctx: ServiceContext, identity: Identity | None) -> str | None:
    return mask_name(ctx.pii.decrypt(identity.name_enc, purpose=NAME_PURPOSE)) if identity else None


def _id_number(ctx: ServiceContext, identity: Identity | None) -> str | None:
    return mask_id_number(ctx.pii.decrypt(identity.id_number_enc, purpose=ID_PURPOSE)) if identity else None


def _phone(ctx: ServiceContext, user: User) -> str | None:
    return mask_phone(ctx.pii.decrypt(user.phone_enc, purpose=PHONE_PURPOSE)) if user.phone_enc else None


async def search(ctx: ServiceContext, kind: str, value: str) -> list[Found]:
    """The customers ``value`` (already ``parse_query``'d) finds, by ``kind``; each masked."""
    user_ids: set[int] = set()
    if kind == "account":
        user_ids |= set(await Account.filter(number=value).values_list("user_id", flat=True))
    elif kind == "phone":
        user_ids |= set(await User.filter(phone_index=ctx.pii.blind_index(value, purpose=PHONE_PURPOSE))
                        .values_list("id", flat=True))
    elif kind == "id_number":
        index = ctx.pii.blind_index(value, purpose=ID_PURPOSE)
        user_ids |= set(await Identity.filter(id_number_index=index).values_list("user_id", flat=True))
        # accounts keep the holder's ID number's index too (an identity since replaced)
        user_ids |= set(await Account.filter(holder_index=index).values_list("user_id", flat=True))
    elif kind == "last4":
        user_ids |= set(await User.filter(phone_last4=value).limit(MAX_RESULTS).values_list("id", flat=True))
        user_ids |= set(await Identity.filter(id_number_last4=value).limit(MAX_RESULTS)
                        .values_list("user_id", flat=True))
        user_ids |= set(await Account.filter(number_last4=value).limit(MAX_RESULTS)
                        .values_list("user_id", flat=True))
    ids = sorted(user_ids)[:MAX_RESULTS]
    if not ids:
        return []
    users = {u.id: u for u in await User.filter(id__in=ids)}
    identities = {i.user_id: i for i in await Identity.filter(user_id__in=ids)}
    accounts: dict[int, list[FoundAccount]] = {i: [] for i in ids}
    for a in await Account.filter(user_id__in=ids).order_by("id"):
        accounts[a.user_id].append(FoundAccount(a.id, mask_card(a.number), a.account_class, str(a.status),
                                                a.opened_at))
    return [Found(uid, _name(ctx, identities.get(uid)), _phone(ctx, users[uid]), _id_number(ctx, identities.get(uid)),
                  users[uid].created_at, accounts[uid]) for uid in ids if uid in users]


# -- one customer's page -----------------------------------------------------------------------------


@dataclass
class AccountView:
    id: int
    number_masked: str
    account_class: str
    status: str
    balance_fen: int
    pending_in_fen: int
    bound_card_masked: str
    opened_at: datetime
    closed_at: datetime | None
    restrictions: list[AccountRestriction]
    entries: list[LedgerEntry]


@dataclass
class CustomerPage:
    user_id: int
    created_at: datetime
    phone_masked: str | None
    phone_bound_at: datetime | None
    identity: Identity | None
    name_masked: str | None
    id_number_masked: str | None
    identity_card_masked: str | None  # the bank card checked at identity verification
    attempts: list[VerificationAttempt]
    faces: list[FaceVerification]
    contracts: list[tuple[Contract, dict]]  # each with its evidence record (masked as stored)
    accounts: list[AccountView]
    bindings: list[EtcBinding]
    arrears: list[PartnerDebit]
    arrears_fen: int
    orders: list[PaymentOrder]
    revealable: list[tuple[str, str]] = field(default_factory=list)  # (field, label) the page offers


async def customer(ctx: ServiceContext, user_id: int) -> CustomerPage:
    """Everything the console shows of one customer, masked; 404 when there is no such user."""
    if not 0 < user_id <= USER_MAX_ID:
        raise CustomerNotFound()
    # one read after another on one connection at a time: under load, asking them all at once (gather) took
    # the pool's connections from the other requests and answered slower (python -m bench customers)
    user = await User.get_or_none(id=user_id)
    if user is None:
        raise CustomerNotFound()
    identity = await Identity.get_or_none(user_id=user_id)
    accounts = await Account.filter(user_id=user_id).order_by("id")
    bindings = await EtcBinding.filter(user_id=user_id).order_by("-id").limit(50)
    contracts = await Contract.filter(user_id=user_id).order_by("-id").limit(50)
    attempts = await VerificationAttempt.filter(user_id=user_id).order_by("-id").limit(50)
    faces = await FaceVerification.filter(user_id=user_id).order_by("-id").limit(20)
    orders = await PaymentOrder.filter(user_id=user_id).order_by("-id").limit(50)
    card_masked = None
    if identity is not None and identity.card_number_enc:
        from services.identity.bank_card import CARD_PURPOSE

        card_masked = mask_card(ctx.pii.decrypt(identity.card_number_enc, purpose=CARD_PURPOSE))
    binding_ids = [b.id for b in bindings]
    in_force = await restrictions.in_force([a.id for a in accounts])
    arrears = (await PartnerDebit.filter(binding_id__in=binding_ids, status=DebitStatus.ARREARS).order_by("-id")
               .limit(50)) if binding_ids else []
    views = [AccountView(a.id, mask_card(a.number), a.account_class, str(a.status), a.balance_fen, a.pending_in_fen,
                         a.bound_card_masked, a.opened_at, a.closed_at, in_force[a.id],
                         await LedgerEntry.filter(account_id=a.id).order_by("-id").limit(RECENT_ENTRIES))
             for a in accounts]
    revealable = []
    if identity is not None:
        revealable += [("name", "姓名"), ("id_number", "身份证号")]
    if user.phone_enc:
        revealable.append(("phone", "手机号"))
    for a in accounts:
        revealable += [(f"account_number:{a.id}", f"账号 {mask_card(a.number)}"),
                       (f"bound_card:{a.id}", f"绑定卡 {a.bound_card_masked}")]
    return CustomerPage(
        user_id=user.id, created_at=user.created_at, phone_masked=_phone(ctx, user), phone_bound_at=user.phone_bound_at,
        identity=identity, name_masked=_name(ctx, identity), id_number_masked=_id_number(ctx, identity),
        identity_card_masked=card_masked,
        attempts=attempts, faces=faces,
        contracts=[(c, redact_field("evidence", c.evidence or {})) for c in contracts],
        accounts=views, bindings=bindings, arrears=arrears, arrears_fen=sum(b.arrears_fen for b in bindings),
        orders=orders,
        revealable=revealable,
    )


async def contract_pdf(ctx: ServiceContext, user_id: int, contract_id: int, *, signed: bool) -> tuple[Contract, bytes]:
    """A customer's contract PDF through the contract service (its storage, its ownership check)."""
    from services.esign import contracts

    if not (0 < user_id <= USER_MAX_ID and 0 < contract_id <= USER_MAX_ID):
        raise CustomerNotFound()
    return await (contracts.signed_pdf if signed else contracts.unsigned_pdf)(ctx, user_id, contract_id)


# -- the last-4 columns of rows written before they existed ------------------------------------------


async def fill_last4(ctx: ServiceContext, *, batch: int = 500) -> dict:
    """Fill ``phone_last4``, ``id_number_last4`` and ``number_last4`` where a value is stored and its last 4
    are not (rows from before the columns; a migration cannot decrypt). Idempotent: a row once filled is
    not looked at again; each row is written only while still empty (two workers at once write the same)."""
    done = {"users": 0, "identities": 0, "accounts": 0}
    while True:
        rows = await User.filter(phone_last4=None, phone_enc__not_isnull=True).limit(batch)
        for u in rows:
            last4 = ctx.pii.decrypt(u.phone_enc, purpose=PHONE_PURPOSE)[-4:]
            done["users"] += await User.filter(id=u.id, phone_last4=None).update(phone_last4=last4)
        if len(rows) < batch:
            break
    while True:
        rows = await Identity.filter(id_number_last4=None).limit(batch)
        for i in rows:
            last4 = ctx.pii.decrypt(i.id_number_enc, purpose=ID_PURPOSE)[-4:]
            done["identities"] += await Identity.filter(id=i.id, id_number_last4=None).update(id_number_last4=last4)
        if len(rows) < batch:
            break
    while True:
        rows = await Account.filter(number_last4=None).limit(batch)
        for a in rows:
            done["accounts"] += await Account.filter(id=a.id, number_last4=None).update(number_last4=a.number[-4:])
        if len(rows) < batch:
            break
    return done
