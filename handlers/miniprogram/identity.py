"""Uploads and the three identity checks (ID card, face 2.0, same-name bank card)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from core.errors import RateLimited, UpstreamUnavailable, ValidationFailed
from core.validators import CARD_RE, MOBILE_RE, NAME_RE
from handlers.common import services
from handlers.spec import (
    Body,
    Id,
    Out,
    Response,
    answer,
    checked_string,
    operation,
    parse_form,
    str_param,
)
from models.enums import UploadKind
from services.identity import bank_card, face, id_card, uploads
from services.identity.errors import (
    CardClassNotAllowed,
    CardMismatch,
    CardNotFound,
    CardNumberInvalid,
    FaceVerificationFailed,
    FaceVerificationNotFound,
    FileTooLarge,
    IdCardRequired,
    IdExpired,
    IdentityFixed,
    IdentityNameChanged,
    IdMismatch,
    IdNumberInvalid,
    ImageTooLarge,
    OcrUnreadable,
    PhoneInvalid,
    TooManyAttempts,
    UnderAge,
    UnsupportedFileType,
    UploadKindMismatch,
    UploadNotFound,
)
from services.wechat_errors import WECHAT_ERRORS

bp = Blueprint("mp_identity")

VERIFY_ID_MAX = 256  # WeChat: verify_id is at most 256 characters
UPLOAD_FIELDS = {"file", "kind"}


class IdCardBody(Body):
    front_upload_id: Id = Field(description="an upload of kind `id_front`")
    back_upload_id: Id = Field(description="an upload of kind `id_back`")
    name: checked_string(pattern=NAME_RE.pattern, min_length=2, max_length=30) = Field(
        description="the name as printed on the card (Chinese characters, · in minority names)")
    id_number: checked_string(pattern=r"^[0-9]{17}[0-9Xx]$", min_length=18, max_length=18) = Field(
        description="GB 11643: region, birth date and check character are verified (python-stdnum)")


class BankCardBody(Body):
    card_number: checked_string(pattern=CARD_RE.pattern, min_length=12, max_length=19) = Field(
        description="a Class I debit or credit card in the user's name (the Luhn check digit is verified)")
    reserved_phone: checked_string(pattern=MOBILE_RE.pattern, min_length=11, max_length=11) = Field(
        description="the mobile number the card's bank holds")


class UploadOut(Out):
    id: int
    kind: Literal["id_front", "id_back", "signature"]
    size: int
    content_type: Literal["image/jpeg", "image/png"]


class IdCardOut(Out):
    verified: Literal[True]
    name: str = Field(description="masked")
    id_number: str = Field(description="masked")
    valid_until: str = Field(description="YYYY-MM-DD, or 长期 (long-term)")

    @classmethod
    def of(cls, result: id_card.IdCardResult) -> IdCardOut:  # type: ignore[override]
        return super().of(result, verified=True,
                          valid_until=result.valid_until.isoformat() if result.valid_until else "长期")


class FaceStartOut(Out):
    verify_id: str = Field(description="for wx.requestFacialVerify")
    expires_in: int


class FaceResultOut(Out):
    verify_id: str
    status: Literal["pending", "passed", "failed", "expired"]
    passed: bool
    verify_ret: int | None = Field(description="WeChat's code: 10000 is a pass")
    valid_until: datetime | None = Field(description="until when a pass counts as a fresh face check")


class BankCardOut(Out):
    verified: Literal[True]
    card_number: str = Field(description="masked: 622202******1234")
    card_class: Literal["I", "credit"]
    bank_name: str | None

    @classmethod
    def of(cls, result: bank_card.BankCardResult) -> BankCardOut:  # type: ignore[override]
        return super().of(result, verified=True)


UPLOAD_FORM = {
    "schema": {
        "type": "object",
        "required": ["file", "kind"],
        "additionalProperties": False,
        "properties": {
            "file": {"type": "string", "format": "binary", "minLength": 1, "description": "JPEG or PNG, checked by content"},
            "kind": {"type": "string", "enum": [k.value for k in UploadKind]},
        },
    },
    "encoding": {"file": {"contentType": "image/jpeg, image/png"}},
}


@bp.post("/uploads")
@operation(
    limit="upload",
    summary="Upload an ID photo or a signature image",
    description="multipart/form-data with `file` (JPEG or PNG, checked by content: ID photos at most 2 MB, "
    "signatures at most UPLOAD_MAX_BYTES, at most 40 megapixels) and `kind`. Stored encrypted; only its owner "
    "can use it.",
    tag="identity",
    auth=True,
    body_media={"multipart/form-data": UPLOAD_FORM},
    responses={201: Response(UploadOut, description="stored")},
    errors=(FileTooLarge, UnsupportedFileType, ImageTooLarge, ValidationFailed),
)
async def upload(request: Request) -> HTTPResponse:
    form = parse_form(request, UPLOAD_FIELDS)
    created = await uploads.create_upload(
        services(request), request.ctx.user_id, kind=form.fields.get("kind") or "", data=form.files.get("file")
    )
    return answer(UploadOut.model_validate(created), status=201)


@bp.post("/identity/id-card")
@operation(
    limit="identity",
    summary="Verify the ID card: OCR of both sides matched against the typed name and number",
    description="The card must not be expired, and the holder must be old enough for some account class (the "
    "account rules table). Each call that "
    "reaches the OCR counts against the daily attempt limit. Once the user holds an account or has signed, only "
    "the same person's card is accepted (a renewal: the same name and number, a new validity date): another "
    "number is 409 IDENTITY_FIXED, another name 409 IDENTITY_NAME_CHANGED. A renewal does not lift an account's "
    "ID_EXPIRED restriction by itself: the face verification that follows does.",
    tag="identity",
    auth=True,
    body=IdCardBody,
    responses={200: Response(IdCardOut)},
    errors=(IdNumberInvalid, IdMismatch, IdExpired, UnderAge, OcrUnreadable, UploadNotFound, UploadKindMismatch,
            IdentityFixed, IdentityNameChanged, TooManyAttempts, *WECHAT_ERRORS),
)
async def verify_id_card(request: Request, body: IdCardBody) -> HTTPResponse:
    result = await id_card.verify_id_card(
        services(request),
        request.ctx.user_id,
        front_upload_id=body.front_upload_id,
        back_upload_id=body.back_upload_id,
        name=body.name,
        id_number=body.id_number,
    )
    return answer(IdCardOut.of(result))


@bp.post("/identity/face")
@operation(
    limit="identity",
    summary="Start a WeChat face verification 2.0 for the verified person",
    description="Returns the `verify_id` for `wx.requestFacialVerify` (base library >= 3.8.12). Counts against "
    "the daily attempt limit.",
    tag="identity",
    auth=True,
    responses={201: Response(FaceStartOut, description="started")},
    errors=(IdCardRequired, TooManyAttempts, *WECHAT_ERRORS),
)
async def start_face(request: Request) -> HTTPResponse:
    started = await face.start(services(request), request.ctx.user_id)
    return answer(FaceStartOut.model_validate(started), status=201)


@bp.post("/identity/face/<verify_id:str>/result")
@operation(
    summary="Fetch the face verification result from WeChat",
    description="`passed` is true only when WeChat answers errcode 0 and verify_ret 10000. A final result is "
    "fixed: asking again cannot turn a fail into a pass. A pass while the ID card on file is valid today lifts "
    "ID_EXPIRED on all the user's accounts (the renewal's last step).",
    tag="identity",
    auth=True,
    path={"verify_id": str_param(VERIFY_ID_MAX, FaceVerificationNotFound, "from POST /identity/face")},
    responses={200: Response(FaceResultOut)},
    errors=(IdCardRequired, FaceVerificationFailed, RateLimited, UpstreamUnavailable),
)
async def face_result(request: Request, verify_id: str) -> HTTPResponse:
    result = await face.fetch_result(services(request), request.ctx.user_id, verify_id)
    return answer(FaceResultOut.model_validate(result))


@bp.post("/identity/bank-card")
@operation(
    limit="identity",
    summary="Same-name bank-card check (Class I debit or credit card)",
    description="The card network confirms name, ID number, card number and reserved phone. Counts against the "
    "daily attempt limit once the card number and phone are well-formed.",
    tag="identity",
    auth=True,
    body=BankCardBody,
    responses={200: Response(BankCardOut)},
    errors=(CardNumberInvalid, PhoneInvalid, CardMismatch, CardNotFound, CardClassNotAllowed, IdCardRequired,
            TooManyAttempts, UpstreamUnavailable),
)
async def verify_bank_card(request: Request, body: BankCardBody) -> HTTPResponse:
    result = await bank_card.verify_bank_card(
        services(request), request.ctx.user_id, card_number=body.card_number, reserved_phone=body.reserved_phone
    )
    return answer(BankCardOut.of(result))
