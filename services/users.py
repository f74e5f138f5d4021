"""The user's own profile, shown masked, and binding the phone number WeChat knows."""

from __future__ import annotations

from core.clock import utcnow
from core.errors import AppError, NotFound
from core.pii import mask_phone
from core.validators import mobile_ok
from integrations.wechat import WeChatAPIError, WeChatUnavailable
from models.users import User
from services.context import ServiceContext
from services.wechat_errors import translate

PHONE_PURPOSE = "user.phone"


class PhoneNotSupported(AppError):
    status, code, message = 422, "PHONE_NOT_SUPPORTED", "仅支持中国大陆手机号"


async def get_user(user_id: int | str) -> User:
    user = await User.get_or_none(id=int(user_id))
    if user is None:
        raise NotFound()
    return user


def phone_of(ctx: ServiceContext, user: User) -> str | None:
    return ctx.pii.decrypt(user.phone_enc, purpose=PHONE_PURPOSE) if user.phone_enc else None


def public_user(ctx: ServiceContext, user: User) -> dict:
    phone = phone_of(ctx, user)
    return {
        "id": user.id,
        "phone": mask_phone(phone) if phone else None,
        "created_at": user.created_at.isoformat(),
    }


async def bind_phone(ctx: ServiceContext, user_id: int | str, *, code: str) -> str:
    """Bind the phone behind a ``getPhoneNumber`` code. Returns it masked."""
    user = await get_user(user_id)
    try:
        info = await ctx.wechat.get_phone_number(code, openid=user.openid)
    except (WeChatAPIError, WeChatUnavailable) as exc:
        raise translate(exc, field="code") from exc
    phone = str(info.get("purePhoneNumber") or "")
    if str(info.get("countryCode", "86")) != "86" or not mobile_ok(phone):
        raise PhoneNotSupported(field="code")
    user.phone_enc = ctx.pii.encrypt(phone, purpose=PHONE_PURPOSE)
    user.phone_index = ctx.pii.blind_index(phone, purpose=PHONE_PURPOSE)
    user.phone_bound_at = utcnow()
    await user.save(update_fields=["phone_enc", "phone_index", "phone_bound_at"])
    return mask_phone(phone)
