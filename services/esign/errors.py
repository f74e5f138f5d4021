"""Typed errors of the e-signing core, with stable codes (see ``core.errors``)."""

from __future__ import annotations

from core.errors import AppError, Conflict, NotFound, UpstreamUnavailable, ValidationFailed


class ContractNotFound(NotFound):
    code = "CONTRACT_NOT_FOUND"
    message = "合同不存在"


class SubjectNotFound(NotFound):
    code = "SUBJECT_NOT_FOUND"
    message = "合同所涉业务不存在"


class SubjectClosed(Conflict):
    code = "SUBJECT_CLOSED"
    message = "合同所涉业务已结束（已完成、被拒绝或已过期）"


class SubjectIdRequired(ValidationFailed):
    code = "SUBJECT_ID_REQUIRED"
    message = "请指定合同所涉业务（subject_id）"


class SubjectIdNotAllowed(ValidationFailed):
    code = "SUBJECT_ID_NOT_ALLOWED"
    message = "该合同不需要 subject_id"


class TemplateNotFound(NotFound):
    code = "CONTRACT_TEMPLATE_NOT_FOUND"
    message = "合同模板不存在"


class ContractContextInvalid(ValidationFailed):
    """The data a template needs is missing or malformed (e.g. no account class for the agreement)."""

    code = "CONTRACT_CONTEXT_INVALID"
    message = "合同要素不完整或不正确"


class SignatureImageInvalid(ValidationFailed):
    code = "SIGNATURE_IMAGE_INVALID"
    message = "手写签名图片无效，请重新签名"


class ContractAlreadySigned(Conflict):
    code = "CONTRACT_ALREADY_SIGNED"
    message = "该合同已签署"


class TimestampUnavailable(UpstreamUnavailable):
    code = "TSA_UNAVAILABLE"
    message = "可信时间戳服务暂时不可用，请稍后再试"


class SigningFailed(AppError):
    """The bank could not sign (bad key material, unreadable PDF): a server-side fault, not the user's."""

    status = 500
    code = "SIGNING_FAILED"
    message = "合同签署失败，请稍后再试"
