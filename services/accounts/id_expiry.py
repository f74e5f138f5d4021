"""The worker's ID-expiry job: accounts of a holder whose ID card has passed its validity are restricted
(``ID_EXPIRED``), and a holder whose card ends within a month is told so once by subscribe message.

A card valid until D is valid all of D, China Standard Time: its holder's accounts are restricted from
D+1 (``core.clock.china_day``). The validity comes from the OCR of the card's back (``id_valid_until``;
None is long-term, 长期, and never expires). Renewing the card (``POST /identity/id-card``, same name and
number, a later date) and then passing a face verification lifts the restriction
(``services.identity.face``); the card alone does not.

Each run finds its candidates with one query each (an index on ``id_valid_until``), at most ``BATCH`` of
them, and handles each in its own transaction, so a run is short and the next one carries on where it
stopped. Both halves are idempotent: an account with ``ID_EXPIRED`` in force is no candidate (and
``_restrict`` finds it in force anyway), and the notice is written only with the conditional update that
marks the identity as told for that validity date (``id_expiry_notified_for``), so two workers, or a
run again, tell a holder once. Each account is restricted under the identity's lock, after checking the
card again: a renewal committed since the query wins.
"""

from __future__ import annotations

from datetime import date, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Q, Subquery

from core.clock import china_day, utcnow
from models.accounts import Account, AccountRestriction, AccountStatus, RestrictionCode
from models.identity import Identity
from services.accounts import restrictions
from services.accounts.ledger import AccountClosed
from services.context import ServiceContext
from services.db import atomic
from services.notifications import notices

NOTICE_DAYS = 30  # the holder is told when the card ends within this many days (a month before)
BATCH = 500  # candidates per run and per half; the rest wait for the next run
OPEN = (AccountStatus.ACTIVE, AccountStatus.RESTRICTED)


async def run(ctx: ServiceContext) -> dict:
    """One pass of the job (``services.worker``): what it restricted and whom it told."""
    today = china_day(utcnow())
    return {"restricted": await restrict_expired(today), "notified": await notify_expiring(ctx, today)}


async def restrict_expired(today: date) -> int:
    """Restrict every open account whose holder's card ended before ``today`` and that is not restricted
    for it yet; the number of accounts restricted now."""
    candidates = await Account.filter(
        status__in=OPEN, user_id__in=Subquery(Identity.filter(id_valid_until__lt=today).values("user_id")),
    ).exclude(
        id__in=Subquery(AccountRestriction.filter(code=RestrictionCode.ID_EXPIRED, lifted_at=None)
                        .values("account_id")),
    ).order_by("id").limit(BATCH).values_list("id", "user_id")
    done = 0
    for account_id, user_id in candidates:
        try:
            done += await atomic(lambda conn, a=account_id, u=user_id: _restrict_one(conn, a, u, today))
        except AccountClosed:  # closed since the query: nothing to restrict
            continue
    return done


async def _restrict_one(conn: BaseDBAsyncClient, account_id: int, user_id: int, today: date) -> bool:
    identity = await Identity.filter(user_id=user_id).using_db(conn).select_for_update().first()
    if identity is None or identity.id_valid_until is None or identity.id_valid_until >= today:
        return False  # renewed since the query
    changed = await restrictions.restrict_id_expired(conn, account_id, valid_until=identity.id_valid_until)
    return changed.changed


async def notify_expiring(ctx: ServiceContext, today: date) -> int:
    """Tell each holder of an open account whose card ends within ``NOTICE_DAYS`` (and has not ended),
    once per validity date; the number told now."""
    candidates = await Identity.filter(
        id_valid_until__gte=today, id_valid_until__lte=today + timedelta(days=NOTICE_DAYS),
        user_id__in=Subquery(Account.filter(status__in=OPEN).values("user_id")),
    ).filter(
        Q(id_expiry_notified_for__isnull=True) | ~Q(id_expiry_notified_for=F("id_valid_until")),
    ).order_by("id").limit(BATCH).values_list("id", "user_id", "id_valid_until")
    told = 0
    for identity_id, user_id, valid_until in candidates:
        told += await atomic(lambda conn, i=identity_id, u=user_id, d=valid_until: _notify_one(ctx, conn, i, u, d))
    return told


async def _notify_one(ctx: ServiceContext, conn: BaseDBAsyncClient, identity_id: int, user_id: int,
                      valid_until: date) -> bool:
    # Conditional: the card is still the one found, and nobody told the holder about it since.
    marked = await Identity.filter(id=identity_id, id_valid_until=valid_until).filter(
        Q(id_expiry_notified_for__isnull=True) | ~Q(id_expiry_notified_for=valid_until),
    ).using_db(conn).update(id_expiry_notified_for=valid_until)
    if marked:
        await notices.id_expiring(ctx, conn, user_id, valid_until)
    return bool(marked)
