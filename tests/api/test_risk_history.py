"""The two readers of risk history answer alike: what the live path asks the database (``DbHistory``) and
what a replay asks memory (``MemoryHistory``), over the same random events, so a rule decides the same
live and in ``rules test``."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta

from core.clock import utcnow
from models.risk import RiskEvent
from services.db import atomic
from services.risk.history import DbHistory, MemoryHistory, column
from services.risk.replay import movement_of, seen_of


async def test_database_and_memory_history_agree_on_random_events(ctx):
    rng = random.Random(20261130)
    tag = secrets.token_hex(4)
    now = utcnow()
    pools = {"account": [str(10**12 + rng.randrange(10**6)) for _ in range(4)],
             "user": [str(10**12 + rng.randrange(10**6)) for _ in range(4)],
             "bank_card": [f"bc-{tag}-{i}" for i in range(3)], "plate": [f"pl-{tag}-{i}" for i in range(3)],
             "device": [f"dv-{tag}-{i}" for i in range(3)], "ip": [f"10.{i}.0.{rng.randrange(9)}-{tag}" for i in range(3)]}
    subjects = ["partner_debit", "top_up", "withdrawal"]
    rows = []
    for _ in range(300):
        keys = {k: rng.choice(v) for k, v in pools.items() if rng.random() < 0.8}
        located = rng.random() < 0.5
        rows.append(RiskEvent(
            subject=rng.choice(subjects), at=now - timedelta(seconds=rng.randrange(3 * 86400)),
            amount_fen=rng.randrange(1, 50_000), category=rng.choice(["toll", "fuel", None]),
            counted=rng.random() < 0.8, reference=f"history-{tag}", lat=rng.uniform(30, 40) if located else None,
            lng=rng.uniform(110, 120) if located else None,
            **{column(k): (int(v) if k in ("account", "user") else v) for k, v in keys.items()}))
    await RiskEvent.bulk_create(rows)
    mine = await RiskEvent.filter(reference=f"history-{tag}")
    assert len(mine) == 300

    memory = MemoryHistory()
    for row in sorted(mine, key=lambda r: (r.at, r.id)):
        memory.add(seen_of(movement_of(row), row.id), counted=row.counted)

    async def ask(history):
        q = random.Random(7)
        answers = []
        for _ in range(150):
            since = now - timedelta(seconds=q.randrange(3 * 86400))
            key = q.choice(["account", "bank_card", "plate", "device", "ip"])
            value = q.choice(pools[key])
            subs = q.sample(subjects, q.randrange(1, 4))
            answers.append(("velocity", await history.velocity(key, value, subs, since)))
            answers.append(("largest", await history.largest(q.choice(pools["account"]), subs,
                                                             q.choice(["toll", "fuel", None]), since)))
            located = await history.last_located(q.choice(["plate", "device"]), q.choice(pools["plate"] + pools["device"]),
                                                 since)
            answers.append(("located", located and (located[0], round(located[1], 9), round(located[2], 9))))
            answers.append(("first", await history.first_seen(key, value, q.choice(pools["user"] + [None]))))
            answers.append(("first of", await history.first_seen(key, value, q.choice(pools["user"] + [None]), subs)))
        return answers

    from_db = await atomic(lambda conn: ask(DbHistory(conn)))
    from_memory = await ask(memory)
    assert from_db == from_memory
    assert sum(1 for kind, a in from_db if kind == "velocity" and a[0] > 0) > 20  # the questions found something
    assert sum(1 for kind, a in from_db if kind == "located" and a) > 10
