"""Messages to users (WeChat subscribe messages) and to partners (signed notifications,
``services.partners.notify``), delivered from the outbox.

A change that should tell the user something writes an outbox message of kind ``subscribe_message`` in
its own transaction (``services.outbox.enqueue``); the worker sends it here. WeChat answers that no
retry can fix give up at once: the user refused this template (43101), or the message itself is wrong
(bad openid 40003, template 40037, data 47003, page 41030). A send whose answer was lost after it
reached WeChat is not sent again either: WeChat has no idempotency key for messages, and a user told
twice is worse than a message the lost answer may have delivered. Anything else (WeChat unreachable,
"system busy") is retried by the outbox with backoff.
"""

from __future__ import annotations

from integrations.wechat.miniprogram import WeChatAPIError, WeChatUnavailable
from services.context import ServiceContext
from services.outbox import Handler, Permanent

USER_REFUSED = 43101
PERMANENT_ERRCODES = {USER_REFUSED, 40003, 40037, 47003, 41030}


def outbox_handlers(ctx: ServiceContext) -> dict[str, Handler]:
    async def subscribe_message(payload: dict) -> None:
        try:
            await ctx.wechat.send_subscribe_message(
                touser=payload["touser"], template_id=payload["template_id"], data=payload["data"],
                page=payload.get("page"),
            )
        except WeChatAPIError as exc:
            if exc.errcode in PERMANENT_ERRCODES:
                raise Permanent(f"errcode {exc.errcode}") from exc
            raise
        except WeChatUnavailable as exc:
            if exc.maybe_done:
                raise Permanent(f"answer lost, perhaps sent: not sent again ({exc.reason})") from exc
            raise

    from services.partners import notify

    return {"subscribe_message": subscribe_message, **notify.outbox_handlers(ctx)}
