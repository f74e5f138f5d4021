"""Contracts: templates, prepare, read the PDFs, sign, evidence, and verify any signed PDF."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json, raw
from sanic_ext import openapi

from core.errors import AppError, ValidationFailed
from handlers.common import authenticated, media_type, parse_body, services
from services.esign import contracts
from services.esign.templates import list_templates

bp = Blueprint("mp_contracts")


class PrepareBody(BaseModel):
    template: str = Field(min_length=1, max_length=32, description="account_agreement | etc_autodebit | privacy_consent")
    subject_id: str | int | None = Field(default=None, description="application id, ETC binding id, or absent")


class SignBody(BaseModel):
    signature_upload_id: int = Field(gt=0, description="an upload of kind `signature` (PNG/JPEG)")
    consent: bool = Field(description="must be true: the user read and agrees to the contract")
    verify_id: str = Field(min_length=1, max_length=255, description="a face verification passed in the last 5 minutes")


def _pdf(data: bytes, sha256: str, filename: str) -> HTTPResponse:
    return raw(
        data,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"', "X-Content-SHA256": sha256,
                 "Cache-Control": "private, no-store"},
    )


@bp.get("/contracts/templates")
@openapi.summary("The contract templates and their current versions")
@openapi.tag("contracts")
async def templates(request: Request) -> HTTPResponse:
    return json({"templates": list_templates()})


@bp.get("/contracts")
@openapi.summary("The user's contracts, newest first (filter by `template`, `status`)")
@openapi.parameter("template", str, "query")
@openapi.parameter("status", str, "query")
@openapi.secured("bearer")
@openapi.tag("contracts")
@authenticated
async def list_contracts(request: Request) -> HTTPResponse:
    found = await contracts.list_for(
        request.ctx.user_id, template=request.args.get("template"), status=request.args.get("status")
    )
    return json({"contracts": [contracts.public_contract(c) for c in found]})


@bp.post("/contracts")
@openapi.summary("Prepare a contract: render the unsigned PDF and return its SHA-256")
@openapi.description(
    "Returns the existing unexpired draft for the same template and subject (200) or a new one (201). "
    "Needs a verified ID card (409 ID_CARD_REQUIRED). 422 CONTRACT_TEMPLATE_NOT_FOUND; 404 SUBJECT_NOT_FOUND."
)
@openapi.body({"application/json": PrepareBody})
@openapi.secured("bearer")
@openapi.tag("contracts")
@authenticated
async def prepare(request: Request) -> HTTPResponse:
    body = parse_body(request, PrepareBody)
    subject = str(body.subject_id) if body.subject_id is not None else None
    prepared = await contracts.prepare(services(request), request.ctx.user_id, template=body.template, subject_id=subject)
    return json(contracts.public_contract(prepared.contract), status=201 if prepared.created else 200)


@bp.get("/contracts/<contract_id:int>")
@openapi.summary("A contract's status and hashes")
@openapi.secured("bearer")
@openapi.tag("contracts")
@authenticated
async def get_contract(request: Request, contract_id: int) -> HTTPResponse:
    return json(contracts.public_contract(await contracts.get(request.ctx.user_id, contract_id)))


@bp.get("/contracts/<contract_id:int>/pdf")
@openapi.summary("The unsigned PDF (its SHA-256 is the one the user is shown)")
@openapi.secured("bearer")
@openapi.tag("contracts")
@authenticated
async def unsigned_pdf(request: Request, contract_id: int) -> HTTPResponse:
    contract, data = await contracts.unsigned_pdf(services(request), request.ctx.user_id, contract_id)
    return _pdf(data, contract.unsigned_sha256, f"{contract.contract_no}.pdf")


@bp.get("/contracts/<contract_id:int>/signed.pdf")
@openapi.summary("The signed PDF (PAdES), once signed (409 CONTRACT_NOT_SIGNED before)")
@openapi.secured("bearer")
@openapi.tag("contracts")
@authenticated
async def signed_pdf(request: Request, contract_id: int) -> HTTPResponse:
    contract, data = await contracts.signed_pdf(services(request), request.ctx.user_id, contract_id)
    return _pdf(data, contract.signed_sha256 or "", f"{contract.contract_no}-signed.pdf")


@bp.post("/contracts/<contract_id:int>/sign")
@openapi.summary("Sign: explicit consent, a handwritten signature image, and a fresh face verification")
@openapi.description(
    "The bank then signs the PDF (PAdES B-B; B-T with a TSA). Signing a signed contract returns it unchanged. "
    "Errors: 422 CONSENT_REQUIRED, FACE_VERIFICATION_INVALID / _STALE / _USED, SIGNATURE_IMAGE_INVALID; "
    "409 CONTRACT_EXPIRED; 404 CONTRACT_NOT_FOUND, UPLOAD_NOT_FOUND."
)
@openapi.body({"application/json": SignBody})
@openapi.secured("bearer")
@openapi.tag("contracts")
@authenticated
async def sign(request: Request, contract_id: int) -> HTTPResponse:
    body = parse_body(request, SignBody)
    signed = await contracts.sign(
        services(request),
        request.ctx.user_id,
        contract_id,
        signature_upload_id=body.signature_upload_id,
        consent=body.consent,
        verify_id=body.verify_id,
        ip=request.remote_addr or request.ip,
        user_agent=request.headers.get("user-agent"),
    )
    return json(contracts.public_contract(signed))


@bp.get("/contracts/<contract_id:int>/evidence")
@openapi.summary("The evidence record and the contract's hash-chained audit events")
@openapi.secured("bearer")
@openapi.tag("contracts")
@authenticated
async def evidence(request: Request, contract_id: int) -> HTTPResponse:
    return json(await contracts.evidence(request.ctx.user_id, contract_id))


@bp.post("/contracts/verify")
@openapi.summary("Verify a signed PDF: signed by the bank? changed after signing? which contract?")
@openapi.description("Send the PDF as the raw body (`application/pdf`) or as multipart field `file`.")
@openapi.secured("bearer")
@openapi.tag("contracts")
@authenticated
async def verify(request: Request) -> HTTPResponse:
    ctype = media_type(request)
    if ctype == "multipart/form-data":
        file = request.files.get("file") if request.files else None
        data = file.body if file else b""
    elif ctype in ("application/pdf", "application/octet-stream"):
        data = request.body or b""
    else:
        raise AppError("请上传 PDF 文件", code="UNSUPPORTED_MEDIA_TYPE", status=415)
    if not data:
        raise ValidationFailed("请上传 PDF 文件", field="file")
    return json(await contracts.verify_document(services(request), data))
