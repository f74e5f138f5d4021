"""Message push (消息推送): what WeChat sends to ``/callbacks/wechat/push``.

The URL verification (a GET) proves the server holds the Token: ``signature`` is the SHA-1 of the
sorted Token, timestamp and nonce, and the answer is ``echostr`` as it came. A POST in plain mode
carries the same signature; in safe mode the body is ``{"ToUserName", "Encrypt"}``, ``msg_signature``
covers the ciphertext too, and the message is AES-256-CBC under the EncodingAESKey, for our app id
(wechatpy's ``check_signature`` and ``WeChatCrypto`` do both). The console is set to JSON. Each message is
recorded once (WeChat retries three times when an answer is slow): by its ``MsgId``, or by sender, time
and event. The answer is ``success``.
"""

from __future__ import annotations

import json

from tortoise.exceptions import IntegrityError

from core.errors import AppError
from core.settings import Settings
from models.infra import PushEvent


class PushSignatureInvalid(AppError):
    status, code, message = 401, "PUSH_SIGNATURE_INVALID", "消息推送签名不正确"


class PushBodyInvalid(AppError):
    status, code, message = 400, "PUSH_BODY_INVALID", "消息推送内容无法解析"


def verify_url(token: str, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
    from wechatpy.exceptions import InvalidSignatureException
    from wechatpy.utils import check_signature

    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException:
        raise PushSignatureInvalid() from None
    return echostr


def read(settings: Settings, query: dict, body: bytes) -> tuple[dict, bool]:
    """The pushed message (and whether it came encrypted), once its signature holds."""
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
    from wechatpy.utils import check_signature

    try:
        check_signature(settings.wechat_push_token, query.get("signature", ""), query.get("timestamp", ""),
                        query.get("nonce", ""))
    except InvalidSignatureException:
        raise PushSignatureInvalid() from None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PushBodyInvalid() from None
    if not isinstance(data, dict):
        raise PushBodyInvalid()
    if query.get("encrypt_type") != "aes":
        return data, False
    if not isinstance(data.get("Encrypt"), str):
        raise PushBodyInvalid("安全模式的消息缺少 Encrypt")
    crypto = WeChatCrypto(settings.wechat_push_token, settings.wechat_push_aes_key, settings.wechat_appid)
    try:
        plain = crypto.decrypt_message(data, query.get("msg_signature", ""), query.get("timestamp", ""),
                                       query.get("nonce", ""))
    except (InvalidSignatureException, InvalidAppIdException):
        raise PushSignatureInvalid() from None
    except Exception:  # noqa: BLE001 - a ciphertext that does not decrypt or unpad
        raise PushBodyInvalid("消息无法解密") from None
    try:
        message = json.loads(plain)
    except ValueError:
        raise PushBodyInvalid() from None
    if not isinstance(message, dict):
        raise PushBodyInvalid()
    return message, True


async def record(message: dict, *, safe_mode: bool) -> bool:
    """Store the message once; False when it had come before."""
    sender = str(message.get("FromUserName", ""))[:64] or None
    event = str(message.get("Event", ""))[:64] or None
    key = str(message.get("MsgId") or f"{sender}:{message.get('CreateTime')}:{message.get('MsgType')}:{event}")[:160]
    try:
        await PushEvent.create(dedupe_key=key, msg_type=str(message.get("MsgType", ""))[:32], event=event,
                               from_user=sender, payload=message, safe_mode=safe_mode)
    except IntegrityError:
        return False
    return True
