"""Face verification 2.0 for the verified name and ID number.

Start: ``getverifyid`` with the person's certificate info -> a ``verify_id`` for
``wx.requestFacialVerify``. Result: ``queryverifyinfo`` with ``cert_hash``; passed only when
``errcode == 0`` and ``verify_ret == 10000``. A verify id belongs to the user who started it, its final
result is fixed once fetched, and as an intent check (signing) it can be consumed once.

A pass for a holder whose ID card is valid today (renewed after it expired, or long-term) lifts
``ID_EXPIRED`` on all their accounts, in the transaction that records the pass: renewing the card alone
does not, nor does a face check while the card on file is still the expired one.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.clock import china_day, utcnow
from core.errors import UpstreamUnavailable
from core.pii import mask_id_number
from integrations.wechat import WeChatAPIError, WeChatUnavailable
from models.identity import AttemptKind, FaceStatus, FaceVerification, Identity
from models.users import User
from services import audit
from services.context import ServiceContext
from services.db import atomic
from services.identity import attempts
from services.identity.errors import (
    FaceVerificationFailed,
    FaceVerificationInvalid,
    FaceVerificationNotFound,
    FaceVerificationPending,
    FaceVerificationStale,
    FaceVerificationUsed,
    IdCardRequired,
)
from services.identity.id_card import verified_identity
from services.wechat_errors import translate

PASSED_RET = 10000
PENDING_RETS = {90100}
log = logging.getLogger(__name__)


def verify_ret_of(data: dict) -> int | None:
    """WeChat's ``verify_ret`` as an int, or None when it is missing or not an integer."""
    ret = data.get("verify_ret")
    if isinstance(ret, bool) or not isinstance(ret, int):
        return None
    return ret


@dataclass(frozen=True)
class FaceStart:
    verify_id: str
    expires_in: int


@dataclass(frozen=True)
class FaceResult:
    verify_id: str
    status: FaceStatus
    passed: bool
    verify_ret: int | None
    valid_until: datetime | None


async def start(ctx: ServiceContext, user_id: int) -> FaceStart:
    found = await verified_identity(ctx, user_id)
    if found is None:
        raise IdCardRequired()
    identity, name, id_number = found
    user = await User.get(id=user_id)
    await attempts.take_slot(user_id, AttemptKind.FACE, ctx.settings.daily_attempt_limit)
    out_seq_no = uuid.uuid4().hex
    try:
        data = await ctx.wechat.face_get_verify_id(out_seq_no=out_seq_no, cert_name=name, cert_no=id_number, openid=user.openid)
    except (WeChatAPIError, WeChatUnavailable) as exc:
        await attempts.record(user_id, AttemptKind.FACE, "UPSTREAM_ERROR", inputs={"id_number": mask_id_number(id_number)})
        raise translate(exc) from exc
    expires_in = int(data.get("expires_in", 3600))
    await FaceVerification.create(
        user_id=user_id,
        verify_id=data["verify_id"],
        out_seq_no=out_seq_no,
        id_number_index=identity.id_number_index,
        expires_at=utcnow() + timedelta(seconds=expires_in),
    )
    await attempts.record(user_id, AttemptKind.FACE, "STARTED", provider_ref=out_seq_no,
                          inputs={"id_number": mask_id_number(id_number)})
    return FaceStart(data["verify_id"], expires_in)


def _result(ctx: ServiceContext, fv: FaceVerification) -> FaceResult:
    passed = fv.status == FaceStatus.PASSED
    until = fv.finished_at + timedelta(seconds=ctx.settings.face_valid_s) if passed and fv.finished_at else None
    return FaceResult(fv.verify_id, fv.status, passed, fv.verify_ret, until)


async def fetch_result(ctx: ServiceContext, user_id: int, verify_id: str) -> FaceResult:
    fv = await FaceVerification.get_or_none(verify_id=verify_id, user_id=user_id)
    if fv is None:
        raise FaceVerificationNotFound()
    if fv.status != FaceStatus.PENDING:
        return _result(ctx, fv)  # final results are fixed: asking again cannot turn a fail into a pass
    found = await verified_identity(ctx, user_id)
    if found is None or found[0].id_number_index != fv.id_number_index:
        raise IdCardRequired("身份信息已变更，请重新发起人脸核验")
    _, name, id_number = found
    user = await User.get(id=user_id)
    now = utcnow()
    if fv.expires_at <= now:
        await FaceVerification.filter(id=fv.id, status=FaceStatus.PENDING).update(status=FaceStatus.EXPIRED, finished_at=now)
        await fv.refresh_from_db()
        return _result(ctx, fv)
    try:
        data = await ctx.wechat.face_query_verify_info(
            verify_id=fv.verify_id, out_seq_no=fv.out_seq_no, cert_name=name, cert_no=id_number, openid=user.openid
        )
    except WeChatAPIError as exc:
        await attempts.record(user_id, AttemptKind.FACE, f"WX_{exc.errcode}", provider_ref=fv.out_seq_no)
        raise FaceVerificationFailed() from exc
    except WeChatUnavailable as exc:
        raise translate(exc) from exc
    ret = verify_ret_of(data)
    if ret is None:
        # errcode 0 without a usable verify_ret is not an answer: fail closed (never a pass), and leave
        # the verification pending so a later fetch can still finish it.
        log.warning("face result without verify_ret", extra={"out_seq_no": fv.out_seq_no})
        raise UpstreamUnavailable()
    if ret in PENDING_RETS:
        return FaceResult(fv.verify_id, FaceStatus.PENDING, False, ret, None)
    status = FaceStatus.PASSED if ret == PASSED_RET else FaceStatus.FAILED

    async def finish(conn) -> None:
        # Conditional on still pending, so two concurrent fetches finish it once.
        moved = await FaceVerification.filter(id=fv.id, status=FaceStatus.PENDING).using_db(conn).update(
            status=status, verify_ret=ret, finished_at=now
        )
        if moved and status == FaceStatus.PASSED:
            await Identity.filter(user_id=user_id).using_db(conn).update(face_passed_at=now)
            await audit.append(conn, actor=f"user:{user_id}", action="identity.face.passed", entity_type="user",
                               entity_id=user_id, data={"out_seq_no": fv.out_seq_no, "id_number": mask_id_number(id_number)})
            await _lift_id_expired(conn, user_id, fv, now)

    await atomic(finish)
    await attempts.record(user_id, AttemptKind.FACE, "OK" if status == FaceStatus.PASSED else f"VERIFY_RET_{ret}",
                          provider_ref=fv.out_seq_no, inputs={"id_number": mask_id_number(id_number)})
    await fv.refresh_from_db()
    return _result(ctx, fv)


async def _lift_id_expired(conn, user_id: int, fv: FaceVerification, now: datetime) -> None:
    """The pass confirms the holder of a card valid today: lift ``ID_EXPIRED`` on their accounts."""
    from services.accounts import restrictions  # it uses this module's intent checks

    identity = await Identity.filter(user_id=user_id, id_number_index=fv.id_number_index).using_db(conn).first()
    if identity is None or (identity.id_valid_until is not None and identity.id_valid_until < china_day(now)):
        return  # the card on file is still the expired one: renew it first
    until = identity.id_valid_until.isoformat() if identity.id_valid_until else "长期"
    await restrictions.lift_id_expired(
        conn, user_id, reason=f"ID card renewed (valid until {until}), face verification {fv.out_seq_no}")


async def check_intent(ctx: ServiceContext, user_id: int, verify_id: str, *, max_age_s: int) -> FaceVerification:
    """A face verification usable as an intent check (e.g. before signing): this user's, for the
    person now verified, passed within ``max_age_s``, and not used before. ``consume`` then uses it,
    inside the transaction of the act it authorises."""
    fv = await FaceVerification.get_or_none(verify_id=verify_id, user_id=user_id)
    found = await verified_identity(ctx, user_id)
    if fv is None or found is None or fv.id_number_index != found[0].id_number_index:
        raise FaceVerificationInvalid(field="verify_id")
    if fv.status == FaceStatus.PENDING:
        raise FaceVerificationPending(field="verify_id")
    if fv.status != FaceStatus.PASSED or fv.finished_at is None or (utcnow() - fv.finished_at).total_seconds() > max_age_s:
        raise FaceVerificationStale(field="verify_id")
    if fv.consumed_at is not None:
        raise FaceVerificationUsed(field="verify_id")
    return fv


async def consume(conn, fv: FaceVerification, *, purpose: str) -> None:
    """Use the verification once; a second use (even a concurrent one) raises."""
    used = await FaceVerification.filter(id=fv.id, consumed_at=None).using_db(conn).update(
        consumed_at=utcnow(), consumed_by=purpose
    )
    if not used:
        raise FaceVerificationUsed(field="verify_id")


__all__ = ["start", "fetch_result", "check_intent", "consume", "FaceStart", "FaceResult"]
