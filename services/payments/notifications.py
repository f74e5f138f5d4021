"""WeChat Pay's notifications (``POST /callbacks/wechatpay``), applied exactly once.

A notification is accepted only when ``integrations.wechatpay`` says it is WeChat Pay's: the platform key
named by ``Wechatpay-Serial``, a timestamp within five minutes, a signature over the raw body, and a
resource that decrypts with our APIv3 key. It is then applied and stored in the inbox (``PayNotification``,
unique on its ``id``) in one transaction: a redelivery, or the same notification arriving at two instances
at once, finds the inbox row and changes nothing. A notification whose transaction does not match our
order (merchant, app, amount) is refused and leaves nothing, so WeChat Pay keeps it and an operator sees
it in the logs.

Refusals are this service's typed errors (``NotificationSignatureInvalid`` 401, ``NotificationMismatch``
400), like message push's ``PushSignatureInvalid``: the integration's ``NotificationRefused`` and the
orders' ``TransactionMismatch`` stop here, and the callback handler only answers them in WeChat Pay's
documented shape, ``{"code": "FAIL", "message": ...}``.

Payment notifications that arrive together are applied together (``_Batches``), the way a database
commits a group: the first one to arrive is applied at once, and those that arrive while transactions
are running (at most ``IN_FLIGHT``) wait for one to end and then go in the next one, which locks their orders (in one order),
reads the inbox for their ids, moves the orders and appends their audit events in a few statements
for the lot. Each request is answered only once its own notification is committed (or refused), so
nothing is acknowledged that is not stored. If a batch fails for another reason than a lock conflict
(which ``atomic`` runs again), its notifications are applied one by one, so one bad notification cannot
fail its neighbours. Refund notifications, and types we do not act on, are applied one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from core.errors import AppError
from integrations.wechatpay import NotificationRefused
from models.payments import PayNotification
from services.context import ServiceContext
from services.db import atomic
from services.payments import orders, refunds

log = logging.getLogger(__name__)

TRANSACTION_EVENTS = ("TRANSACTION.SUCCESS",)
REFUND_EVENTS = ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")
BATCH_LIMIT = 100  # notifications per transaction at most
IN_FLIGHT = 2  # transactions of them at once, per process


class PayNotificationRefused(AppError):
    """A notification we do not apply; WeChat Pay sends it again on its schedule."""


class NotificationSignatureInvalid(PayNotificationRefused):
    # not WeChat Pay's: serial, timestamp, signature, or a resource that does not decrypt
    status, code, message = 401, "PAY_NOTIFICATION_SIGNATURE_INVALID", "签名验证失败"


class NotificationMismatch(PayNotificationRefused):
    # WeChat Pay's, but its transaction is not our order (merchant, app, amount)
    status, code, message = 400, "PAY_NOTIFICATION_MISMATCH", "订单信息不符"


@dataclass
class _Item:
    event_id: str
    event_type: str
    resource: dict
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


async def receive(ctx: ServiceContext, headers, body: bytes) -> str:
    """What receiving it did: ``applied: …``, ``duplicate``, or ``ignored: …``. Raises
    ``NotificationSignatureInvalid`` (not WeChat Pay's) or ``NotificationMismatch`` (not our order)."""
    try:
        envelope = await ctx.wechatpay.notification(headers, body)
    except NotificationRefused as exc:
        log.warning("wechatpay notification refused", extra={"reason": str(exc)})
        raise NotificationSignatureInvalid() from exc
    item = _Item(str(envelope.get("id", ""))[:64], str(envelope.get("event_type", ""))[:32], envelope["resource"])
    try:
        if item.event_type in TRANSACTION_EVENTS:
            return await _batches(ctx).submit(item)
        return await _apply_one(ctx, item)
    except orders.TransactionMismatch as exc:
        log.error("wechatpay notification does not match the order", extra={"reason": str(exc)})
        raise NotificationMismatch() from exc


def _inbox_row(item: _Item, outcome: str) -> PayNotification:
    return PayNotification(event_id=item.event_id, event_type=item.event_type,
                           out_trade_no=str(item.resource.get("out_trade_no", ""))[:32] or None,
                           resource=item.resource, outcome=outcome[:64])


async def _apply_one(ctx: ServiceContext, item: _Item) -> str:
    if await PayNotification.exists(event_id=item.event_id):
        return "duplicate"

    async def work(conn: BaseDBAsyncClient) -> str:
        # applied first, under the row lock it takes (the order, the refund); then the inbox row, whose
        # unique event id turns a concurrent copy into a rollback and "duplicate"
        if item.event_type in TRANSACTION_EVENTS:
            outcome = "applied: " + await orders.apply_transaction(ctx, item.resource, source="notification",
                                                                   conn=conn)
        elif item.event_type in REFUND_EVENTS:
            outcome = "applied: " + await refunds.apply_refund(ctx, item.resource, source="notification", conn=conn)
        else:
            outcome = f"ignored: {item.event_type}"
        await _inbox_row(item, outcome).save(using_db=conn)
        return outcome

    try:
        return await atomic(work)
    except IntegrityError:
        if await PayNotification.exists(event_id=item.event_id):
            return "duplicate"  # the same notification, applied by a concurrent delivery
        raise


async def _apply_batch(ctx: ServiceContext, items: list[_Item]) -> list[str | Exception]:
    """Payment notifications applied in one transaction: what each did, or the exception refusing it."""

    async def work(conn: BaseDBAsyncClient) -> list[str | Exception]:
        # the orders first: whoever applied one of these notifications before held its order's lock until
        # it committed its inbox row, so the inbox read below (after the locks) sees that row
        locked = await orders.lock_orders(conn, [str(i.resource.get("out_trade_no", "")) for i in items])
        stored = set(await PayNotification.filter(event_id__in=list({i.event_id for i in items}))
                     .using_db(conn).values_list("event_id", flat=True))
        fresh: dict[str, _Item] = {}
        for item in items:
            if item.event_id not in stored:
                fresh.setdefault(item.event_id, item)
        applied = await orders.apply_transactions(ctx, conn, [i.resource for i in fresh.values()],
                                                  source="notification", locked=locked)
        outcome_of = dict(zip(fresh, applied))
        rows = [_inbox_row(i, "applied: " + outcome_of[i.event_id]) for i in fresh.values()
                if not isinstance(outcome_of[i.event_id], Exception)]
        if rows:
            await PayNotification.bulk_create(rows, using_db=conn)
        results: list[str | Exception] = []
        for item in items:
            outcome = None if item.event_id in stored else outcome_of[item.event_id]
            if isinstance(outcome, Exception):
                results.append(outcome)  # a copy of a refused one is refused too
            elif outcome is None or fresh[item.event_id] is not item:
                results.append("duplicate")
            else:
                results.append("applied: " + outcome)
        return results

    return await atomic(work)


class _Batches:
    """One per event loop: notifications waiting for a transaction that will apply them. Up to
    ``IN_FLIGHT`` transactions run at once, so one can form while another waits on the database."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.waiting: list[_Item] = []
        self.running = 0

    async def submit(self, item: _Item) -> str:
        self.waiting.append(item)
        if self.running < IN_FLIGHT:
            self.running += 1
            asyncio.ensure_future(self._run())
        # shielded: a client that hangs up does not take its notification out of a running transaction
        outcome = await asyncio.shield(item.done)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _run(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:BATCH_LIMIT], self.waiting[BATCH_LIMIT:]
                try:
                    results = await _apply_batch(self.ctx, batch) if len(batch) > 1 else None
                except Exception:  # noqa: BLE001 - one by one instead, so each gets its own answer
                    log.warning("a batch of notifications failed; applying them one by one", exc_info=True)
                    results = None
                if results is None:
                    results = [await _settle_one(self.ctx, item) for item in batch]
                for item, result in zip(batch, results):
                    if not item.done.done():
                        item.done.set_result(result)
        finally:
            self.running -= 1
            if not self.running:  # only if the loops themselves died: nobody is left waiting for nothing
                for item in self.waiting:
                    if not item.done.done():
                        item.done.set_result(RuntimeError("notification batch stopped"))
                self.waiting = []


async def _settle_one(ctx: ServiceContext, item: _Item) -> str | Exception:
    try:
        return await _apply_one(ctx, item)
    except Exception as exc:  # noqa: BLE001 - handed to the request that is waiting for it
        return exc


_BATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batches] = weakref.WeakKeyDictionary()


def _batches(ctx: ServiceContext) -> _Batches:
    loop = asyncio.get_running_loop()
    batches = _BATCHES.get(loop)
    if batches is None or batches.ctx is not ctx:
        batches = _BATCHES[loop] = _Batches(ctx)
    return batches
