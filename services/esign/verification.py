"""Verify a PDF the bank signed: is it signed, intact, valid, trusted, untouched since, and which document
(a contract, or an account statement the bank issued).

Any bytes are accepted: garbage, truncated or tampered files give a result with ``problems``, never an
exception. The contract's identity (``/ContractRef`` and template keys of the Info dictionary) is read
from the revision the signature covers, not from the latest one, so an update appended after signing
cannot relabel the document.

pyHanko's synchronous validator runs its own event loop (``asyncio.run``); call ``verify_pdf`` from
sync code or a worker thread, and ``verify_pdf_async`` from the server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from ._sync import refuse_running_loop
from .certs import to_asn1

log = logging.getLogger(__name__)

MAX_PDF_BYTES = 50 * 1024 * 1024


@dataclass
class VerificationResult:
    signed: bool
    valid: bool  # the signature's cryptography checks out over an intact byte range
    intact: bool  # the signed bytes hash to the signed digest
    modified_after_signing: bool  # bytes were appended after the signed revision
    trusted: bool  # the signer's chain ends in one of the trust roots
    signer_subject: str | None = None
    signed_at: dt.datetime | None = None  # the signer's claimed time (or the timestamp's, for B-T)
    contract_ref: str | None = None
    template: str | None = None
    version: str | None = None
    variant: str | None = None
    document_kind: str | None = None  # "contract", "account_statement"
    statement_ref: str | None = None
    statement_account: str | None = None  # the masked account number printed on it
    statement_month: str | None = None
    timestamped: bool = False  # PAdES B-T: a valid RFC 3161 signature timestamp
    signatures: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The bottom line a user is shown: signed, intact, valid, trusted and unchanged since."""
        return self.signed and self.valid and self.intact and self.trusted and not self.modified_after_signing


def _unsigned(problem: str, *, signed: bool = False, **kw) -> VerificationResult:
    return VerificationResult(
        signed=signed, valid=False, intact=False, modified_after_signing=False, trusted=False,
        problems=[problem], **kw,
    )


def _text(value) -> str | None:
    if value is None:
        return None
    return str(value)


def _contract_info(handler) -> dict[str, str | None]:
    """``/ContractRef``, ``/StatementRef`` etc. from a reader or a historical revision's trailer."""
    try:
        raw = handler.trailer_view.raw_get("/Info")
        # Resolve through ``handler``: for a historical revision, the reference's own resolution would
        # give the latest version of the object.
        info = handler.get_object(raw.reference) if isinstance(raw, generic.IndirectObject) else raw
        if not isinstance(info, generic.DictionaryObject):
            return {}
    except Exception:  # no Info dictionary, or a broken one
        return {}
    out = {}
    for key, name in (
        ("contract_ref", "/ContractRef"),
        ("template", "/ContractTemplate"),
        ("version", "/ContractTemplateVersion"),
        ("variant", "/ContractVariant"),
        ("document_kind", "/DocumentKind"),
        ("statement_ref", "/StatementRef"),
        ("statement_account", "/StatementAccount"),
        ("statement_month", "/StatementMonth"),
    ):
        try:
            out[key] = _text(info.get(name))
        except Exception:
            out[key] = None
    if out["document_kind"] is None and out["contract_ref"] is not None:
        out["document_kind"] = "contract"  # contracts predate the key
    return out


def _trust_roots(roots: Iterable[x509.Certificate | asn1_x509.Certificate | bytes]) -> list:
    return [to_asn1(c) for c in roots]


def verify_pdf(
    data: bytes,
    *,
    trust_roots: Iterable[x509.Certificate | asn1_x509.Certificate | bytes],
    validation_time: dt.datetime | None = None,
) -> VerificationResult:
    """Verify every signature of ``data`` (a contract normally has one: the bank's).

    ``trust_roots``: the certificates to trust (the bank's root; a TSA's root for B-T). An empty list
    trusts nothing (never the operating system's store). Not on an event loop: use ``verify_pdf_async``."""
    refuse_running_loop("verify_pdf_async")
    if not isinstance(data, bytes | bytearray | memoryview):
        return _unsigned("不是 PDF 文件")
    data = bytes(data)
    if len(data) > MAX_PDF_BYTES:
        return _unsigned("文件过大")
    # A PDF header may be preceded by up to 1 KiB of junk (ISO 32000-1, 7.5.2 note / Acrobat's rule).
    if b"%PDF-" not in data[:1024]:
        return _unsigned("不是 PDF 文件")
    looks_signed = b"/ByteRange" in data
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = list(reader.embedded_regular_signatures)
    except Exception as exc:  # pyHanko raises a variety of errors on damaged files
        log.info("unreadable PDF: %s", exc)
        return _unsigned(f"PDF 文件已损坏，无法解析（{type(exc).__name__}）", signed=looks_signed)
    if not sigs:
        return _unsigned("文件未签名", **_contract_info(reader))

    roots = _trust_roots(trust_roots)
    result = VerificationResult(
        signed=True, valid=True, intact=True, modified_after_signing=False, trusted=True,
        signatures=len(sigs),
    )
    for index, sig in enumerate(sigs):
        # A fresh context per signature: it caches path-validation results.
        vc = ValidationContext(
            trust_roots=roots,
            allow_fetching=False,
            revocation_mode="soft-fail",
            moment=validation_time,
        )
        label = f"签名 {index + 1}（{sig.field_name}）"
        try:
            status = validate_pdf_signature(sig, signer_validation_context=vc, ts_validation_context=vc)
        except Exception as exc:  # malformed CMS, a tampered /ByteRange, …
            log.info("signature %s unverifiable: %s", sig.field_name, exc)
            result.valid = result.intact = result.trusted = False
            result.problems.append(f"{label}无法校验：{type(exc).__name__}: {exc}")
            continue
        if index == 0:
            result.signer_subject = status.signing_cert.subject.human_friendly
            ts = status.timestamp_validity
            result.timestamped = bool(ts and ts.intact and ts.valid)
            result.signed_at = ts.timestamp if result.timestamped else status.signer_reported_dt
            try:
                result.__dict__.update(_contract_info(reader.get_historical_resolver(sig.signed_revision)))
            except Exception:
                result.__dict__.update(_contract_info(reader))
        if not status.intact:
            result.intact = result.valid = False
            result.problems.append(f"{label}：文件内容与签名不符（签名后被篡改）")
        elif not status.valid:
            result.valid = False
            result.problems.append(f"{label}：签名值无效")
        if not status.trusted:
            result.trusted = False
        if not status.trusted and status.intact and status.valid:  # not evaluated on a broken signature
            result.problems.append(f"{label}：签名证书不受信任（{status.trust_problem_indic}）")
        if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
            result.modified_after_signing = True
            level = status.modification_level
            result.problems.append(
                f"{label}：签名后文件被追加修改（覆盖范围 {status.coverage.name}，"
                f"修改级别 {level.name if level else '未知'}）"
            )
        if status.docmdp_ok is False:
            result.valid = False
            result.problems.append(f"{label}：签名后的修改超出了允许范围")
        ts = status.timestamp_validity
        if ts is not None and not (ts.intact and ts.valid):
            result.problems.append(f"{label}：时间戳无效")
        elif ts is not None and not ts.trusted:
            result.problems.append(f"{label}：时间戳证书不受信任")
    return result


async def verify_pdf_async(data: bytes, **kwargs) -> VerificationResult:
    return await asyncio.to_thread(verify_pdf, data, **kwargs)
