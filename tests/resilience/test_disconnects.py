"""Clients that hang up in the middle of debits, top-ups and WeChat Pay notifications, under load, leave
nothing behind.

A two-worker server whose pools hold at most three connections each (so a few leaked connections would
starve it) takes partner debits, top-ups and payment notifications (signed and encrypted as WeChat Pay does, by the
sandbox's own functions) from 16 clients for a few seconds; each request gives up
after a random 1–40 ms, on a connection of its own, so most are cut off while the server is inside them.
Afterwards:

* no transaction is left open in the database, and the server still answers 40 requests at once;
* every request cut off, sent again with its key (``Idempotency-Key``, ``out_trade_no``, the
  notification's id), ends exactly once: the balances equal what the answers say was booked, the card was
  pulled once per top-up, each order paid once (one inbox row, one paid event), and ``ledger check``
  passes;
* the server shuts down cleanly (exit 0) well within its graceful timeout.

Runs in the MySQL pass of the suite.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pymysql
import pytest

from bench.scenarios import _notifications
from tests.account_helpers import card_balance, new_key, open_account, top_up
from tests.conftest import MYSQL_URL, free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env
from tests.helpers import Sandbox
from tests.partner_helpers import PartnerCreds, bound_car, call, debit_body

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not MYSQL_URL, reason="needs MySQL (several workers)")]
LEASE_S = 3


def _sql(statement: str, *args) -> tuple:
    from urllib.parse import urlsplit

    parts = urlsplit(MYSQL_URL)
    with pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                         password=parts.password or "", database=parts.path.lstrip("/")) as conn, conn.cursor() as cur:
        cur.execute(statement, args)
        return cur.fetchone()


def _open_transactions(older_than_s: int) -> int:
    return _sql("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_started < NOW() - INTERVAL %s SECOND",
                older_than_s)[0]


async def test_clients_hanging_up_mid_request_leak_nothing_and_lose_nothing(tmp_path: Path):
    env = server_env(tmp_path, SANDBOX_ROUTES="1", IDEMPOTENCY_LEASE_S=str(LEASE_S),
                     DATABASE_URL=MYSQL_URL + "?maxsize=3")
    server = ServerProcess(free_port(), env, tmp_path / "server.log", workers=2)
    stopped = None
    try:
        await asyncio.to_thread(server.wait_ready)
        made = subprocess.run([sys.executable, "-m", "app", "partner", "create", "--name", "收费站", "--scopes",
                               "etc:debit"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        found = json.loads(made.stdout)
        partner = PartnerCreds(found["app_id"], found["secret"], found["scopes"])
        async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as http:
            car = await bound_car(http, Sandbox(http), balance_fen=1_000_000)
            seeded = tmp_path / "orders.json"
            subprocess.run([sys.executable, str(ROOT / "bench" / "seed_payments.py"), "400", str(seeded)], cwd=ROOT,
                           env={**env, "SELF_BASE_URL": server.url}, check=True, capture_output=True, timeout=300)
            seed = json.loads(seeded.read_text())
            notes = iter(_notifications(seed, seed["orders"])[::2])  # one of each: the loop cuts some off
            user, person, account = await open_account(http, Sandbox(http), card_balance_fen=10**9)
            card_before = await card_balance(http, person.card_number)

            debits: dict[str, dict] = {}  # out_trade_no -> body
            top_ups: list[str] = []  # Idempotency-Keys
            sent_notes: list[tuple[str, dict, str]] = []  # (path, headers, body)
            cut = 0
            stop = asyncio.Event()

            async def client() -> None:
                nonlocal cut
                while not stop.is_set():
                    patience = random.uniform(0.001, 0.04)
                    async with httpx.AsyncClient(base_url=server.url, timeout=patience, trust_env=False) as once:
                        try:
                            pick = random.random()
                            note = next(notes, None) if pick < 0.34 else None
                            if note is not None:
                                sent_notes.append(note)
                                await once.post(note[0], content=note[2].encode(),
                                                headers={**note[1], "Content-Type": "application/json"})
                            elif pick < 0.67:
                                body = debit_body(car, 100)
                                debits[body["out_trade_no"]] = body
                                await call(once, partner, "POST", "/open/v1/debits", body)
                            else:
                                key = new_key()
                                top_ups.append(key)
                                await top_up(once, user, account["id"], 100, key=key)
                        except httpx.TimeoutException:
                            cut += 1

            clients = [asyncio.create_task(client()) for _ in range(16)]
            await asyncio.sleep(6)
            stop.set()
            await asyncio.gather(*clients)
            assert cut > 50, f"only {cut} requests were cut off: the test did not test much"

            # nothing left open, and the pools are whole: 40 requests at once all get through quickly
            await asyncio.sleep(2)
            assert _open_transactions(older_than_s=2) == 0
            started = time.monotonic()
            answers = await asyncio.gather(*(http.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)
                                             for _ in range(40)))
            assert [a.status_code for a in answers] == [200] * 40 and time.monotonic() - started < 10

            # every request, sent again with its key, ends exactly once: a 409 waits for the first request's
            # claim to lapse, a 202 (a card transfer whose answer was lost, still being settled) goes on
            async def until_final(send) -> httpx.Response:
                deadline = time.monotonic() + LEASE_S + 15
                while True:
                    resp = await send()
                    if resp.status_code not in (202, 409) or time.monotonic() > deadline:
                        return resp
                    await asyncio.sleep(0.5)

            debit_answers = await asyncio.gather(*(until_final(
                lambda body=body: call(http, partner, "POST", "/open/v1/debits", body)) for body in debits.values()))
            top_up_answers = await asyncio.gather(*(until_final(
                lambda key=key: top_up(http, user, account["id"], 100, key=key)) for key in top_ups))
            note_answers = await asyncio.gather(*(http.post(path, content=body.encode(), headers={
                **headers, "Content-Type": "application/json"}) for path, headers, body in sent_notes))
            assert {a.status_code for a in note_answers} == {204}, [a.text for a in note_answers if a.status_code != 204]
            assert {a.status_code for a in debit_answers} <= {201, 422}
            assert {a.status_code for a in top_up_answers} == {201}
            booked = sum(a.status_code == 201 for a in debit_answers)
            got = (await http.get(f"/api/v1/accounts/{car.account['id']}", headers=car.user.headers)).json()
            assert got["balance_fen"] == 1_000_000 - booked * 100
            got = (await http.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
            assert got["balance_fen"] == len(top_ups) * 100
            assert card_before - await card_balance(http, person.card_number) == len(top_ups) * 100

        paid = _sql("SELECT COUNT(*), COUNT(DISTINCT o.id) FROM payment_orders o JOIN pay_notifications n "
                    "ON n.out_trade_no = o.out_trade_no WHERE o.out_trade_no LIKE %s AND o.status = 'paid'",
                    f"BN{seed['run']}%")
        moved = _sql("SELECT COUNT(*) FROM audit_events a JOIN payment_orders o ON a.entity_id = CAST(o.id AS CHAR) "
                     "WHERE a.action = 'payment_order.paid' AND o.out_trade_no LIKE %s", f"BN{seed['run']}%")
        assert paid == (len(sent_notes), len(sent_notes)) and moved == (len(sent_notes),), (paid, moved)
        checked = subprocess.run([sys.executable, "-m", "app", "ledger", "check"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        print(f"{len(debits)} debits, {len(top_ups)} top-ups and {len(sent_notes)} notifications, {cut} of them "
              "cut off by their client")
    finally:
        began = time.monotonic()
        stopped = server.stop()
        took = time.monotonic() - began
    assert stopped == 0 and took < 20, f"the server stopped with {stopped} after {took:.1f} s"
