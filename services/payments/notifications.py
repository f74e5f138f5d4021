"""WeChat Pay's notifications (``POST /callbacks/wechatpay``), applied exactly once.

A notification is accepted only when ``integrations.wechatpay`` says it is WeChat Pay's: the platform key
named by ``Wechatpay-Serial``, a timestamp within five minutes, a signature over the raw body, and a
resource that decrypts with our APIv3 key. It is then applied and stored in the inbox (``PayNotification``, unique
on its ``id``) and applied (``orders.apply_transaction``, ``refunds.apply_refund``) in one transaction: a redelivery, or the same
notification arriving at two instances at once, finds the inbox row and changes nothing. A notification
whose transaction does not match our order (merchant, app, amount) is refused and leaves nothing, so
WeChat Pay keeps it and an operator sees it in the logs.
"""

from __future__ import annotations

import logging

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from models.payments import PayNotification
from services.context import ServiceContext
from services.db import atomic
from services.payments import orders, refunds

log = logging.getLogger(__name__)

TRANSACTION_EVENTS = ("TRANSACTION.SUCCESS",)
REFUND_EVENTS = ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")


async def receive(ctx: ServiceContext, headers, body: bytes) -> str:
    """What receiving it did: ``applied: …``, ``duplicate``, or ``ignored: …``. Raises
    ``NotificationRefused`` (not WeChat Pay's) or ``orders.TransactionMismatch`` (not our order)."""
    envelope = await ctx.wechatpay.notification(headers, body)
    event_id, event_type = str(envelope.get("id", ""))[:64], str(envelope.get("event_type", ""))[:32]
    resource = envelope["resource"]
    if await PayNotification.exists(event_id=event_id):
        return "duplicate"

    async def work(conn: BaseDBAsyncClient) -> str:
        # applied first, under the row lock it takes (the order, the refund); then the inbox row, whose
        # unique event id turns a concurrent copy into a rollback and "duplicate"
        if event_type in TRANSACTION_EVENTS:
            outcome = "applied: " + await orders.apply_transaction(ctx, resource, source="notification", conn=conn)
        elif event_type in REFUND_EVENTS:
            outcome = "applied: " + await refunds.apply_refund(ctx, resource, source="notification", conn=conn)
        else:
            outcome = f"ignored: {event_type}"
        await PayNotification.create(event_id=event_id, event_type=event_type,
                                     out_trade_no=str(resource.get("out_trade_no", ""))[:32] or None,
                                     resource=resource, outcome=outcome[:64], using_db=conn)
        return outcome

    try:
        return await atomic(work)
    except IntegrityError:
        if await PayNotification.exists(event_id=event_id):
            return "duplicate"  # the same notification, applied by a concurrent delivery
        raise
