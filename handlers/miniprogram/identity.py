"""Uploads and the three identity checks (ID card, face 2.0, same-name bank card)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json
from sanic_ext import openapi

from core.errors import AppError
from handlers.common import authenticated, media_type, parse_body, services
from services.identity import bank_card, face, id_card, uploads

bp = Blueprint("mp_identity")


class IdCardBody(BaseModel):
    front_upload_id: int = Field(gt=0)
    back_upload_id: int = Field(gt=0)
    name: str = Field(min_length=1, max_length=64)
    id_number: str = Field(min_length=1, max_length=32)


class BankCardBody(BaseModel):
    card_number: str = Field(min_length=1, max_length=32)
    reserved_phone: str = Field(min_length=1, max_length=20)


@bp.post("/uploads")
@openapi.summary("Upload an ID photo or a signature image")
@openapi.description(
    "multipart/form-data with `file` (JPEG or PNG, checked by content, at most UPLOAD_MAX_BYTES) and "
    "`kind` (`id_front`, `id_back`, `signature`). Stored encrypted; only its owner can use it. "
    "Errors: 413 FILE_TOO_LARGE, 415 UNSUPPORTED_FILE_TYPE, 422 VALIDATION_ERROR."
)
@openapi.secured("bearer")
@openapi.tag("identity")
@authenticated
async def upload(request: Request) -> HTTPResponse:
    ctype = media_type(request)
    if ctype != "multipart/form-data":
        raise AppError("请使用 multipart/form-data 上传", code="UNSUPPORTED_MEDIA_TYPE", status=415)
    file = request.files.get("file") if request.files else None
    kind = request.form.get("kind") if request.form else None
    created = await uploads.create_upload(
        services(request), request.ctx.user_id, kind=kind or "", data=file.body if file else None
    )
    return json(uploads.public_upload(created), status=201)


@bp.post("/identity/id-card")
@openapi.summary("Verify the ID card: OCR of both sides matched against the typed name and number")
@openapi.description(
    "Errors: 422 ID_NUMBER_INVALID, ID_MISMATCH, ID_EXPIRED, UNDER_AGE, OCR_UNREADABLE; "
    "404 UPLOAD_NOT_FOUND; 429 TOO_MANY_ATTEMPTS (per day)."
)
@openapi.body({"application/json": IdCardBody})
@openapi.secured("bearer")
@openapi.tag("identity")
@authenticated
async def verify_id_card(request: Request) -> HTTPResponse:
    body = parse_body(request, IdCardBody)
    result = await id_card.verify_id_card(
        services(request),
        request.ctx.user_id,
        front_upload_id=body.front_upload_id,
        back_upload_id=body.back_upload_id,
        name=body.name,
        id_number=body.id_number,
    )
    return json(
        {
            "verified": True,
            "name": result.name,
            "id_number": result.id_number,
            "valid_until": result.valid_until.isoformat() if result.valid_until else "长期",
        }
    )


@bp.post("/identity/face")
@openapi.summary("Start a WeChat face verification 2.0 for the verified person")
@openapi.description("Returns the `verify_id` for `wx.requestFacialVerify`. Needs a verified ID card (409 ID_CARD_REQUIRED).")
@openapi.secured("bearer")
@openapi.tag("identity")
@authenticated
async def start_face(request: Request) -> HTTPResponse:
    started = await face.start(services(request), request.ctx.user_id)
    return json({"verify_id": started.verify_id, "expires_in": started.expires_in}, status=201)


@bp.post("/identity/face/<verify_id:str>/result")
@openapi.summary("Fetch the face verification result from WeChat")
@openapi.description("`passed` is true only when WeChat answers errcode 0 and verify_ret 10000. A final result is fixed.")
@openapi.secured("bearer")
@openapi.tag("identity")
@authenticated
async def face_result(request: Request, verify_id: str) -> HTTPResponse:
    result = await face.fetch_result(services(request), request.ctx.user_id, verify_id)
    return json(
        {
            "verify_id": result.verify_id,
            "status": result.status.value,
            "passed": result.passed,
            "verify_ret": result.verify_ret,
            "valid_until": result.valid_until.isoformat() if result.valid_until else None,
        }
    )


@bp.post("/identity/bank-card")
@openapi.summary("Same-name bank-card check (Class I debit or credit card)")
@openapi.description(
    "Errors: 422 CARD_NUMBER_INVALID, PHONE_INVALID, CARD_MISMATCH, CARD_NOT_FOUND, CARD_CLASS_NOT_ALLOWED; "
    "409 ID_CARD_REQUIRED; 429 TOO_MANY_ATTEMPTS."
)
@openapi.body({"application/json": BankCardBody})
@openapi.secured("bearer")
@openapi.tag("identity")
@authenticated
async def verify_bank_card(request: Request) -> HTTPResponse:
    body = parse_body(request, BankCardBody)
    result = await bank_card.verify_bank_card(
        services(request), request.ctx.user_id, card_number=body.card_number, reserved_phone=body.reserved_phone
    )
    return json(
        {"verified": True, "card_number": result.card_number, "card_class": result.card_class, "bank_name": result.bank_name}
    )
