"""Callbacks from WeChat: WeChat Pay's notifications (``POST /callbacks/wechatpay``) and message push
(``GET|POST /callbacks/wechat/push``).

WeChat Pay reads only the status: 200/204 is "received", anything else is retried on its schedule. The
payments service refuses a notification with its typed errors (as message push does); this handler answers
them in WeChat Pay's own shape, ``{"code": "FAIL", "message": ...}``, as WeChat Pay documents it.
"""

from __future__ import annotations

import logging

from sanic import Blueprint, Request
from pydantic import Field
from sanic.response import HTTPResponse, empty, json, text

from handlers.common import services
from handlers.spec import Query, Response, operation
from services.notifications import push
from services.payments import notifications

log = logging.getLogger(__name__)
bp = Blueprint("callbacks", url_prefix="/callbacks")

FAIL = {"type": "object", "required": ["code", "message"], "additionalProperties": False,
        "properties": {"code": {"const": "FAIL"}, "message": {"type": "string"}}}


@bp.post("/wechatpay")
@operation(
    summary="WeChat Pay's payment notifications",
    description="Signed by WeChat Pay (`Wechatpay-*` headers over the raw body), the resource encrypted with the "
    "merchant's APIv3 key. Applied once however often it arrives. 401 `FAIL`: not WeChat Pay's (signature, "
    "serial, a timestamp more than five minutes off, a resource that does not decrypt); 400 `FAIL`: it does not "
    "match the order (merchant, app, amount). Either way nothing changes and WeChat Pay tries again.",
    tag="callbacks",
    body_media={"application/json": {"type": "object"}},
    responses={
        204: Response(description="received (applied now, or before)"),
        400: Response(media_type="application/json", schema=FAIL, description="does not match the order"),
        401: Response(media_type="application/json", schema=FAIL, description="not WeChat Pay's"),
    },
)
async def wechatpay(request: Request) -> HTTPResponse:
    ctx = services(request)
    try:
        outcome = await notifications.receive(ctx, request.headers, request.body or b"")
    except notifications.PayNotificationRefused as exc:  # logged, with its reason, by the service
        return json({"code": "FAIL", "message": exc.message}, status=exc.status)
    # a redelivery is routine (WeChat Pay repeats until it hears 2xx) and the inbox keeps what was applied
    log.log(logging.DEBUG if outcome == "duplicate" else logging.INFO, "wechatpay notification",
            extra={"outcome": outcome})
    return empty(status=204)


Param = Field(min_length=1, max_length=128)


class VerifyQuery(Query):
    signature: str = Param
    timestamp: str = Param
    nonce: str = Param
    echostr: str = Param


class PushQuery(Query):
    signature: str = Param
    timestamp: str = Param
    nonce: str = Param
    openid: str | None = Field(default=None, max_length=64)
    encrypt_type: str | None = Field(default=None, max_length=8, description="`aes` in safe mode")
    msg_signature: str | None = Field(default=None, max_length=128, description="safe mode: over the ciphertext too")


@bp.get("/wechat/push")
@operation(
    summary="Message push: WeChat's URL verification",
    description="`signature` is the SHA-1 of the sorted Token, timestamp and nonce; the answer is `echostr`.",
    tag="callbacks",
    query=VerifyQuery,
    responses={200: Response(media_type="text/plain", schema={"type": "string"}, description="echostr, as it came")},
    errors=(push.PushSignatureInvalid,),
)
async def push_verify(request: Request, query: VerifyQuery) -> HTTPResponse:
    settings = services(request).settings
    return text(push.verify_url(settings.wechat_push_token, query.signature, query.timestamp, query.nonce,
                                query.echostr))


@bp.post("/wechat/push")
@operation(
    summary="Message push: an event WeChat sends (plain or safe mode, JSON)",
    description="Recorded once (WeChat retries a slow answer); answered `success`.",
    tag="callbacks",
    query=PushQuery,
    body_media={"application/json": {"type": "object"}},
    responses={200: Response(media_type="text/plain", schema={"type": "string", "enum": ["success"]},
                             description="received")},
    errors=(push.PushSignatureInvalid, push.PushBodyInvalid),
)
async def push_message(request: Request, query: PushQuery) -> HTTPResponse:
    message, safe = push.read(services(request).settings, query.model_dump(), request.body or b"")
    await push.record(message, safe_mode=safe)
    return text("success")
