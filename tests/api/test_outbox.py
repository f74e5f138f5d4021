"""The transactional outbox: written with the change, delivered by lease through the WeChat emulator,
retried with backoff after transient failures, given up after the configured attempts, never retried
when the user refused the message (43101), every attempt recorded; and run by ``python -m app worker``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import timedelta

from core.clock import utcnow
from models.infra import OutboxAttempt, OutboxMessage, OutboxStatus
from services import outbox, worker
from services.db import atomic
from services.notifications import outbox_handlers
from tests.account_helpers import open_account
from tests.e2e.servers import ROOT, server_env

SEND = "cgi-bin/message/subscribe/send"


async def opened_message(client, sandbox, *, subscribed: bool = True) -> tuple[object, OutboxMessage]:
    """A user whose account was just opened, and the "account opened" message waiting for them; the user
    accepted that template in wx.requestSubscribeMessage (twice: a message delivered twice would show)."""
    user, _, _ = await open_account(client, sandbox)
    message = next(m for m in await OutboxMessage.filter(kind="subscribe_message", status=OutboxStatus.PENDING)
                   if m.payload["touser"] == user.openid)
    if subscribed:
        await sandbox.subscribe(user.openid, message.payload["template_id"], times=2)
    # Messages earlier tests left pending would take the emulator's faults and the send counts: park them.
    await OutboxMessage.filter(status=OutboxStatus.PENDING).exclude(id=message.id).update(
        next_attempt_at=utcnow() + timedelta(days=1))
    return user, message


async def deliver(ctx, *, max_attempts: int = 8, holder: str = "test-worker:1") -> int:
    return await outbox.deliver_due(outbox_handlers(ctx), holder=holder, max_attempts=max_attempts)


async def make_due(message_id: int) -> None:
    """Skip the backoff wait (the time a worker would sleep)."""
    await OutboxMessage.filter(id=message_id).update(next_attempt_at=utcnow())


async def send_calls(sandbox) -> int:
    """How many subscribe-message calls reached the emulator (its call log does not keep bodies)."""
    return len(await sandbox.calls(SEND))


async def test_delivered_after_transient_failures_with_every_attempt_recorded(client, sandbox, ctx):
    user, message = await opened_message(client, sandbox)
    calls_before = await send_calls(sandbox)
    await sandbox.fault(SEND, http_status=503, count=2)  # WeChat fails twice
    before = utcnow()
    await deliver(ctx)
    first = await OutboxMessage.get(id=message.id)
    assert (first.status, first.attempts) == (OutboxStatus.PENDING, 1) and "503" in first.last_error
    assert 1.5 <= (first.next_attempt_at - before).total_seconds() <= 3  # backoff: 2 s, then 4 s ...
    assert first.claimed_by is None  # the lease is let go
    assert await deliver(ctx) == 0  # not due yet
    await make_due(message.id)
    await deliver(ctx)
    second = await OutboxMessage.get(id=message.id)
    assert second.attempts == 2 and 3.5 <= (second.next_attempt_at - utcnow()).total_seconds() <= 4.5
    await make_due(message.id)
    await deliver(ctx)
    done = await OutboxMessage.get(id=message.id)
    assert (done.status, done.attempts, done.last_error) == (OutboxStatus.SENT, 3, None) and done.finished_at
    attempts = await OutboxAttempt.filter(message_id=message.id).order_by("id")
    assert [a.ok for a in attempts] == [False, False, True]
    assert all("503" in a.detail for a in attempts[:2]) and attempts[2].detail == "delivered"
    assert await send_calls(sandbox) - calls_before == 3  # two failed calls, one that went through


async def test_gives_up_after_the_configured_attempts(client, sandbox, ctx):
    _, message = await opened_message(client, sandbox)
    await sandbox.fault(SEND, http_status=500, count=10)
    for _ in range(3):
        await make_due(message.id)
        await deliver(ctx, max_attempts=3)
    gone = await OutboxMessage.get(id=message.id)
    assert (gone.status, gone.attempts) == (OutboxStatus.GAVE_UP, 3) and gone.finished_at
    attempts = await OutboxAttempt.filter(message_id=message.id).order_by("id")
    assert len(attempts) == 3 and not any(a.ok for a in attempts) and attempts[-1].detail.startswith("gave up")
    await make_due(message.id)
    await deliver(ctx, max_attempts=3)
    assert await OutboxAttempt.filter(message_id=message.id).count() == 3  # nothing more is tried


async def test_a_user_who_refused_the_message_is_not_retried(client, sandbox, ctx):
    _, message = await opened_message(client, sandbox)
    await sandbox.fault(SEND, errcode=43101)
    await deliver(ctx)
    gone = await OutboxMessage.get(id=message.id)
    assert (gone.status, gone.attempts) == (OutboxStatus.GAVE_UP, 1)
    assert gone.last_error == "permanent: errcode 43101"
    assert await OutboxAttempt.filter(message_id=message.id).count() == 1


async def test_a_user_who_never_subscribed_is_refused_once_and_recorded(client, sandbox, ctx, caplog):
    user, message = await opened_message(client, sandbox, subscribed=False)
    calls_before = await send_calls(sandbox)
    with caplog.at_level("WARNING", logger="services.outbox"):
        await deliver(ctx)
    gone = await OutboxMessage.get(id=message.id)
    # WeChat's 43101 is a permanent refusal: given up at the first answer, recorded on the message
    assert (gone.status, gone.attempts, gone.last_error) == (OutboxStatus.GAVE_UP, 1, "permanent: errcode 43101")
    [attempt] = await OutboxAttempt.filter(message_id=message.id)
    assert not attempt.ok and attempt.detail == "permanent: errcode 43101"
    await make_due(message.id)
    assert await deliver(ctx) == 0 and await send_calls(sandbox) - calls_before == 1  # never tried again
    assert user.openid not in caplog.text  # logged without the user


async def test_a_message_is_delivered_once_by_competing_workers(client, sandbox, ctx):
    user, message = await opened_message(client, sandbox)
    calls_before = await send_calls(sandbox)
    await asyncio.gather(*(deliver(ctx, holder=f"worker-{i}:1") for i in range(5)))
    assert (await OutboxMessage.get(id=message.id)).status == OutboxStatus.SENT
    assert await OutboxAttempt.filter(message_id=message.id).count() == 1
    assert await send_calls(sandbox) - calls_before == 1


async def test_a_crashed_workers_claim_lapses(client, sandbox, ctx):
    user, message = await opened_message(client, sandbox)
    # a worker claimed it and died
    assert await outbox.claim(message.id, "dead-worker:1", lease_s=60)
    assert await deliver(ctx) == 0
    await OutboxMessage.filter(id=message.id).update(claimed_until=utcnow() - timedelta(seconds=1))
    assert await deliver(ctx) == 1
    assert (await OutboxMessage.get(id=message.id)).status == OutboxStatus.SENT


async def test_a_message_exists_only_if_its_change_committed():
    class Abort(Exception):
        pass

    async def change(conn):
        await outbox.enqueue(conn, "subscribe_message", {"touser": "o-rolled-back"})
        raise Abort()

    try:
        await atomic(change)
    except Abort:
        pass
    assert not [m for m in await OutboxMessage.all() if m.payload.get("touser") == "o-rolled-back"]


async def test_the_worker_loop_delivers_while_it_runs(client, sandbox, ctx, settings):
    user, message = await opened_message(client, sandbox)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.deliver_outbox(ctx, settings, stop, holder="loop:1"))
    try:
        deadline = time.monotonic() + 10
        while (await OutboxMessage.get(id=message.id)).status != OutboxStatus.SENT and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert (await OutboxMessage.get(id=message.id)).status == OutboxStatus.SENT


async def test_python_m_app_worker_delivers_the_outbox(tmp_path, client, sandbox, server, settings):
    """The production path: a separate ``python -m app worker`` process on the same database."""
    _, message = await opened_message(client, sandbox)
    env = server_env(tmp_path, DATABASE_URL=settings.database_url, WECHAT_API_BASE=f"{server.url}/sandbox/wechat",
                     WECHAT_APPID=settings.wechat_appid, WECHAT_SECRET=settings.wechat_secret, OUTBOX_POLL_S="0.2")
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app", "worker", "--poll-s", "0.2"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            status = None
            while time.monotonic() < deadline and proc.poll() is None:
                status = (await OutboxMessage.get(id=message.id)).status
                if status == OutboxStatus.SENT:
                    break
                await asyncio.sleep(0.2)
            assert status == OutboxStatus.SENT, log_path.read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 20)
    assert code == 0, log_path.read_text()
    assert "outbox" in log_path.read_text()
    assert [a.ok for a in await OutboxAttempt.filter(message_id=message.id)] == [True]


async def test_a_spent_one_time_subscription_refuses_the_next_message(client, sandbox, ctx):
    from integrations.wechat.miniprogram import WeChatAPIError

    user, message = await opened_message(client, sandbox, subscribed=False)
    await sandbox.subscribe(user.openid, message.payload["template_id"])  # one tap, one message
    payload = message.payload
    await ctx.wechat.send_subscribe_message(touser=user.openid, template_id=payload["template_id"],
                                            data=payload["data"], page=payload["page"])
    try:
        await ctx.wechat.send_subscribe_message(touser=user.openid, template_id=payload["template_id"],
                                                data=payload["data"], page=payload["page"])
    except WeChatAPIError as exc:
        assert exc.errcode == 43101
    else:
        raise AssertionError("a spent subscription let a second message through")
