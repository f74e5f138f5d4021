"""Contracts: templates, prepare, read the PDFs, sign, evidence, and verify any signed PDF."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from core.errors import ValidationFailed
from handlers.common import services
from handlers.spec import (
    Body,
    Id,
    Out,
    Query,
    Response,
    TrueOnly,
    UnsupportedMediaType,
    answer,
    id_param,
    media_type,
    operation,
    parse_form,
)
from models.enums import ContractStatus
from services.esign import contracts
from services.esign.contracts import ConsentRequired, ContractExpired, ContractNotSigned
from services.esign.errors import (
    ContractNotFound,
    SignatureImageInvalid,
    SubjectClosed,
    SubjectIdNotAllowed,
    SubjectIdRequired,
    SubjectNotFound,
    TimestampUnavailable,
)
from services.esign.templates import TEMPLATES
from services.identity.errors import (
    FaceVerificationInvalid,
    FaceVerificationPending,
    FaceVerificationStale,
    FaceVerificationUsed,
    IdCardRequired,
    UploadKindMismatch,
    UploadNotFound,
)

bp = Blueprint("mp_contracts")

TemplateCode = Literal[tuple(TEMPLATES)]  # type: ignore[valid-type]
StatusValue = Literal[tuple(s.value for s in ContractStatus)]  # type: ignore[valid-type]
SHA256 = Field(pattern=r"^[0-9a-f]{64}$")
PDF_BINARY = {"type": "string", "format": "binary", "minLength": 1}
CONTRACT_ID = id_param(ContractNotFound, "the contract's id")


# The template is checked by the service, which answers 422 CONTRACT_TEMPLATE_NOT_FOUND (a stable code
# the mini-program relies on); the document still lists the values.
TemplateField = Annotated[str, WithJsonSchema({"type": "string", "enum": list(TEMPLATES)})]


class PrepareBody(Body):
    template: TemplateField = Field(max_length=32, description="see GET /api/v1/contracts/templates")
    subject_id: Id | None = Field(
        default=None,
        description="what the contract is for: the account application id (account_agreement), the ETC binding "
        "id (etc_autodebit); absent for privacy_consent",
    )


class SignBody(Body):
    signature_upload_id: Id = Field(description="an upload of kind `signature` (PNG/JPEG)")
    consent: TrueOnly = Field(description="must be the JSON literal true: the user read and agrees to the contract")
    verify_id: str = Field(min_length=1, max_length=256, description="a face verification passed in the last 5 minutes")


class ListQuery(Query):
    template: TemplateCode | None = None
    status: StatusValue | None = None


class TemplateOut(Out):
    code: TemplateCode
    version: str
    title: str
    subject_type: Literal["account_application", "etc_binding"] | None
    variants: list[str]

    @classmethod
    def of(cls, template: Any) -> TemplateOut:  # type: ignore[override]
        return super().of(template, variants=list(template.variants))


class TemplatesOut(Out):
    templates: list[TemplateOut]


class ContractOut(Out):
    id: int
    contract_no: str
    template: TemplateCode
    variant: str | None
    version: str
    subject_type: Literal["account_application", "etc_binding"] | None
    subject_id: str | None
    status: StatusValue
    sha256: str = Field(description="SHA-256 of the unsigned PDF: what the user is shown and signs")
    signed_sha256: str | None
    created_at: datetime
    expires_at: datetime
    signed_at: datetime | None

    @classmethod
    def of(cls, contract: Any) -> ContractOut:  # type: ignore[override]
        return super().of(contract, sha256=contract.unsigned_sha256)


class ContractsOut(Out):
    contracts: list[ContractOut]


class Signer(Out):
    name: str
    id_number: str
    user_id: int


class IntentCheck(Out):
    method: Literal["wechat_face_2.0"]
    verify_id: str
    out_seq_no: str
    passed_at: datetime | None


class EvidenceRecord(Out):
    contract_no: str
    template: TemplateCode
    variant: str | None
    version: str
    unsigned_sha256: str
    signed_sha256: str
    signer: Signer
    signed_at: datetime
    ip: str | None
    user_agent: str
    consent: Literal[True]
    intent_check: IntentCheck
    signature_upload_id: int
    certificate_serial: str
    pades_level: Literal["B-B", "B-T"]


class AuditEventOut(Out):
    seq: int
    at: datetime
    actor: str
    action: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class EvidenceOut(Out):
    contract: ContractOut
    evidence: EvidenceRecord | None = Field(description="null until signed")
    events: list[AuditEventOut]

    @classmethod
    def of(cls, contract: Any, events: list) -> EvidenceOut:  # type: ignore[override]
        return cls(contract=ContractOut.of(contract), evidence=contract.evidence, events=events)


class VerifiedContract(Out):
    contract_no: str
    template: str
    version: str
    status: StatusValue
    matches_issued_copy: bool = Field(description="byte for byte the copy the bank issued")


class VerificationOut(Out):
    ok: bool = Field(description="signed, intact, valid, trusted and unchanged since")
    signed: bool
    valid: bool
    intact: bool
    modified_after_signing: bool
    trusted: bool
    signer_subject: str | None
    signed_at: datetime | None
    contract_ref: str | None
    template: str | None
    version: str | None
    variant: str | None
    document_kind: str | None = Field(
        description="what was signed: `contract` or `account_statement`, read from the signed revision (trust it only when `ok`)")
    statement_ref: str | None = Field(description="an account statement's number")
    statement_account: str | None = Field(description="the masked account number the statement is for")
    statement_month: str | None = Field(description="the statement's month, YYYY-MM (China Standard Time)")
    timestamped: bool
    signatures: int
    problems: list[str]
    contract: VerifiedContract | None

    @classmethod
    def of(cls, check: contracts.DocumentCheck) -> VerificationOut:  # type: ignore[override]
        found = check.contract
        return super().of(check.result, contract=None if found is None else VerifiedContract.of(
            found, matches_issued_copy=check.matches_issued_copy))


def _pdf_response(description: str) -> Response:
    return Response(
        media_type="application/pdf",
        schema=PDF_BINARY,
        description=description,
        headers={"X-Content-SHA256": {"description": "SHA-256 of the body", "schema": {"type": "string"}, "required": True}},
    )


def _pdf(data: bytes, sha256: str, filename: str) -> HTTPResponse:
    return raw(
        data,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"', "X-Content-SHA256": sha256,
                 "Cache-Control": "private, no-store"},
    )


@bp.get("/contracts/templates")
@operation(
    summary="The contract templates and their current versions",
    tag="contracts",
    responses={200: Response(TemplatesOut)},
)
async def templates(request: Request) -> HTTPResponse:
    return answer(TemplatesOut(templates=[TemplateOut.of(t) for t in TEMPLATES.values()]))


@bp.get("/contracts")
@operation(
    summary="The user's contracts, newest first (at most 100)",
    tag="contracts",
    auth=True,
    query=ListQuery,
    responses={200: Response(ContractsOut)},
)
async def list_contracts(request: Request, query: ListQuery) -> HTTPResponse:
    found = await contracts.list_for(request.ctx.user_id, template=query.template, status=query.status)
    return answer(ContractsOut(contracts=[ContractOut.of(c) for c in found]))


@bp.post("/contracts")
@operation(
    summary="Prepare a contract: render the unsigned PDF and return its SHA-256",
    description="Returns the open draft for the same template and subject (200) or a new one (201): concurrent "
    "requests get the same draft. Needs a verified ID card.",
    tag="contracts",
    auth=True,
    body=PrepareBody,
    responses={200: Response(ContractOut, description="the existing draft"), 201: Response(ContractOut, description="a new draft")},
    errors=(IdCardRequired, SubjectNotFound, SubjectClosed, SubjectIdRequired, SubjectIdNotAllowed, (422, "CONTRACT_TEMPLATE_NOT_FOUND")),
)
async def prepare(request: Request, body: PrepareBody) -> HTTPResponse:
    subject = str(body.subject_id) if body.subject_id is not None else None
    prepared = await contracts.prepare(services(request), request.ctx.user_id, template=body.template, subject_id=subject)
    return answer(ContractOut.of(prepared.contract), status=201 if prepared.created else 200)


@bp.get("/contracts/<contract_id:int>")
@operation(
    summary="A contract's status and hashes",
    tag="contracts",
    auth=True,
    path={"contract_id": CONTRACT_ID},
    responses={200: Response(ContractOut)},
)
async def get_contract(request: Request, contract_id: int) -> HTTPResponse:
    return answer(ContractOut.of(await contracts.get(request.ctx.user_id, contract_id)))


@bp.get("/contracts/<contract_id:int>/pdf")
@operation(
    summary="The unsigned PDF (its SHA-256 is the one the user is shown)",
    tag="contracts",
    auth=True,
    path={"contract_id": CONTRACT_ID},
    responses={200: _pdf_response("the unsigned contract")},
)
async def unsigned_pdf(request: Request, contract_id: int) -> HTTPResponse:
    contract, data = await contracts.unsigned_pdf(services(request), request.ctx.user_id, contract_id)
    return _pdf(data, contract.unsigned_sha256, f"{contract.contract_no}.pdf")


@bp.get("/contracts/<contract_id:int>/signed.pdf")
@operation(
    summary="The signed PDF (PAdES), once signed",
    tag="contracts",
    auth=True,
    path={"contract_id": CONTRACT_ID},
    responses={200: _pdf_response("the contract signed by the bank")},
    errors=(ContractNotSigned,),
)
async def signed_pdf(request: Request, contract_id: int) -> HTTPResponse:
    contract, data = await contracts.signed_pdf(services(request), request.ctx.user_id, contract_id)
    return _pdf(data, contract.signed_sha256 or "", f"{contract.contract_no}-signed.pdf")


@bp.post("/contracts/<contract_id:int>/sign")
@operation(
    summary="Sign: explicit consent, a handwritten signature image, and a fresh face verification",
    description="The bank then signs the PDF (PAdES B-B; B-T with a TSA). Signing a signed contract returns it "
    "unchanged. The face verification's result must have been fetched (POST /identity/face/{verify_id}/result) "
    "and passed within 5 minutes, for the person on the current ID card; it is used up by the signing.",
    tag="contracts",
    auth=True,
    path={"contract_id": CONTRACT_ID},
    body=SignBody,
    responses={200: Response(ContractOut)},
    errors=(ConsentRequired, FaceVerificationInvalid, FaceVerificationPending, FaceVerificationStale,
            FaceVerificationUsed, SignatureImageInvalid, ContractExpired, UploadNotFound, UploadKindMismatch,
            IdCardRequired, TimestampUnavailable),
)
async def sign(request: Request, contract_id: int, body: SignBody) -> HTTPResponse:
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
    return answer(ContractOut.of(signed))


@bp.get("/contracts/<contract_id:int>/evidence")
@operation(
    summary="The evidence record and the contract's hash-chained audit events",
    tag="contracts",
    auth=True,
    path={"contract_id": CONTRACT_ID},
    responses={200: Response(EvidenceOut)},
)
async def evidence(request: Request, contract_id: int) -> HTTPResponse:
    return answer(EvidenceOut.of(*await contracts.evidence(request.ctx.user_id, contract_id)))


VERIFY_BODY = {
    "application/pdf": {"schema": PDF_BINARY},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "additionalProperties": False,
            "properties": {"file": {**PDF_BINARY, "description": "the PDF"}},
        },
        "encoding": {"file": {"contentType": "application/pdf"}},
    },
}


@bp.post("/contracts/verify")
@operation(
    summary="Verify a signed PDF: signed by the bank? changed after signing? which contract or statement?",
    description="Any PDF the bank signs: a contract, or an account statement "
    "(`GET /api/v1/accounts/{account_id}/statements/{month}.pdf`). Send the PDF as the raw body (`application/pdf`) "
    "or as multipart field `file`. Anyone holding a document may learn this much about it; the owner and the "
    "evidence stay private.",
    tag="contracts",
    auth=True,
    body_media=VERIFY_BODY,
    responses={200: Response(VerificationOut)},
    errors=(ValidationFailed,),
)
async def verify(request: Request) -> HTTPResponse:
    ctype = media_type(request)
    if ctype == "multipart/form-data":
        data = parse_form(request, {"file"}).files.get("file") or b""
    elif ctype == "application/pdf":
        data = request.body or b""
    else:
        raise UnsupportedMediaType("请上传 PDF 文件")
    if not data:
        raise ValidationFailed("请上传 PDF 文件", field="file")
    return answer(VerificationOut.of(await contracts.verify_document(services(request), data)))
