"""ID card check: typed name and number, OCR of both sides, and the bank's rules on the result.

Order matters for cost and fairness: input that is wrong on its face (bad checksum, unknown region)
is refused before an attempt is counted; everything that reaches WeChat's OCR counts.

Who a user is becomes fixed once they hold an account (of any status) or have signed a contract: the
account, the agreement and the evidence name that person. After that the same person's card can be
verified again (a renewal: a new validity date, the same name and number), but another ID number is
``IDENTITY_FIXED`` and another name ``IDENTITY_NAME_CHANGED`` (a change of name is done at a branch),
each refused before any attempt is counted and again under the identity's lock when it is saved. A
renewed card must be valid today, as at opening (``ID_EXPIRED``). Saving it does not lift an account's
``ID_EXPIRED`` restriction: the face verification that follows does (``services.identity.face``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from core.clock import china_day, utcnow
from core.errors import ValidationFailed
from core.pii import mask_id_number, mask_name
from core.validators import ResidentId, age_on, name_ok, parse_id_number
from integrations.wechat import WeChatAPIError, WeChatUnavailable
from models.accounts import Account
from models.contracts import Contract, ContractStatus
from models.identity import AttemptKind, Identity, UploadKind
from services import audit
from services.accounts.rules import youngest_opening_age
from services.context import ServiceContext
from services.db import atomic
from services.identity import attempts
from services.identity.errors import (
    IdentityFixed, IdentityNameChanged, IdExpired, IdMismatch, IdNumberInvalid, OcrUnreadable, UnderAge,
)
from services.identity.uploads import read_upload
from services.wechat_errors import translate

NAME_PURPOSE = "identity.name"
ID_PURPOSE = "identity.id_number"
ADDRESS_PURPOSE = "identity.address"
OCR_UNREADABLE_ERRCODES = {101000, 101001, 101002, 101003}


@dataclass(frozen=True)
class IdCardResult:
    name: str
    id_number: str
    valid_until: date | None


def parse_valid_date(raw: str) -> date | None:
    """``20070105-20270105`` -> 2027-01-05; ``...-长期`` -> None (valid long-term)."""
    try:
        _, end = raw.split("-", 1)
        if end.strip() == "长期":
            return None
        return date(int(end[:4]), int(end[4:6]), int(end[6:8]))
    except (ValueError, AttributeError):
        raise OcrUnreadable("无法识别身份证有效期，请重新拍摄身份证背面", field="back_upload_id") from None


async def _ocr(ctx: ServiceContext, image: bytes, content_type: str, *, want: str, field: str) -> dict:
    try:
        data = await ctx.wechat.ocr_idcard(image, content_type=content_type)
    except WeChatAPIError as exc:
        if exc.errcode in OCR_UNREADABLE_ERRCODES:
            raise OcrUnreadable(field=field) from exc
        raise translate(exc) from exc
    except WeChatUnavailable as exc:
        raise translate(exc) from exc
    if data.get("type") != want:
        side = "人像面" if want == "Front" else "国徽面"
        raise OcrUnreadable(f"请上传身份证{side}照片", field=field)
    return data


async def identity_fixed(user_id: int, conn=None) -> bool:
    """The user holds an account or has signed anything: their identity can no longer change person."""
    accounts = Account.filter(user_id=user_id)
    signed = Contract.filter(user_id=user_id, status=ContractStatus.SIGNED)
    if conn is not None:
        accounts, signed = accounts.using_db(conn), signed.using_db(conn)
    return await accounts.exists() or await signed.exists()


async def _refuse_another_person(ctx: ServiceContext, user_id: int, id_index: str, name: str, conn=None) -> None:
    identity = Identity.filter(user_id=user_id)
    identity = await (identity.using_db(conn).select_for_update() if conn is not None else identity).first()
    if identity is None:
        return
    same_number = identity.id_number_index == id_index
    if same_number and ctx.pii.decrypt(identity.name_enc, purpose=NAME_PURPOSE) == name:
        return  # the same person's card again: always allowed
    if await identity_fixed(user_id, conn):
        if not same_number:
            raise IdentityFixed(field="id_number")
        raise IdentityNameChanged(field="name")


async def verify_id_card(
    ctx: ServiceContext, user_id: int, *, front_upload_id: int, back_upload_id: int, name: str, id_number: str
) -> IdCardResult:
    name = name.strip()
    if not name_ok(name):
        raise ValidationFailed("请填写身份证上的中文姓名", field="name")
    rid: ResidentId | None = parse_id_number(id_number)
    if rid is None:
        raise IdNumberInvalid(field="id_number")
    front, front_bytes = await read_upload(ctx, user_id, front_upload_id, kind=UploadKind.ID_FRONT, field="front_upload_id")
    back, back_bytes = await read_upload(ctx, user_id, back_upload_id, kind=UploadKind.ID_BACK, field="back_upload_id")
    id_index = ctx.pii.blind_index(rid.number, purpose=ID_PURPOSE)
    await _refuse_another_person(ctx, user_id, id_index, name)

    await attempts.take_slot(user_id, AttemptKind.ID_CARD, ctx.settings.daily_attempt_limit)
    inputs = {"name": mask_name(name), "id_number": mask_id_number(rid.number), "front": front.id, "back": back.id}
    try:
        ocr_front = await _ocr(ctx, front_bytes, front.content_type, want="Front", field="front_upload_id")
        ocr_back = await _ocr(ctx, back_bytes, back.content_type, want="Back", field="back_upload_id")
        if (ocr_front.get("name") or "").strip() != name or (ocr_front.get("id") or "").strip().upper() != rid.number:
            raise IdMismatch()
        valid_until = parse_valid_date(ocr_back.get("valid_date", ""))
        today = china_day()
        if valid_until is not None and valid_until < today:
            raise IdExpired()
        if age_on(rid.birth_date, today) < youngest_opening_age():
            raise UnderAge()
    except Exception as exc:
        await attempts.record(user_id, AttemptKind.ID_CARD, getattr(exc, "code", "ERROR"), inputs=inputs)
        raise

    address = (ocr_front.get("addr") or "").strip()

    async def save(conn) -> Identity:
        await _refuse_another_person(ctx, user_id, id_index, name, conn)  # again, under the lock: an account opened meanwhile
        identity = await Identity.filter(user_id=user_id).select_for_update().using_db(conn).first()
        fields = dict(
            name_enc=ctx.pii.encrypt(name, purpose=NAME_PURPOSE),
            id_number_enc=ctx.pii.encrypt(rid.number, purpose=ID_PURPOSE),
            id_number_index=id_index,
            id_number_last4=rid.number[-4:],  # the console's last-4 search (services.staff.customers)
            address_enc=ctx.pii.encrypt(address, purpose=ADDRESS_PURPOSE) if address else None,
            birth_date=rid.birth_date,
            id_valid_until=valid_until,
            id_verified_at=utcnow(),
        )
        if identity is None:
            identity = await Identity.create(user_id=user_id, **fields, using_db=conn)
        else:
            if identity.id_number_index != id_index:
                # A different person's card: nothing verified for the previous one carries over.
                fields.update(face_passed_at=None, card_number_enc=None, card_number_index=None,
                              card_phone_enc=None, card_class=None, card_bank_name=None, card_verified_at=None)
            await Identity.filter(id=identity.id).using_db(conn).update(**fields)
        await audit.append(
            conn, actor=f"user:{user_id}", action="identity.id_card.verified", entity_type="user",
            entity_id=user_id, data={**inputs, "valid_until": valid_until.isoformat() if valid_until else "长期"},
        )
        return identity

    await atomic(save)
    await attempts.record(user_id, AttemptKind.ID_CARD, "OK", inputs=inputs)
    return IdCardResult(mask_name(name), mask_id_number(rid.number), valid_until)


async def verified_identity(ctx: ServiceContext, user_id: int) -> tuple[Identity, str, str] | None:
    """The user's verified identity with name and ID number decrypted, or None."""
    identity = await Identity.get_or_none(user_id=user_id)
    if identity is None:
        return None
    return (
        identity,
        ctx.pii.decrypt(identity.name_enc, purpose=NAME_PURPOSE),
        ctx.pii.decrypt(identity.id_number_enc, purpose=ID_PURPOSE),
    )
