"""The notification dispatcher of the emulated WeChat Pay: it signs and sends the notifications the
API and the control API store (``pay_notifications``), on WeChat's retry schedule, and redelivers
them on request.

Notifications are rows of the state file; each worker process runs a dispatcher
(:meth:`Dispatcher.start`) that claims due deliveries atomically (a lease of the delivery timeout
+ 5 s) and POSTs them, so a retry due while the process that made the payment is gone is sent by any
other process running the sandbox. A delivery succeeds on HTTP 200 or 204 within
``pay_notify_timeout_s``; otherwise the next one is due after the next pause of
``pay_retry_schedule_s``; after the last pause's delivery fails the notification is ``failed``.
Redeliveries are extra sends of the same body with fresh signatures, outside that schedule
(optionally tampered with, for negative tests).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

import httpx

from sandbox.control_kit import bad, not_found
from sandbox.state import Tx
from sandbox.wechatpay.core import (
    WeChatPay,
    encrypt_resource,
    new_event_id,
    new_public_key_id,
    rfc3339,
    sign_message,
)
from sandbox.wxcommon import dumps

log = logging.getLogger("sandbox.wechatpay")

LEASE_MARGIN_S = 5.0
POLL_S = 0.2
POLL_IDLE_S = 1.0
SUCCESS_STATUSES = (200, 204)
TAMPERS = ("byte", "serial", "timestamp", "signature")


async def new_notification(
    tx: Tx, merchant: Any, event_type: str, summary: str, original_type: str, plaintext: dict[str, Any],
    out_trade_no: str, out_refund_no: str | None, notify_url: str, event_at: float, status: str,
    next_at: float | None,
) -> str:
    """Store a notification (its body encrypted under the merchant's APIv3 key) in ``tx``; the
    dispatcher sends it when ``next_at`` comes (``status`` pending) or never (dropped)."""
    notification_id = new_event_id()
    resource = encrypt_resource(merchant["apiv3_key"], dumps(plaintext), original_type)
    body = {
        "id": notification_id, "create_time": rfc3339(event_at), "resource_type": "encrypt-resource",
        "event_type": event_type, "summary": summary,
        "resource": {"original_type": original_type, **resource},
    }
    await tx.execute(
        "INSERT INTO pay_notifications (id, mchid, event_type, summary, out_trade_no, out_refund_no, notify_url, "
        "body, resource_json, created_at, status, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (notification_id, merchant["mchid"], event_type, summary, out_trade_no, out_refund_no, notify_url,
         dumps(body), dumps(plaintext), time.time(), status, next_at),
    )
    return notification_id


class Dispatcher:
    """Sends the stored notifications (one per blueprint; per process it keeps only its task and HTTP
    client)."""

    def __init__(self, pay: WeChatPay):
        self.pay = pay
        self.state = pay.state
        self._task: asyncio.Task | None = None
        self._task_pid: int | None = None
        self._wake: asyncio.Event | None = None
        self._inflight: set[asyncio.Task] = set()
        self._client: httpx.AsyncClient | None = None

    async def notifications(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        where, params = [], []
        for column in ("mchid", "out_trade_no", "out_refund_no", "event_type"):
            if filters.get(column):
                where.append(f"{column} = ?")
                params.append(filters[column])
        rows = await self.state.fetchall(
            "SELECT rowid AS seq, * FROM pay_notifications" + (" WHERE " + " AND ".join(where) if where else "")  # nosec B608
            + " ORDER BY rowid",
            params,
        )
        out = []
        for r in rows:
            attempts = await self.state.fetchall(
                "SELECT at, kind, tamper, http_status, error, reply FROM pay_attempts WHERE notification_id = ? ORDER BY id",
                (r["id"],),
            )
            out.append({
                "id": r["id"], "mchid": r["mchid"], "event_type": r["event_type"], "summary": r["summary"],
                "out_trade_no": r["out_trade_no"], "out_refund_no": r["out_refund_no"], "notify_url": r["notify_url"],
                "status": r["status"], "next_attempt_at": r["next_at"] if r["status"] == "pending" else None,
                "created_at": r["created_at"], "delivered_at": r["delivered_at"],
                "resource": json.loads(r["resource_json"]), "attempts": [dict(a) for a in attempts],
            })
        return out

    async def redeliver(self, notification_id: str, count: int, parallel: bool, tamper: str | None) -> dict[str, Any]:
        row = await self.state.fetchone("SELECT * FROM pay_notifications WHERE id = ?", (notification_id,))
        if row is None:
            raise not_found("unknown notification id")
        if parallel:
            attempts = list(await asyncio.gather(*(self._send(row, "redeliver", tamper) for _ in range(count))))
        else:
            attempts = [await self._send(row, "redeliver", tamper) for _ in range(count)]
        async with self.state.tx() as tx:
            for a in attempts:
                await self._record_attempt(tx, notification_id, a)
        return {"id": notification_id, "attempts": attempts}

    async def notify_again(self, prepay_id: str, count: int, parallel: bool, tamper: str | None) -> dict[str, Any]:
        """Send the payment notification of the order of ``prepay_id`` again (``POST pay/{prepay_id}/notify``):
        what a test that knows the order, not the notification's id, asks for."""
        order = await self.state.fetchone("SELECT mchid, out_trade_no FROM pay_orders WHERE prepay_id = ?", (prepay_id,))
        if order is None:
            raise not_found("unknown prepay_id")
        row = await self.state.fetchone(
            "SELECT id FROM pay_notifications WHERE mchid = ? AND out_trade_no = ? AND event_type = 'TRANSACTION.SUCCESS' "
            "ORDER BY rowid DESC LIMIT 1", (order["mchid"], order["out_trade_no"]))
        if row is None:
            raise bad("prepay_id", "the order is not paid: there is no notification to send (POST pay/{prepay_id} "
                                   "pays it)")
        return await self.redeliver(row["id"], count, parallel, tamper)

    # -- delivery ----------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                             limits=httpx.Limits(max_connections=200, max_keepalive_connections=20))
        return self._client

    async def _send(self, row: Any, kind: str, tamper: str | None) -> dict[str, Any]:
        """One delivery of the notification ``row`` (signed now; tampered with if asked)."""
        platform = await self.pay.platform()
        timeout = float((await self.pay.settings())["notify_timeout_s"])
        body = row["body"].encode("utf-8")
        ts = str(int(time.time()) - (600 if tamper == "timestamp" else 0))
        headers = platform.headers(body, timestamp=ts)
        if tamper == "signature":  # a well-formed signature, of other bytes
            headers["Wechatpay-Signature"] = platform.sign(sign_message(ts, headers["Wechatpay-Nonce"], body + b" "))
        elif tamper == "serial":
            headers["Wechatpay-Serial"] = new_public_key_id()
        elif tamper == "byte":
            body = _flip_one_byte(body)
        headers.update({"Content-Type": "application/json", "User-Agent": "Mozilla/4.0", "Accept": "*/*"})
        attempt: dict[str, Any] = {"at": time.time(), "kind": kind, "tamper": tamper, "http_status": None,
                                   "error": None, "reply": None}
        try:
            response = await asyncio.wait_for(
                self._http().post(row["notify_url"], content=body, headers=headers, timeout=httpx.Timeout(timeout)),
                timeout,
            )
            attempt["http_status"] = response.status_code
            attempt["reply"] = response.text[:500]
        except (TimeoutError, httpx.TimeoutException):
            attempt["error"] = f"timeout: no answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            attempt["error"] = f"{type(exc).__name__}: {exc}"[:500]
        return attempt

    @staticmethod
    async def _record_attempt(tx: Tx, notification_id: str, a: dict[str, Any]) -> None:
        await tx.execute(
            "INSERT INTO pay_attempts (notification_id, kind, tamper, at, http_status, error, reply) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (notification_id, a["kind"], a["tamper"], a["at"], a["http_status"], a["error"], a["reply"]),
        )

    async def _claim(self, timeout: float) -> Any:
        now = time.time()
        return await self.state.fetchone(
            "UPDATE pay_notifications SET lease_until = ?, attempts = attempts + 1 WHERE id = ("
            "SELECT id FROM pay_notifications WHERE status = 'pending' AND next_at <= ? "
            "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_at LIMIT 1) RETURNING *",
            (now + timeout + LEASE_MARGIN_S, now, now),
        )

    async def _deliver(self, row: Any) -> None:
        attempt = await self._send(row, "scheduled", None)
        schedule = (await self.pay.settings())["retry_schedule_s"]
        now = time.time()
        done = attempt["http_status"] in SUCCESS_STATUSES
        n = row["attempts"]  # this delivery's number (counted when it was claimed)
        async with self.state.tx() as tx:
            await self._record_attempt(tx, row["id"], attempt)
            if done:
                await tx.execute("UPDATE pay_notifications SET status = 'delivered', next_at = NULL, lease_until = NULL, "
                                 "delivered_at = ? WHERE id = ?", (now, row["id"]))
            elif n <= len(schedule):
                await tx.execute("UPDATE pay_notifications SET next_at = ?, lease_until = NULL WHERE id = ?",
                                 (now + float(schedule[n - 1]), row["id"]))
            else:
                await tx.execute("UPDATE pay_notifications SET status = 'failed', next_at = NULL, lease_until = NULL "
                                 "WHERE id = ?", (row["id"],))

    def wake(self) -> None:
        """A notification may be due: make sure this process's dispatcher runs and looks now."""
        self.start()
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        """Start this process's dispatcher (idempotent; needs a running event loop)."""
        if self._task is not None and self._task_pid == os.getpid() and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wake = asyncio.Event()
        self._inflight = set()
        self._client = None
        self._task = loop.create_task(self._loop(), name="sandbox-wechatpay-dispatcher")
        self._task_pid = os.getpid()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or self._task_pid != os.getpid():
            return
        tasks = [task, *self._inflight]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight = set()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            try:
                due = await self.state.fetchone(
                    "SELECT MIN(MAX(next_at, COALESCE(lease_until, 0))) AS t FROM pay_notifications WHERE status = 'pending'"
                )
                t = None if due is None else due["t"]
                if t is not None and t <= time.time():
                    timeout = float((await self.pay.settings())["notify_timeout_s"])
                    row = await self._claim(timeout)
                    if row is not None:
                        task = asyncio.create_task(self._deliver_logged(row))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
                        continue
                    wait = 0.01  # another process claimed it first
                else:
                    # nothing pending: a notification made by this process wakes the loop at once; one
                    # made by another process is that process's to send, unless it stops (then within 1 s)
                    wait = POLL_IDLE_S if t is None else max(0.0, min(POLL_S, t - time.time()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sandbox WeChat Pay dispatcher failed")
                wait = 1.0
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def _deliver_logged(self, row: Any) -> None:
        try:
            await self._deliver(row)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sandbox WeChat Pay delivery of %s failed", row["id"])


def _flip_one_byte(body: bytes) -> bytes:
    """The body with one character of ``resource.ciphertext`` changed (still valid JSON and base64)."""
    marker = b'"ciphertext":"'
    i = body.find(marker)
    i = i + len(marker) + 4 if i >= 0 else len(body) // 2
    swapped = b"B" if body[i:i + 1] != b"B" else b"C"
    return body[:i] + swapped + body[i + 1:]
