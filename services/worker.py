"""The background work: the outbox delivery loop and the periodic jobs.

``python -m app worker`` runs it; in sandbox mode the server runs it too (``WORKER_IN_SERVER``), so the
embedded default needs no second process. Any number of copies can run at once: outbox messages are
claimed one by one by lease (``services.outbox``) and each periodic job by its lease row
(``services.jobs``). Both loops outlive any error of one turn (``core.loops.forever``): the database
going away stops the work only until it is back, and ``job_health`` tells ops when a job is late.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from core.loops import forever
from core.settings import Settings
from services import idempotency, jobs, outbox, ratelimit, storage_sweep
from services.accounts import funding, id_expiry
from services.context import ServiceContext
from services.notifications import outbox_handlers
from services.staff import proposals
from services.staff import sessions as staff_sessions

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
        jobs.Job("accounts.id_expiry", 600, lambda: id_expiry.run(ctx)),
        jobs.Job("staff.proposals", 300, proposals.expire_due),
        jobs.Job("staff.sessions", 3600, staff_sessions.sweep),
        # last-4 search columns of rows written before they existed (idempotent; nothing to do once filled)
        jobs.Job("customers.last4", 3600, lambda: _fill_last4(ctx)),
    ]


async def payments_bill(ctx: ServiceContext, settings: Settings) -> dict:
    from services.payments import bills

    return await bills.daily(ctx, hour=settings.bill_reconcile_hour)


async def payments_reconcile(ctx: ServiceContext) -> dict:
    from services.payments import orders, refunds

    return {"orders": await orders.reconcile(ctx), "refunds": await refunds.reconcile(ctx)}


async def _fill_last4(ctx: ServiceContext) -> dict:
    from services.staff import customers

    return await customers.fill_last4(ctx)


async def _sweep_nonces() -> dict:
    from services.partners.auth import sweep_nonces

    return {"deleted": await sweep_nonces()}


async def _sweep_idempotency() -> dict:
    return {"deleted": await idempotency.sweep()}


async def deliver_outbox(ctx: ServiceContext, settings: Settings, stop: asyncio.Event, *, holder: str) -> None:
    handlers = outbox_handlers(ctx)

    async def one_turn() -> float | None:
        busy = await outbox.deliver_due(handlers, holder=holder, max_attempts=settings.outbox_max_attempts,
                                        lease_s=settings.worker_lease_s)
        return 0 if busy else None  # more may be due at once; otherwise wait for the next poll

    await forever("outbox", one_turn, stop, idle_s=settings.outbox_poll_s)


async def job_health(ctx: ServiceContext, settings: Settings, *, since: datetime) -> list[jobs.JobHealth]:
    """Each periodic job's last success on any host, and whether it is overdue (``jobs.health``)."""
    return await jobs.health(periodic_jobs(ctx, settings), lease_s=settings.worker_lease_s, since=since)


async def run(ctx: ServiceContext, settings: Settings, stop: asyncio.Event, *, poll_s: float = 30) -> None:
    holder = jobs.holder_id()
    await asyncio.gather(
        deliver_outbox(ctx, settings, stop, holder=holder),
        jobs.run_worker(periodic_jobs(ctx, settings), stop, poll_s=poll_s, holder=holder,
                        lease_s=settings.worker_lease_s),
    )
