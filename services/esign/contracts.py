"""Contracts: prepare (render and store the unsigned PDF), sign (intent check, bank signature,
evidence), and read back. The document core (templates, render, signing, verification) is pure; this
module owns the entity, its state machine and the evidence trail.

Moves: draft -> signed | expired | void. Signing twice returns the first result.

Subjects are generic: a template names the kind of thing it is signed for (an account application, an
ETC binding, or nothing for the privacy consent), and the domain that owns that kind registers a
resolver with ``register_subject`` that checks ownership and supplies the template's context.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from tortoise.exceptions import IntegrityError

from core.clock import CHINA_TZ, china_day, utcnow
from core.errors import AppError, Conflict, ValidationFailed
from core.pii import mask_id_number, mask_name, mask_phone
from models.contracts import Contract, ContractStatus
from models.identity import UploadKind
from models.users import User
from models.audit import AuditEvent
from services import audit
from services.context import ServiceContext
from services.db import atomic
from services.esign.errors import (
    ContractNotFound,
    SubjectIdNotAllowed,
    SubjectIdRequired,
    SubjectNotFound,
    TemplateNotFound,
)
from services.esign.templates import get_template
from services.esign.verification import VerificationResult, verify_pdf_async
from services.identity import face
from services.identity.errors import IdCardRequired
from services.identity.id_card import verified_identity
from services.identity.uploads import read_upload
from services.state_machine import Machine, transition
from services.users import phone_of

PDF_PURPOSE = "contract.pdf"

MACHINE = Machine(
    entity="contract",
    allowed={ContractStatus.DRAFT: frozenset({ContractStatus.SIGNED, ContractStatus.EXPIRED, ContractStatus.VOID})},
    milestones={
        ContractStatus.SIGNED: "signed_at",
        ContractStatus.EXPIRED: "expired_at",
        ContractStatus.VOID: "voided_at",
    },
)

# subject_type -> resolver(ctx, user_id, subject_id) -> (template context, variant). Registered by
# the domains that own those subjects (accounts: "account_application"; ETC: "etc_binding").
SubjectResolver = Callable[[ServiceContext, int, str], Awaitable[tuple[dict, str | None]]]
SUBJECTS: dict[str, SubjectResolver] = {}


def register_subject(subject_type: str, resolver: SubjectResolver) -> None:
    SUBJECTS[subject_type] = resolver


class ContractExpired(Conflict):
    code, message = "CONTRACT_EXPIRED", "合同已过期，请重新发起"


class ContractNotSigned(Conflict):
    code, message = "CONTRACT_NOT_SIGNED", "合同尚未签署"


class ConsentRequired(AppError):
    status, code, message = 422, "CONSENT_REQUIRED", "请阅读并勾选同意合同条款"


@dataclass(frozen=True)
class Prepared:
    contract: Contract
    created: bool


def new_contract_no() -> str:
    return f"HT{utcnow().astimezone(CHINA_TZ):%Y%m%d}{secrets.token_hex(5).upper()}"


async def _owned(user_id: int, contract_id: int) -> Contract:
    contract = await Contract.get_or_none(id=contract_id, user_id=user_id)
    if contract is None:
        raise ContractNotFound()
    return contract


def draft_key(user_id: int, template: str, subject_id: str | None) -> str:
    """The key of the one open draft a user may have per template and subject."""
    return f"{user_id}:{template}:{subject_id or ''}"


async def _open_draft(key: str) -> Contract | None:
    found = await Contract.get_or_none(draft_key=key)
    return await _expire_if_due(found) if found is not None else None


async def prepare(ctx: ServiceContext, user_id: int, *, template: str, subject_id: str | None) -> Prepared:
    """The user's open draft for this template and subject, or a new one.

    Concurrent calls (a double tap, two workers) get the same draft: the unique ``draft_key`` lets one
    insert win; the others return the winner's row and delete the PDF they rendered in vain."""
    try:
        tpl = get_template(template)
    except TemplateNotFound:
        raise ValidationFailed("合同模板不存在", code="CONTRACT_TEMPLATE_NOT_FOUND", field="template") from None
    found = await verified_identity(ctx, user_id)
    if found is None:
        raise IdCardRequired()
    _, name, id_number = found

    subject_context: dict = {}
    variant = None
    if tpl.subject_type is None:
        if subject_id is not None:
            raise SubjectIdNotAllowed(field="subject_id")
    else:
        if subject_id is None:
            raise SubjectIdRequired(field="subject_id")
        resolver = SUBJECTS.get(tpl.subject_type)
        if resolver is None:
            raise SubjectNotFound(field="subject_id")
        subject_context, variant = await resolver(ctx, user_id, subject_id)

    key_of_draft = draft_key(user_id, tpl.code, subject_id)
    existing = await _open_draft(key_of_draft)
    if existing is not None and existing.status == ContractStatus.DRAFT:
        return Prepared(existing, False)

    user = await User.get(id=user_id)
    phone = phone_of(ctx, user)
    contract_no = new_contract_no()
    context = {
        "signer_name": mask_name(name),
        "signer_id_number": mask_id_number(id_number),
        "signer_phone": mask_phone(phone) if phone else None,
        "date": china_day(utcnow()),
        **subject_context,
    }
    rendered = await ctx.contract_workers.render(tpl.code, context, variant=variant, contract_ref=contract_no)
    key = await ctx.storage.put(rendered.pdf, purpose=PDF_PURPOSE)

    async def save(conn) -> Contract:
        contract = await Contract.create(
            contract_no=contract_no,
            user_id=user_id,
            template=tpl.code,
            variant=rendered.variant,
            version=rendered.version,
            subject_type=tpl.subject_type,
            subject_id=subject_id,
            draft_key=key_of_draft,
            unsigned_sha256=rendered.sha256,
            unsigned_key=key,
            expires_at=utcnow() + timedelta(seconds=ctx.settings.contract_draft_ttl_s),
            using_db=conn,
        )
        await audit.append(
            conn, actor=f"user:{user_id}", action="contract.draft", entity_type="contract", entity_id=contract.id,
            data={"contract_no": contract_no, "template": tpl.code, "version": rendered.version,
                  "unsigned_sha256": rendered.sha256},
        )
        return contract

    try:
        return Prepared(await atomic(save), True)
    except IntegrityError:
        # Another request inserted the draft first (the only unique value here that can collide is
        # draft_key): theirs is the draft; ours is an orphan file.
        await ctx.storage.delete(key)
        winner = await Contract.get_or_none(draft_key=key_of_draft)
        if winner is None:
            raise
        return Prepared(winner, False)


async def list_for(user_id: int, *, template: str | None = None, status: str | None = None) -> list[Contract]:
    query = Contract.filter(user_id=user_id)
    if template:
        query = query.filter(template=template)
    if status:
        try:
            query = query.filter(status=ContractStatus(status))
        except ValueError:
            raise ValidationFailed("status 须为 draft、signed、expired 或 void", field="status") from None
    return await query.order_by("-id").limit(100)


async def get(user_id: int, contract_id: int) -> Contract:
    return await _owned(user_id, contract_id)


async def unsigned_pdf(ctx: ServiceContext, user_id: int, contract_id: int) -> tuple[Contract, bytes]:
    contract = await _owned(user_id, contract_id)
    return contract, await ctx.storage.get(contract.unsigned_key, purpose=PDF_PURPOSE)


async def signed_pdf(ctx: ServiceContext, user_id: int, contract_id: int) -> tuple[Contract, bytes]:
    contract = await _owned(user_id, contract_id)
    if contract.status != ContractStatus.SIGNED or not contract.signed_key:
        raise ContractNotSigned()
    return contract, await ctx.storage.get(contract.signed_key, purpose=PDF_PURPOSE)


async def _expire_if_due(contract: Contract) -> Contract:
    if contract.status == ContractStatus.DRAFT and contract.expires_at <= utcnow():
        moved = await atomic(
            lambda conn: transition(conn, MACHINE, Contract, contract.id, ContractStatus.EXPIRED,
                                    actor="system", reason="draft not signed in time", updates={"draft_key": None})
        )
        return moved.obj
    return contract


async def sign(
    ctx: ServiceContext,
    user_id: int,
    contract_id: int,
    *,
    signature_upload_id: int,
    consent: bool,
    verify_id: str,
    ip: str | None,
    user_agent: str | None,
) -> Contract:
    if consent is not True:  # before anything else: even a repeat of a signing must say it consents
        raise ConsentRequired(field="consent")
    contract = await _expire_if_due(await _owned(user_id, contract_id))
    if contract.status == ContractStatus.SIGNED:
        return contract  # signing twice returns the first result
    if contract.status != ContractStatus.DRAFT:
        raise ContractExpired()
    fv = await face.check_intent(ctx, user_id, verify_id, max_age_s=ctx.settings.face_intent_s)
    _, signature = await read_upload(ctx, user_id, signature_upload_id, kind=UploadKind.SIGNATURE, field="signature_upload_id")
    found = await verified_identity(ctx, user_id)
    assert found is not None  # check_intent required it
    _, name, id_number = found

    unsigned = await ctx.storage.get(contract.unsigned_key, purpose=PDF_PURPOSE)
    signed_at = utcnow()
    signer_lines = [
        f"签署人：{mask_name(name)}",
        f"证件号码：{mask_id_number(id_number)}",
        f"意愿认证：微信人脸核验 {fv.out_seq_no}",
    ]
    signed = await ctx.contract_workers.sign(
        unsigned,
        signature_png=signature,
        signer_lines=signer_lines,
        signed_at=signed_at,
        tsa_url=ctx.settings.esign_tsa_url,
    )
    signed_sha = hashlib.sha256(signed).hexdigest()
    key = await ctx.storage.put(signed, purpose=PDF_PURPOSE)
    evidence = {
        "contract_no": contract.contract_no,
        "template": contract.template,
        "variant": contract.variant,
        "version": contract.version,
        "unsigned_sha256": contract.unsigned_sha256,
        "signed_sha256": signed_sha,
        "signer": {"name": mask_name(name), "id_number": mask_id_number(id_number), "user_id": user_id},
        "signed_at": signed_at.isoformat(),
        "ip": ip,
        "user_agent": (user_agent or "")[:255],
        "consent": True,
        "intent_check": {"method": "wechat_face_2.0", "verify_id": fv.verify_id, "out_seq_no": fv.out_seq_no,
                         "passed_at": fv.finished_at.isoformat() if fv.finished_at else None},
        "signature_upload_id": signature_upload_id,
        "certificate_serial": ctx.signer.serial_hex,
        "pades_level": "B-T" if ctx.settings.esign_tsa_url else "B-B",
    }

    async def commit(conn) -> Contract:
        current = await Contract.filter(id=contract.id).select_for_update().using_db(conn).first()
        if current.status == ContractStatus.SIGNED:
            return current  # a concurrent request signed it first: theirs is the result
        if current.status != ContractStatus.DRAFT:
            raise ContractExpired()
        await face.consume(conn, fv, purpose=f"contract:{contract.id}")
        moved = await transition(
            conn, MACHINE, Contract, contract.id, ContractStatus.SIGNED, actor=f"user:{user_id}",
            reason="signed with consent and face intent check",
            updates={"signed_sha256": signed_sha, "signed_key": key, "evidence": evidence, "draft_key": None},
            audit_data={k: evidence[k] for k in ("unsigned_sha256", "signed_sha256", "ip", "user_agent", "pades_level")}
            | {"verify_id": fv.verify_id, "signer": evidence["signer"]},
        )
        return moved.obj

    # If the commit fails, our signed copy may or may not be referenced (a connection lost during COMMIT
    # leaves that unknown): the storage sweep decides later, by looking. Here only the certain case.
    result = await atomic(commit)
    if result.signed_key != key:
        await ctx.storage.delete(key)  # a concurrent signing won; its copy is the contract
    return result


async def evidence(user_id: int, contract_id: int) -> tuple[Contract, list[AuditEvent]]:
    """A contract (its evidence record with it) and its audit trail (each event with its chain hash)."""
    contract = await _owned(user_id, contract_id)
    events = await AuditEvent.filter(entity_type="contract", entity_id=str(contract.id)).order_by("seq")
    return contract, events


@dataclass(frozen=True)
class DocumentCheck:
    result: VerificationResult
    contract: Contract | None  # the contract the document names, when there is one
    matches_issued_copy: bool  # byte for byte the copy the bank issued


async def verify_document(ctx: ServiceContext, data: bytes) -> DocumentCheck:
    """Whether ``data`` carries a valid signature by the bank, whether it changed after signing, and
    which contract it is. Any caller may learn this much about a document they hold; nothing more
    (no owner, no evidence)."""
    result = await verify_pdf_async(data, trust_roots=ctx.signer.trust_roots)
    contract = await Contract.get_or_none(contract_no=result.contract_ref) if result.contract_ref else None
    matches = contract is not None and contract.signed_sha256 == hashlib.sha256(data).hexdigest()
    return DocumentCheck(result, contract, matches)
