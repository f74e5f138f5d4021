"""The background work: the outbox delivery loop and the periodic jobs.

``python -m app worker`` runs it; in sandbox mode the server runs it too (``WORKER_IN_SERVER``), so the
embedded default needs no second process. Any number of copies can run at once: outbox messages are
claimed one by one by lease (``services.outbox``) and each periodic job by its lease row
(``services.jobs``).
"""

from __future__ import annotations

import asyncio
import logging

from core.settings import Settings
from services import idempotency, jobs, outbox, ratelimit, storage_sweep
from services.accounts import funding
from services.context import ServiceContext
from services.notifications import outbox_handlers

log = logging.getLogger(__name__)


def periodic_jobs(ctx: ServiceContext, settings: Settings) -> list[jobs.Job]:
    return [
        jobs.Job("storage.sweep", settings.storage_sweep_every_s,
                 lambda: storage_sweep.sweep(ctx, older_than_s=settings.storage_sweep_age_s)),
        jobs.Job("cardnet.reconcile", settings.reconcile_every_s, lambda: funding.reconcile(ctx)),
        jobs.Job("idempotency.sweep", 3600, _sweep_idempotency),
        jobs.Job("partner_nonces.sweep", 600, _sweep_nonces),
        jobs.Job("ratelimit.sweep", 3600, ratelimit.sweep),
        jobs.Job("payments.reconcile", settings.reconcile_every_s, lambda: payments_reconcile(ctx)),
        jobs.Job("payments.bill", 3600, lambda: payments_bill(ctx, settings)),
    ]


async def payments_bill(ctx: ServiceContext, settings: Settings) -> dict:
    from services.payments import bills

    return await bills.daily(ctx, hour=settings.bill_reconcile_hour)


async def payments_reconcile(ctx: ServiceContext) -> dict:
    from services.payments import orders, refunds

    return {"orders": await orders.reconcile(ctx), "refunds": await refunds.reconcile(ctx)}


async def _sweep_nonces() -> dict:
    from services.partners.auth import sweep_nonces

    return {"deleted": await sweep_nonces()}


async def _sweep_idempotency() -> dict:
    return {"deleted": await idempotency.sweep()}


async def deliver_outbox(ctx: ServiceContext, settings: Settings, stop: asyncio.Event, *, holder: str) -> None:
    handlers = outbox_handlers(ctx)
    while not stop.is_set():
        try:
            busy = await outbox.deliver_due(handlers, holder=holder, max_attempts=settings.outbox_max_attempts,
                                            lease_s=settings.worker_lease_s)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            log.exception("outbox delivery loop failed")
            busy = 0
        if busy:
            continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.outbox_poll_s)
        except asyncio.TimeoutError:
            pass


async def run(ctx: ServiceContext, settings: Settings, stop: asyncio.Event, *, poll_s: float = 30) -> None:
    holder = jobs.holder_id()
    await asyncio.gather(
        deliver_outbox(ctx, settings, stop, holder=holder),
        jobs.run_worker(periodic_jobs(ctx, settings), stop, poll_s=poll_s, holder=holder,
                        lease_s=settings.worker_lease_s),
    )
