"""Checking a partner's signed request, in the order docs/open-api.md gives, and signing our answer.

The checks: every header present and well formed; a known app id; a timestamp within ``WINDOW_S``; the
signature (the current secret, or the previous one during a rotation's grace period; compared in
constant time); a nonce never used by this partner (spent by inserting it: the unique index decides,
across every worker and host, and only a correctly signed request can spend one); the partner not
disabled; the operation's scope. Nonces are kept ``NONCE_KEEP_S``, well past the window, and swept.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import timedelta

from tortoise.exceptions import IntegrityError

from core.clock import utcnow
from core.errors import AppError
from core.validators import single_header
from models.partners import Partner, PartnerNonce, PartnerStatus
from services.context import ServiceContext
from services.partners import signing

WINDOW_S = 300
NONCE_KEEP_S = 3600
SECRET_PURPOSE = "partner.secret"

APP_ID_RE = re.compile(r"^pt[0-9a-f]{16}$")
TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")
HEADERS = {"X-App-Id": APP_ID_RE, "X-Timestamp": TIMESTAMP_RE, "X-Nonce": NONCE_RE, "X-Signature": SIGNATURE_RE}


class PartnerAuthRequired(AppError):
    status, code, message = 401, "PARTNER_AUTH_REQUIRED", "缺少或格式错误的签名请求头"


class AppIdUnknown(AppError):
    status, code, message = 401, "APP_ID_UNKNOWN", "未知的 X-App-Id"


class TimestampOutOfRange(AppError):
    status, code, message = 401, "TIMESTAMP_OUT_OF_RANGE", "X-Timestamp 与服务器时间相差超过 300 秒"


class SignatureInvalid(AppError):
    status, code, message = 401, "SIGNATURE_INVALID", "签名不正确"


class NonceReused(AppError):
    status, code, message = 401, "NONCE_REUSED", "X-Nonce 已使用过"


class PartnerDisabled(AppError):
    status, code, message = 403, "PARTNER_DISABLED", "合作方已停用"


class ScopeMissing(AppError):
    status, code, message = 403, "SCOPE_MISSING", "合作方未获得此操作的授权"


AUTH_ERRORS = (PartnerAuthRequired, AppIdUnknown, TimestampOutOfRange, SignatureInvalid, NonceReused, PartnerDisabled)


@dataclass(frozen=True)
class Caller:
    partner: Partner
    secret: str  # the secret the request was signed with: our answer is signed with it too
    nonce: str


def secrets_of(ctx: ServiceContext, partner: Partner) -> list[str]:
    """The secrets a request may be signed with now: the current one, and the previous one in its grace."""
    found = [ctx.pii.decrypt(partner.secret_enc, purpose=SECRET_PURPOSE)]
    if partner.previous_secret_enc and partner.previous_valid_until and partner.previous_valid_until > utcnow():
        found.append(ctx.pii.decrypt(partner.previous_secret_enc, purpose=SECRET_PURPOSE))
    return found


async def authenticate(ctx: ServiceContext, *, method: str, path: str, query: str, headers, body: bytes,
                       now: float | None = None) -> Caller:
    values = {}
    for name, pattern in HEADERS.items():
        value = single_header(headers, name, PartnerAuthRequired)  # twice is refused, not "the first one"
        if value is None or not pattern.fullmatch(value):
            raise PartnerAuthRequired(f"请求头 {name} 缺失或格式不正确", field=name)
        values[name] = value
    partner = await Partner.get_or_none(app_id=values["X-App-Id"])
    if partner is None:
        raise AppIdUnknown(field="X-App-Id")
    if abs((now if now is not None else time.time()) - int(values["X-Timestamp"])) > WINDOW_S:
        raise TimestampOutOfRange(field="X-Timestamp")
    try:
        text = signing.request_string(method, path, query, values["X-Timestamp"], values["X-Nonce"], body)
    except UnicodeDecodeError:
        raise SignatureInvalid("查询参数不是 UTF-8，无法验证签名", field="X-Signature") from None
    secret = next((s for s in secrets_of(ctx, partner) if signing.matches(s, text, values["X-Signature"])), None)
    if secret is None:
        raise SignatureInvalid(field="X-Signature")
    try:
        await PartnerNonce.create(partner_id=partner.id, nonce=values["X-Nonce"], created_at=utcnow())
    except IntegrityError:
        raise NonceReused(field="X-Nonce") from None
    if partner.status != PartnerStatus.ACTIVE:
        raise PartnerDisabled()
    return Caller(partner, secret, values["X-Nonce"])


def require_scope(caller: Caller, *scopes: str) -> None:
    """The partner holds at least one of ``scopes``."""
    if not set(scopes) & set(caller.partner.scopes or ()):
        raise ScopeMissing(f"需要以下授权之一：{', '.join(scopes)}")


def response_headers(caller: Caller, status: int, body: bytes) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), signing.new_nonce()
    text = signing.response_string(status, caller.nonce, timestamp, nonce, body)
    return {"X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": signing.sign(caller.secret, text)}


async def sweep_nonces(now=None) -> int:
    cutoff = (now or utcnow()) - timedelta(seconds=NONCE_KEEP_S)
    return await PartnerNonce.filter(created_at__lt=cutoff).delete()
