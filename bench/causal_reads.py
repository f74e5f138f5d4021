"""``python -m bench.causal_reads SECONDS ROUNDS``: what ``wsrep_sync_wait`` costs the balance read on Galera.

Run by the ``causal_reads`` scenario. Starts a 3-node MariaDB Galera cluster of its own on loopback ports
(``tests/resilience/mariadb.py``; needs galera-4, rsync and the mysql user), migrates it, and opens one
account straight into the table. Then, with writers committing on node 2 all the while (so a synced read
has something to wait for), reads the balance on node 1 through the service the API uses
(``services.accounts.views.account``, hence ``services.db.causal_read``) with causal reads on and off,
interleaved A/B rounds of SECONDS each, 16 readers at once. Last, the stale-read probe: 1,000 times, set
the balance on node 2, and once that commit is acknowledged read it on node 1; count the reads that saw an
older value. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiomysql

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "openbank_bench_causal"
READERS = 16
WRITERS = 4
PROBES = 1_000


class _Writer:
    def __init__(self, pool) -> None:
        self.pool = pool

    async def execute_query(self, sql: str, args: list) -> None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)


async def _reads(seconds: float, user_id: int, account_id: int) -> dict:
    from services.accounts import views

    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def reader() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await views.account(user_id, account_id)
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(READERS)))
    latencies.sort()
    return {"rps": len(latencies) / (time.perf_counter() - started), "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[int(len(latencies) * 0.99)], "max_ms": latencies[-1]}


async def _probe(writer, user_id: int, account_id: int) -> int:
    from services.accounts import views

    stale = 0
    for i in range(PROBES):
        await writer.execute_query("UPDATE accounts SET balance_fen = %s WHERE id = %s", [10_000 + i, account_id])
        if (await views.account(user_id, account_id)).balance_fen != 10_000 + i:
            stale += 1
    return stale


async def run(urls: list[str], seconds: float, rounds: int) -> dict:
    from tortoise import Tortoise

    from app.__main__ import _settings
    from app.db import close_db, init_db
    from core.clock import utcnow
    from models.accounts import Account, AccountHolder
    from models.users import User
    from services.accounts import rules
    from services.accounts.numbers import new_account_number

    await init_db(urls[0], auto_migrate=True)
    # node 2's writer: a plain pool of its own (a second Tortoise connection would make every unnamed
    # transaction ambiguous)
    parts = urlsplit(urls[1])
    pool = await aiomysql.create_pool(host=parts.hostname, port=parts.port, user="root", password="",
                                      db=parts.path.lstrip("/"), autocommit=True, maxsize=WRITERS + 1)
    writer = _Writer(pool)
    try:
        reads = Tortoise.get_connection("default")
        await reads.execute_query("SELECT 1")
        detected = reads.causal_reads
        user = await User.create(openid="obench" + secrets.token_hex(10))
        holder = secrets.token_hex(32)
        await AccountHolder.create(holder_index=holder)
        prefix = _settings().bank_account_prefix
        account, other = [await Account.create(
            number=new_account_number(prefix), user_id=user.id, holder_index=holder, account_class="II",
            rules_version=rules.RULES_VERSION, bound_card_enc="-", bound_card_index="-", bound_card_masked="-",
            opened_at=utcnow()) for _ in range(2)]
        stop = asyncio.Event()
        writes = 0

        async def write_load() -> None:  # commits on node 2 that node 1 has to apply
            nonlocal writes
            while not stop.is_set():
                await writer.execute_query("UPDATE accounts SET pending_in_fen = pending_in_fen + 1 WHERE id = %s",
                                           [other.id])
                writes += 1

        load = [asyncio.ensure_future(write_load()) for _ in range(WRITERS)]
        on, off = [], []
        t0 = time.perf_counter()
        for _ in range(rounds):
            for mode, into in ((True, on), (False, off)):
                reads.causal_reads = mode
                into.append(await _reads(seconds, user.id, account.id))
        write_rate = writes / (time.perf_counter() - t0)
        stop.set()
        await asyncio.gather(*load)
        stale = {}
        for mode in (False, True):
            reads.causal_reads = mode
            stale["on" if mode else "off"] = await _probe(writer, user.id, account.id)
        median = lambda runs: {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}  # noqa: E731
        return {"detected": detected, "on": median(on), "off": median(off), "writes_per_s": round(write_rate),
                "probes": PROBES, "stale": stale}
    finally:
        pool.close()
        await pool.wait_closed()
        await close_db()


def main(seconds: float, rounds: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.resilience import mariadb

    why = mariadb.available()
    if why:
        return {"skipped": why}
    cluster = mariadb.Cluster(3).start()
    try:
        with cluster.nodes[0].connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        return asyncio.run(run([n.url(DATABASE) for n in cluster.nodes[:2]], seconds, rounds))
    finally:
        cluster.stop()


if __name__ == "__main__":
    print(json.dumps(main(float(sys.argv[1]), int(sys.argv[2]))))
