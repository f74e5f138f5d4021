"""The one lease (``services.leases``) that jobs, outbox deliveries and idempotency keys are taken by:
free when its until is NULL or past, refused while another holds it, renewed only by its holder and only
where renewal is allowed, let go only by its holder when one is named; and of two claimers racing for
one row exactly one wins, because the one conditional UPDATE's affected-row count decides (MySQL)."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import timedelta

import pytest
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.clock import utcnow
from models.infra import IdempotencyRecord, JobLease, OutboxMessage, OutboxStatus
from services import idempotency, jobs, outbox
from services.leases import Lease
from tests.conftest import MYSQL_URL

pytestmark = pytest.mark.usefixtures("server")

HELD = Lease(JobLease, renewable=False)
RENEWABLE = Lease(JobLease, renewable=True)


async def job_row(**fields) -> Q:
    name = f"test.lease.{time.time_ns()}.{secrets.token_hex(3)}"
    await JobLease.create(name=name, **fields)
    return Q(name=name)


async def lapse(key: Q, model=JobLease, column: str = "claimed_until") -> None:
    """The holder died: its lease ran out a second ago."""
    await model.filter(key).update(**{column: utcnow() - timedelta(seconds=1)})


@pytest.mark.parametrize("lease", [HELD, RENEWABLE], ids=["not-renewable", "renewable"])
async def test_a_free_row_is_taken_and_then_refused_to_another(lease):
    key = await job_row()
    before = utcnow()
    assert await lease.take(key, holder="host-a:1", lease_s=60)
    row = await JobLease.get(key)
    assert row.claimed_by == "host-a:1"
    assert before + timedelta(seconds=59) < row.claimed_until <= utcnow() + timedelta(seconds=60)

    assert not await lease.take(key, holder="host-b:2", lease_s=600)
    after = await JobLease.get(key)
    assert (after.claimed_by, after.claimed_until) == ("host-a:1", row.claimed_until)  # untouched


@pytest.mark.parametrize("lease", [HELD, RENEWABLE], ids=["not-renewable", "renewable"])
async def test_an_expired_lease_is_taken_by_another(lease):
    key = await job_row()
    assert await lease.take(key, holder="host-a:1", lease_s=60)
    await lapse(key)
    assert await lease.take(key, holder="host-b:2", lease_s=60)
    row = await JobLease.get(key)
    assert row.claimed_by == "host-b:2" and row.claimed_until > utcnow()


async def test_a_renewable_lease_is_renewed_by_its_holder_and_by_no_one_else():
    key = await job_row()
    assert await RENEWABLE.take(key, holder="host-a:1", lease_s=5)
    first = (await JobLease.get(key)).claimed_until
    assert await RENEWABLE.take(key, holder="host-a:1", lease_s=60)
    renewed = await JobLease.get(key)
    assert renewed.claimed_by == "host-a:1" and renewed.claimed_until > first + timedelta(seconds=50)
    assert not await RENEWABLE.take(key, holder="host-b:2", lease_s=60)
    assert (await JobLease.get(key)).claimed_by == "host-a:1"


async def test_a_lease_that_is_not_renewable_is_refused_to_its_own_holder_too():
    key = await job_row()
    assert await HELD.take(key, holder="host-a:1", lease_s=60)
    assert not await HELD.take(key, holder="host-a:1", lease_s=60)
    # the outbox's lease is of this kind: a message held is not claimed again, even by its worker
    message = await OutboxMessage.create(kind="test_lease", payload={}, next_attempt_at=utcnow() + timedelta(days=1))
    assert await outbox.claim(message.id, "worker:1", lease_s=60)
    assert not await outbox.claim(message.id, "worker:1", lease_s=60)
    assert not await outbox.claim(message.id, "worker:2", lease_s=60)
    await lapse(Q(id=message.id), OutboxMessage)
    assert await outbox.claim(message.id, "worker:2", lease_s=60)


async def test_only_the_holder_lets_go_when_a_holder_is_named():
    key = await job_row()
    assert await RENEWABLE.take(key, holder="host-a:1", lease_s=60)
    assert await RENEWABLE.release(key, holder="host-b:2", last_result={"by": "b"}) == 0
    row = await JobLease.get(key)
    assert row.claimed_by == "host-a:1" and row.last_result is None
    assert await RENEWABLE.release(key, holder="host-a:1", last_result={"by": "a"}) == 1
    row = await JobLease.get(key)
    assert (row.claimed_by, row.claimed_until, row.last_result) == (None, None, {"by": "a"})
    assert await RENEWABLE.take(key, holder="host-b:2", lease_s=60)  # free again at once


async def test_a_first_claim_creates_the_row_and_a_second_claimer_is_refused():
    name = f"test.lease.new.{time.time_ns()}"
    assert await RENEWABLE.take(Q(name=name), holder="host-a:1", lease_s=60, create={"name": name})
    assert (await JobLease.get(name=name)).claimed_by == "host-a:1"
    assert not await RENEWABLE.take(Q(name=name), holder="host-b:2", lease_s=60, create={"name": name})
    # without ``create`` a missing row is simply not taken
    assert not await RENEWABLE.take(Q(name=name + ".x"), holder="host-a:1", lease_s=60)
    assert not await JobLease.exists(name=name + ".x")


async def test_a_lease_with_no_holder_column_is_taken_when_free_and_refused_while_held():
    record = await IdempotencyRecord.create(
        user_id=0, scope="test leases", key=secrets.token_hex(8), request_hash="0" * 64,
        expires_at=utcnow() + timedelta(days=1))
    key = Q(id=record.id)
    assert await idempotency.LEASE.take(key, lease_s=60)
    assert not await idempotency.LEASE.take(key, lease_s=60)  # a request holds it: no one else, no renewal
    await lapse(key, IdempotencyRecord, "locked_until")
    assert await idempotency.LEASE.take(key, lease_s=60)
    assert await idempotency.LEASE.release(key) == 1
    assert (await IdempotencyRecord.get(id=record.id)).locked_until is None
    with pytest.raises(ValueError):
        await idempotency.LEASE.release(key, holder="someone")


async def test_each_lease_of_the_bank_is_the_shared_one_with_its_own_renewal_rule():
    assert (jobs.LEASE.model, jobs.LEASE.holder, jobs.LEASE.renewable) == (JobLease, "claimed_by", True)
    assert (outbox.LEASE.model, outbox.LEASE.holder, outbox.LEASE.renewable) == (OutboxMessage, "claimed_by", False)
    assert (idempotency.LEASE.model, idempotency.LEASE.until, idempotency.LEASE.holder) == (
        IdempotencyRecord, "locked_until", None)


# -- races: two claimers for one row ---------------------------------------------------------------------


async def _rows() -> list[tuple[str, Lease, type, Q]]:
    """One free row of each lease the bank takes, with the key its service takes it by."""
    job = await job_row()
    message = await OutboxMessage.create(kind="test_lease", payload={}, next_attempt_at=utcnow() + timedelta(days=1))
    record = await IdempotencyRecord.create(
        user_id=0, scope="test leases", key=secrets.token_hex(8), request_hash="0" * 64,
        expires_at=utcnow() + timedelta(days=1))
    return [
        ("job", jobs.LEASE, JobLease, job),
        ("outbox", outbox.LEASE, OutboxMessage, Q(id=message.id) & Q(status=OutboxStatus.PENDING)),
        ("idempotency", idempotency.LEASE, IdempotencyRecord, Q(id=record.id) & Q(status_code__isnull=True)),
    ]


def _holder(lease: Lease, i: int) -> str | None:
    return f"host:{i}" if lease.holder else None


async def test_many_concurrent_claimers_have_one_winner():
    for name, lease, _, key in await _rows():
        won = await asyncio.gather(*[lease.take(key, holder=_holder(lease, i), lease_s=60) for i in range(8)])
        assert sum(won) == 1, name


@pytest.mark.skipif(not MYSQL_URL, reason="two claimers at once need MySQL's connections (SQLite serves one)")
@pytest.mark.parametrize("expired", [False, True], ids=["free", "expired"])
async def test_two_claimers_released_at_the_same_instant_have_exactly_one_winner(expired):
    """Both UPDATEs are sent while a third connection holds the row's lock, so both start from the same
    free row and wait at the same point; when the lock goes, the row count of each decides."""
    for name, lease, model, key in await _rows():
        if expired:
            assert await lease.take(key, holder=_holder(lease, 99), lease_s=60)
            await lapse(key, model, lease.until)
        go = asyncio.Event()

        async def claimer(i: int, lease=lease, key=key) -> bool:
            await go.wait()
            return await lease.take(key, holder=_holder(lease, i), lease_s=60)

        # started outside the transaction, so they run on connections of their own (Tortoise hands the
        # transaction's connection to tasks started inside it)
        claimers = [asyncio.ensure_future(claimer(i)) for i in (1, 2)]
        async with in_transaction() as conn:
            await model.filter(key).select_for_update().using_db(conn).get()
            go.set()
            await asyncio.sleep(0.5)
            assert not any(c.done() for c in claimers), f"{name}: the row lock did not hold the claimers"
        won = await asyncio.gather(*claimers)
        assert sorted(won) == [False, True], name
        if lease.holder:
            winner = (1, 2)[won.index(True)]
            assert getattr(await model.get(key), lease.holder) == f"host:{winner}", name
