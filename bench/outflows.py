"""``python -m bench.outflows N``: N concurrent outflows on one Class II account, through the ledger service.

Run by the ``outflows`` scenario with the project's environment (``DATABASE_URL``: the benchmark's
MySQL). Opens one account (straight into the table, as opening would leave it), funds it with three
times the daily outflow limit through the ledger, then starts N debits of ¥300 at once, each in its own
transaction (``services.db.atomic``, row lock and limit check inside). Prints one JSON line: how many
were answered, booked and refused, how many fit, the latencies, and whether the balance is the sum of
its entries afterwards.

There is no HTTP route for an outflow yet (partner debits come with the open API); this is the path
every one of them will take.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
import time


class _Reruns(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "running it again" in record.getMessage():
            self.count += 1


async def run(n: int) -> dict:
    from app.__main__ import _settings
    from app.db import close_db, init_db
    from core.clock import utcnow
    from models.accounts import Account, AccountHolder, EntryDirection, EntryKind, LedgerEntry
    from models.users import User
    from services.accounts import ledger, rules
    from services.accounts.ledger import LimitExceeded
    from services.accounts.numbers import new_account_number
    from services.db import atomic

    settings = _settings()
    await init_db(settings.database_url, auto_migrate=True)
    reruns = _Reruns()
    logging.getLogger("services.db").addHandler(reruns)
    logging.getLogger("services.db").setLevel(logging.INFO)
    try:
        limits = rules.RULES["II"]
        user = await User.create(openid="obench" + secrets.token_hex(10))
        holder = secrets.token_hex(32)
        await AccountHolder.create(holder_index=holder)
        account = await Account.create(
            number=new_account_number(settings.bank_account_prefix), user_id=user.id, holder_index=holder,
            account_class="II", rules_version=rules.RULES_VERSION, bound_card_enc="-", bound_card_index="-",
            bound_card_masked="-", opened_at=utcnow())
        start = 3 * limits.daily_outflow_fen
        await atomic(lambda conn: ledger.post(conn, account.id, direction=EntryDirection.CREDIT, kind=EntryKind.TOP_UP,
                                              amount_fen=start, reference="seed"))
        amount = 30_000
        latencies: list[float] = []
        outcomes = {"booked": 0, "refused": 0, "unexpected": 0}

        async def one(i: int) -> None:
            t0 = time.perf_counter()
            try:
                await atomic(lambda conn: ledger.post(conn, account.id, direction=EntryDirection.DEBIT,
                                                      kind=EntryKind.TOLL, amount_fen=amount, reference=f"out-{i}",
                                                      counts_as_outflow=True))
                outcomes["booked"] += 1
            except LimitExceeded:
                outcomes["refused"] += 1
            except Exception:  # noqa: BLE001 - counted and reported: the target is zero of these
                outcomes["unexpected"] += 1
            latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - started
        after = await Account.get(id=account.id)
        entries = await LedgerEntry.filter(account_id=account.id)
        total = sum(e.amount_fen if e.direction == EntryDirection.CREDIT else -e.amount_fen for e in entries)
        latencies.sort()
        pick = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))]  # noqa: E731
        return {
            "answered": len(latencies), **outcomes, "fit": min(n, limits.daily_outflow_fen // amount),
            "amount_fen": amount, "limit_fen": limits.daily_outflow_fen, "used_fen": after.outflow_day_fen,
            "balance_ok": after.balance_fen == total == start - outcomes["booked"] * amount,
            "rps": len(latencies) / elapsed, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": latencies[-1],
            "reruns": reruns.count,
        }
    finally:
        await close_db()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(int(sys.argv[1])))))
