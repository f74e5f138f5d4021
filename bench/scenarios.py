"""The benchmark scenarios. Each starts what it needs, measures, compares with its baseline in the same
run, and returns a ``Result`` with its target; nothing is asserted here: a scenario below target is
reported as such."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt

from bench.harness import (
    ROOT,
    Load,
    Proc,
    Result,
    children_cpu_seconds,
    cpu_seconds,
    free_port,
    interleave,
    load,
    pids_named,
    post,
    post_signed,
    post_targets,
)

JWT_KEY = b"bench-only-jwt-key-0123456789abcdef0123456789"


class Context:
    """What every scenario shares: the database, a scratch folder, the timing knobs."""

    def __init__(self, db_url: str, work: Path, seconds: float, rounds: int, connections: int) -> None:
        self.db_url = db_url
        self.work = work
        self.seconds = seconds
        self.rounds = rounds
        self.connections = connections
        self.started: list[Proc] = []

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()

    def app_env(self, var: Path, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("APP_", "WECHAT_", "JWT_", "PII_", "SELF_BASE", "DATABASE_URL", "PROMETHEUS"))}
        env.update(PYTHONPATH=str(ROOT), VAR_DIR=str(var), DATABASE_URL=self.db_url, SANDBOX_ROUTES="1",
                   # every limit counted, as in production, but set far above what one load generator sends
                   RATE_LIMITS=",".join(f"{name}=1000000000/60" for name in ("login", "phone", "identity", "upload",
                                                                             "partner")),
                   # no rule set put in force at first start: the money paths are measured bare, and `bench risk`
                   # loads the baseline (against an empty set) itself
                   RISK_BASELINE_FILE="")
        env.update(extra)
        return env

    def project(self, name: str, *, workers: int = 1, **env: str) -> Proc:
        var = self.work / name
        var.mkdir(parents=True, exist_ok=True)
        port = free_port()
        proc = Proc(name, [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(workers)],
                    env=self.app_env(var, **env), ready=f"http://127.0.0.1:{port}/health/ready", log_dir=self.work)
        proc.url = f"http://127.0.0.1:{port}"
        self.started.append(proc)
        proc.wait_ready()
        return proc

    def baseline(self, script: str, *args: str) -> Proc:
        port = free_port()
        ready_path = {"hello": "/hello", "jwt_select": "/me", "insert_tx": "/insert"}[script]
        proc = Proc(f"baseline-{script}", [sys.executable, str(ROOT / "bench" / "baselines" / f"{script}.py"),
                                           "--port", str(port), *args],
                    ready=f"http://127.0.0.1:{port}{ready_path}", log_dir=self.work)
        proc.url = f"http://127.0.0.1:{port}"
        self.started.append(proc)
        proc.wait_ready()
        return proc

    def load(self, url: str, headers: dict | None = None) -> Load:
        return load(url, seconds=self.seconds, connections=self.connections, headers=headers)


def _as_dict(load_: Load) -> dict:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in load_.__dict__.items()}


def _worker_rss(proc: Proc) -> dict:
    """RSS of each serving process: with several workers the main process only manages them, and
    multiprocessing's resource tracker serves nobody."""
    rss = proc.rss_mb()

    def helper(pid: int) -> bool:
        try:
            return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True

    pids = [pid for pid in rss if not helper(pid)]
    serving = pids[1:] if len(pids) > 1 else pids
    return {str(pid): round(rss[pid], 1) for pid in serving}


def _sql(db_url: str, statements: list[tuple[str, tuple]]) -> list[tuple]:
    """Run the statements in order (autocommit); the first row each one answered (None if none)."""
    from urllib.parse import urlsplit

    import pymysql

    parts = urlsplit(db_url)
    conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                           password=parts.password or "", database=parts.path.lstrip("/"), autocommit=True)
    rows = []
    try:
        with conn.cursor() as cur:
            for sql, args in statements:
                cur.execute(sql, args)
                rows.append(cur.fetchone())
    finally:
        conn.close()
    return rows


# -- seeding -----------------------------------------------------------------------------------------


def verified_user(base: str) -> str:
    """Log a user in through the emulator and pass every identity check; returns an access token."""
    from tests.identity_data import make_card_number, make_id_number

    http = httpx.Client(base_url=base, timeout=30, trust_env=False)
    control = lambda path, body: http.post(f"/sandbox/control/{path}", json=body)  # noqa: E731
    token = http.post("/api/v1/auth/login", json={"code": control("login-code", {}).json()["code"]}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    http.post("/api/v1/me/phone", headers=auth, json={"code": control("phone-code", {"phone": "13812345678"}).json()["code"]})
    id_number, card = make_id_number(), make_card_number()
    person = {"name": "王小明", "id_number": id_number, "valid_until": "20400101"}
    ids = {}
    for side, kind in (("front", "id_front"), ("back", "id_back")):
        image = control("id-card-images", {"side": side, **person}).content
        ids[kind] = http.post("/api/v1/uploads", headers=auth, files={"file": ("f.png", image, "image/png")},
                              data={"kind": kind}).json()["id"]
    assert http.post("/api/v1/identity/id-card", headers=auth, json={
        "front_upload_id": ids["id_front"], "back_upload_id": ids["id_back"],
        "name": person["name"], "id_number": id_number}).status_code == 200
    verify_id = http.post("/api/v1/identity/face", headers=auth).json()["verify_id"]
    control(f"face/{verify_id}", {"result": "pass"})
    http.post(f"/api/v1/identity/face/{verify_id}/result", headers=auth)
    control("bank-cards", {"card_number": card, "name": person["name"], "id_number": id_number,
                           "phone": "13812345678", "card_class": "I"})
    assert http.post("/api/v1/identity/bank-card", headers=auth,
                     json={"card_number": card, "reserved_phone": "13812345678"}).status_code == 200
    return token


# -- scenarios ---------------------------------------------------------------------------------------


def live(ctx: Context) -> Result:
    """The trivial route with everything every request pays (request id, access log, metrics)."""
    project, hello = ctx.project("live"), ctx.baseline("hello")
    try:
        a, b = interleave(lambda: ctx.load(f"{project.url}/health/live"), lambda: ctx.load(f"{hello.url}/hello"),
                          rounds=ctx.rounds)
        ratio = a.rps / b.rps
        return Result("live", "GET /health/live (access log on)", _as_dict(a), _as_dict(b), "Sanic hello route",
                      round(ratio, 2), round(a.p99_ms / b.p99_ms, 2), "≥ 0.8× hello", ratio >= 0.8,
                      _worker_rss(project))
    finally:
        project.stop()
        hello.stop()


def me(ctx: Context) -> Result:
    """The profile read: JWT check, the user and their identity, decrypted and masked."""
    project = ctx.project("me")
    token = verified_user(project.url)
    _sql(ctx.db_url, [
        ("CREATE TABLE IF NOT EXISTS bench_users (id BIGINT PRIMARY KEY AUTO_INCREMENT, openid VARCHAR(64), "
         "phone_enc VARCHAR(255), created_at DATETIME(6) NOT NULL)", ()),
        ("INSERT INTO bench_users (openid, phone_enc, created_at) VALUES (%s, %s, NOW(6))", ("obench", "v1.k.x")),
    ])
    base_token = jwt.encode({"sub": "1", "aud": "bench", "iss": "bench", "exp": int(time.time()) + 3600},
                            JWT_KEY, algorithm="HS256")
    baseline = ctx.baseline("jwt_select", "--db", ctx.db_url)
    try:
        a, b = interleave(lambda: ctx.load(f"{project.url}/api/v1/me", {"Authorization": f"Bearer {token}"}),
                          lambda: ctx.load(f"{baseline.url}/me", {"Authorization": f"Bearer {base_token}"}),
                          rounds=ctx.rounds)
        ratio, p99_ratio = a.rps / b.rps, a.p99_ms / b.p99_ms
        return Result("me", "GET /api/v1/me (verified user)", _as_dict(a), _as_dict(b),
                      "HS256 JWT + one PK SELECT, raw aiomysql", round(ratio, 2), round(p99_ratio, 2),
                      "≥ 0.8× baseline, p99 ≤ 1.5× baseline p99", ratio >= 0.8 and p99_ratio <= 1.5,
                      _worker_rss(project))
    finally:
        project.stop()
        baseline.stop()


def insert(ctx: Context) -> Result:
    """The write baseline on its own: one INSERT in a transaction (``topups`` measures against it)."""
    _sql(ctx.db_url, [("CREATE TABLE IF NOT EXISTS bench_events (id BIGINT PRIMARY KEY AUTO_INCREMENT, "
                       "token CHAR(32) NOT NULL, body TEXT)", ())])
    baseline = ctx.baseline("insert_tx", "--db", ctx.db_url)
    try:
        b = post(f"{baseline.url}/insert", ['{"n": 1}'], seconds=ctx.seconds, connections=ctx.connections)
        return Result("insert", "one INSERT in a transaction (the write paths' reference)",
                      _as_dict(b), target="reported")
    finally:
        baseline.stop()


def login(ctx: Context) -> Result:
    """WeChat login against the emulator in its own process: jscode2session over HTTP, the user upsert,
    a refresh token, an access JWT."""
    sandbox_port = free_port()
    var = ctx.work / "login-sandbox"
    var.mkdir(exist_ok=True)
    appid, secret = "wxbench000000001", "bench-only-sandbox-secret"
    sandbox = Proc("login-sandbox", [sys.executable, "-m", "sandbox", "--port", str(sandbox_port)],
                   env={**os.environ, "PYTHONPATH": str(ROOT), "SANDBOX_APPS": f"{appid}:{secret}",
                        "SANDBOX_STATE_PATH": str(var / "sandbox.sqlite3")},
                   ready=f"http://127.0.0.1:{sandbox_port}/sandbox/control/health", log_dir=ctx.work)
    ctx.started.append(sandbox)
    sandbox.wait_ready()
    emulator = f"http://127.0.0.1:{sandbox_port}/sandbox"
    project = ctx.project("login", SANDBOX_ROUTES="0", WECHAT_APPID=appid, WECHAT_SECRET=secret,
                          WECHAT_API_BASE=f"{emulator}/wechat")
    try:
        codes = asyncio.run(_mint_codes(f"{emulator}/control/login-code", int(1500 * ctx.seconds)))
        a = post(f"{project.url}/api/v1/auth/login", [f'{{"code": "{c}"}}' for c in codes],
                 seconds=ctx.seconds, connections=ctx.connections)
        return Result("login", "POST /api/v1/auth/login (emulator in its own process)", _as_dict(a),
                      target="reported: logins/s and p99", rss_mb=_worker_rss(project),
                      notes=[f"{len(codes)} codes minted beforehand; each used once"])
    finally:
        project.stop()
        sandbox.stop()


async def _mint_codes(url: str, n: int) -> list[str]:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        sem = asyncio.Semaphore(16)

        async def one() -> str:
            async with sem:
                return (await http.post(url, json={})).json()["code"]

        return await asyncio.gather(*(one() for _ in range(n)))


def workers(ctx: Context) -> Result:
    """The same read with two worker processes: does the second core add throughput?"""
    one = ctx.project("me-1worker")
    two = ctx.project("me-2workers", workers=2)
    try:
        t1, t2 = verified_user(one.url), verified_user(two.url)
        a, b = interleave(lambda: ctx.load(f"{two.url}/api/v1/me", {"Authorization": f"Bearer {t2}"}),
                          lambda: ctx.load(f"{one.url}/api/v1/me", {"Authorization": f"Bearer {t1}"}),
                          rounds=ctx.rounds)
        ratio = a.rps / b.rps
        # Where the CPU goes with two workers: the database and the load generator share these cores.
        servers, database = two.pids(), pids_named("mariadbd", "mysqld")
        app0, db0, gen0 = cpu_seconds(servers), cpu_seconds(database), children_cpu_seconds()
        probe = ctx.load(f"{two.url}/api/v1/me", {"Authorization": f"Bearer {t2}"})
        n = max(probe.requests, 1)
        app_us, db_us, gen_us = ((cpu_seconds(servers) - app0) / n * 1e6, (cpu_seconds(database) - db0) / n * 1e6,
                                 (children_cpu_seconds() - gen0) / n * 1e6)
        cores = os.cpu_count() or 1
        ceiling = cores * 1e6 / (app_us + db_us + gen_us)
        return Result("workers", "GET /api/v1/me, 2 workers", _as_dict(a), _as_dict(b), "the same, 1 worker",
                      round(ratio, 2), round(a.p99_ms / b.p99_ms, 2), "≥ 1.5× one worker", ratio >= 1.5,
                      {**_worker_rss(two), **_worker_rss(one)},
                      notes=[f"CPU per request with 2 workers: app {app_us:.0f} us, database {db_us:.0f} us, "
                             f"load generator {gen_us:.0f} us; {cores} cores busy give at most {ceiling:.0f}/s, "
                             f"{ceiling / b.rps:.2f}x one worker"])
    finally:
        one.stop()
        two.stop()


def _emulator(ctx: Context, name: str, **env: str) -> tuple[Proc, str]:
    """The sandbox emulators in their own process, as the real WeChat and card network would be."""
    port = free_port()
    var = ctx.work / f"{name}-sandbox"
    var.mkdir(exist_ok=True)
    proc = Proc(f"{name}-sandbox", [sys.executable, "-m", "sandbox", "--port", str(port)],
                env={**os.environ, "PYTHONPATH": str(ROOT), "SANDBOX_STATE_PATH": str(var / "sandbox.sqlite3"), **env},
                ready=f"http://127.0.0.1:{port}/sandbox/control/health", log_dir=ctx.work)
    ctx.started.append(proc)
    proc.wait_ready()
    return proc, f"http://127.0.0.1:{port}/sandbox"


def _ledger_check(env: dict) -> str:
    import subprocess

    out = subprocess.run([sys.executable, "-m", "app", "ledger", "check"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    return (out.stdout.strip().splitlines() or ["(no output)"])[-1] + ("" if out.returncode == 0 else " — FAILED")


TOP_UP_ACCOUNTS = 1000
CARDNET_KEY = "bench-only-cardnet-key"


def topups(ctx: Context) -> Result:
    """Top-ups across 1,000 accounts, each its own user: an idempotency record, the transfer row and
    the reserved room, a pull from the bound card over HTTP (the card-network emulator in its own
    process), then the credit and its ledger entry; against one INSERT in a transaction."""
    import subprocess

    emulator, base = _emulator(ctx, "topups", SANDBOX_CARDNET_KEYS=CARDNET_KEY)
    app_env = dict(SANDBOX_ROUTES="0", WORKER_IN_SERVER="0", CARDNET_API_BASE=f"{base}/cardnet",
                   CARDNET_API_KEY=CARDNET_KEY)
    project = ctx.project("topups", **app_env)
    seeded = ctx.work / "topup-accounts.tsv"
    subprocess.run([sys.executable, str(ROOT / "bench" / "seed_accounts.py"), str(TOP_UP_ACCOUNTS), str(seeded),
                    f"{base}/control"], cwd=ROOT, env=ctx.app_env(ctx.work / "topups", **app_env), check=True,
                   capture_output=True, timeout=600)
    targets = [(f"/api/v1/accounts/{line.split(chr(9))[0]}/top-ups", f"Bearer {line.split(chr(9))[1]}")
               for line in seeded.read_text().splitlines() if line]
    _sql(ctx.db_url, [("CREATE TABLE IF NOT EXISTS bench_events (id BIGINT PRIMARY KEY AUTO_INCREMENT, "
                       "token CHAR(32) NOT NULL, body TEXT)", ())])
    baseline = ctx.baseline("insert_tx", "--db", ctx.db_url)
    try:
        a, b = interleave(
            lambda: post_targets(project.url, targets, '{"amount_fen": 100}', seconds=ctx.seconds,
                                 connections=ctx.connections),
            lambda: post(f"{baseline.url}/insert", ['{"n": 1}'], seconds=ctx.seconds, connections=ctx.connections),
            rounds=ctx.rounds)
        ratio = a.rps / b.rps
        cpu = _cpu_per_request(lambda: post_targets(project.url, targets, '{"amount_fen": 100}', seconds=ctx.seconds,
                                                    connections=ctx.connections),
                               {"app": project.pids(), "card-network emulator": emulator.pids(),
                                "database": pids_named("mariadbd", "mysqld")})
        base_cpu = _cpu_per_request(
            lambda: post(f"{baseline.url}/insert", ['{"n": 1}'], seconds=ctx.seconds, connections=ctx.connections),
            {"baseline": baseline.pids(), "database": pids_named("mariadbd", "mysqld")})
        check = _ledger_check(ctx.app_env(ctx.work / "topups", **app_env))
        return Result("topups", f"POST /api/v1/accounts/{{id}}/top-ups across {len(targets)} accounts", _as_dict(a),
                      _as_dict(b), "one INSERT in a transaction, raw aiomysql", round(ratio, 2),
                      round(a.p99_ms / b.p99_ms, 2), "≥ 0.4× baseline", ratio >= 0.4 and a.errors == 0,
                      _worker_rss(project), notes=[f"ledger check afterwards: {check}",
                                                   "each request a new Idempotency-Key; ¥1.00 each",
                                                   f"CPU per top-up: {cpu}", f"CPU per baseline INSERT: {base_cpu}"])
    finally:
        project.stop()
        baseline.stop()
        emulator.stop()


def _cpu_per_request(run: Callable[[], Load], groups: dict[str, list[int]]) -> str:
    """One more load run, and the CPU each group of processes spent per request in it (plus the load
    generator's): where a request's cost goes on this machine's shared cores."""
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    gen0 = children_cpu_seconds()
    done = run()
    n = max(done.requests, 1)
    parts = {name: (cpu_seconds(pids) - before[name]) / n * 1e6 for name, pids in groups.items()}
    parts["load generator"] = (children_cpu_seconds() - gen0) / n * 1e6
    return ", ".join(f"{name} {us:.0f} us" for name, us in parts.items())


OUTFLOWS = 200


def outflows(ctx: Context) -> Result:
    """200 concurrent outflows on one account, through the ledger service on the benchmark database:
    every one answered, exactly those that fit under the daily limit booked, p99 reported."""
    import json
    import subprocess

    var = ctx.work / "outflows"
    var.mkdir(exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "bench.outflows", str(OUTFLOWS)], cwd=ROOT,
                         env=ctx.app_env(var), capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"bench.outflows failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    load_ = Load(r["rps"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["answered"], r["unexpected"])
    met = (r["answered"] == OUTFLOWS and r["unexpected"] == 0 and r["booked"] == r["fit"]
           and r["used_fen"] <= r["limit_fen"] and r["balance_ok"])
    return Result("outflows", f"{OUTFLOWS} concurrent outflows on one Class II account (ledger service)",
                  _as_dict(load_), target="all answered, exactly those that fit booked, limit never exceeded; p99 reported",
                  met=met, notes=[f"booked {r['booked']} of {OUTFLOWS} (¥{r['amount_fen'] / 100:.2f} each; "
                                  f"{r['fit']} fit under ¥{r['limit_fen'] / 100:,.0f}/day), refused {r['refused']} "
                                  f"LIMIT_EXCEEDED; used ¥{r['used_fen'] / 100:,.2f}; balance = sum of entries: "
                                  f"{r['balance_ok']}; lock-conflict reruns: {r['reruns']}"])


DEBIT_BINDINGS = 1000


def _seed_bindings(ctx: Context, name: str, n: int, balance_fen: int) -> tuple[dict, list[str]]:
    import subprocess

    out = ctx.work / f"{name}-bindings.tsv"
    subprocess.run([sys.executable, str(ROOT / "bench" / "seed_bindings.py"), str(n), str(out), str(balance_fen)],
                   cwd=ROOT, env=ctx.app_env(ctx.work / name), check=True, capture_output=True, timeout=900)
    first, *cards = [line for line in out.read_text().splitlines() if line]
    app_id, secret = first.split("\t")
    return {"app_id": app_id, "secret": secret}, cards


def _signed_debits(partner: dict, cards: list[str], count: int, amount_fen: int,
                   location: dict | None = None) -> list[tuple[str, dict, str]]:
    """``count`` debits over the cards in turn, each under a new out_trade_no, signed now (at
    ``location`` when given)."""
    import json
    import secrets
    from datetime import datetime, timedelta, timezone

    from tests.partner_helpers import partner_headers

    when = (datetime.now(timezone(timedelta(hours=8))) - timedelta(minutes=1)).isoformat(timespec="seconds")
    run = secrets.token_hex(4)
    out = []
    for i in range(count):
        fields = {"out_trade_no": f"B{run}{i:08d}", "card_number": cards[i % len(cards)], "category": "toll",
                  "amount_fen": amount_fen, "occurred_at": when, "merchant": "bench"}
        if location is not None:
            fields["location"] = location
        body = json.dumps(fields, separators=(",", ":"))
        out.append(("/open/v1/debits", partner_headers(partner["app_id"], partner["secret"], "POST", "/open/v1/debits",
                                                       body.encode()), body))
    return out


def debits(ctx: Context) -> Result:
    """Partner debits across 1,000 bindings: the signature checked, the nonce stored, the binding found
    by its card's blind index, the debit row and its ledger entry in one transaction under the Class II
    limits; against one INSERT in a transaction."""
    project = ctx.project("debits", WORKER_IN_SERVER="0")
    partner, cards = _seed_bindings(ctx, "debits", DEBIT_BINDINGS, 10**8)
    _sql(ctx.db_url, [("CREATE TABLE IF NOT EXISTS bench_events (id BIGINT PRIMARY KEY AUTO_INCREMENT, "
                       "token CHAR(32) NOT NULL, body TEXT)", ())])
    baseline = ctx.baseline("insert_tx", "--db", ctx.db_url)
    per_run = max(2000, int(ctx.seconds * 1500))  # more than a run can send: each is signed for one use
    try:
        ours = lambda: post_signed(project.url, _signed_debits(partner, cards, per_run, 100),  # noqa: E731
                                   seconds=ctx.seconds, connections=ctx.connections)
        a, b = interleave(ours, lambda: post(f"{baseline.url}/insert", ['{"n": 1}'], seconds=ctx.seconds,
                                             connections=ctx.connections), rounds=ctx.rounds)
        ratio = a.rps / b.rps
        cpu = _cpu_per_request(ours, {"app": project.pids(), "database": pids_named("mariadbd", "mysqld")})
        check = _ledger_check(ctx.app_env(ctx.work / "debits"))
        return Result("debits", f"POST /open/v1/debits across {len(cards)} bindings (signed, nonce stored)",
                      _as_dict(a), _as_dict(b), "one INSERT in a transaction, raw aiomysql", round(ratio, 2),
                      round(a.p99_ms / b.p99_ms, 2), "≥ 0.4× baseline", ratio >= 0.4 and a.errors == 0,
                      _worker_rss(project), notes=[f"ledger check afterwards: {check}", f"CPU per debit: {cpu}",
                                                   "¥1.00 tolls, each a new out_trade_no and nonce, signed beforehand"])
    finally:
        project.stop()
        baseline.stop()


DEBIT_BURST = 200


def debit_burst(ctx: Context) -> Result:
    """200 concurrent partner debits on one account, over HTTP: every one answered, exactly those that fit
    under the daily limit booked, the rest refused as arrears; p99 reported."""
    import json

    project = ctx.project("debit-burst", WORKER_IN_SERVER="0")
    limit = 1_000_000  # Class II: ¥10,000 a day
    partner, cards = _seed_bindings(ctx, "debit-burst", 1, 3 * limit)
    amount = 30_000
    try:
        requests = _signed_debits(partner, cards, DEBIT_BURST, amount)

        async def burst() -> tuple[list[int], list[float], float]:
            async with httpx.AsyncClient(base_url=project.url, timeout=60, trust_env=False,
                                         limits=httpx.Limits(max_connections=DEBIT_BURST)) as http:
                async def one(path, headers, body):
                    t0 = time.perf_counter()
                    resp = await http.post(path, content=body.encode(),
                                           headers={**headers, "Content-Type": "application/json"})
                    return resp.status_code, (time.perf_counter() - t0) * 1000, resp.json()

                started = time.perf_counter()
                got = await asyncio.gather(*(one(*r) for r in requests))
                return got, time.perf_counter() - started

        got, elapsed = asyncio.run(burst())
        statuses = [g[0] for g in got]
        refused = [g[2]["error"]["code"] for g in got if g[0] == 422]
        latencies = sorted(g[1] for g in got)
        fits = limit // amount
        check = _ledger_check(ctx.app_env(ctx.work / "debit-burst"))
        load_ = Load(len(got) / elapsed, latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)],
                     latencies[-1], len(got), sum(s not in (201, 422) for s in statuses))
        met = (len(got) == DEBIT_BURST and statuses.count(201) == fits and set(refused) == {"LIMIT_EXCEEDED"}
               and load_.errors == 0 and "FAILED" not in check)
        return Result("debit_burst", f"{DEBIT_BURST} concurrent partner debits on one Class II account (HTTP, signed)",
                      _as_dict(load_), target="all answered, exactly those that fit booked, limit never exceeded; "
                      "p99 reported", met=met, rss_mb=_worker_rss(project),
                      notes=[f"booked {statuses.count(201)} of {DEBIT_BURST} (¥{amount / 100:.2f} each; {fits} fit "
                             f"under ¥{limit / 100:,.0f}/day), refused {len(refused)} "
                             f"({', '.join(sorted(set(refused))) or 'none'}) and recorded as arrears",
                             f"ledger check afterwards: {check}", json.dumps({"statuses": sorted(set(statuses))})])
    finally:
        project.stop()


def risk(ctx: Context) -> Result:
    """Partner debits with risk control's baseline rule set in force (``risk/baseline.json``: lists,
    velocity with its limits lifted, impossible travel, amounts) against the same debits with an empty rule set in force (the
    decision still recorded): what evaluating the rules costs, in throughput under load and in p99 for
    one debit at a time."""
    import json
    import secrets
    import subprocess

    from services.risk.rules import CACHE_S

    project = ctx.project("risk", WORKER_IN_SERVER="0")
    partner, cards = _seed_bindings(ctx, "risk", DEBIT_BINDINGS, 10**8)
    env = ctx.app_env(ctx.work / "risk")
    # The baseline's rules with their velocity limits lifted: the same queries run, none fires. (At a few
    # hundred debits a second over 1,000 accounts, each account sees ~15 a minute: the baseline's burst
    # rule would hold most of them, and a refused debit skips the ledger: cheaper, not comparable.)
    baseline_rules = [{**r, **({"max_count": 10**6} if r.get("max_count") is not None else {}),
                       **({"max_amount_fen": 10**12} if r.get("max_amount_fen") is not None else {})}
                      if r["type"] == "velocity" else r
                      for r in json.loads((ROOT / "risk" / "baseline.json").read_text())["rules"]]
    here = {"lat": 39.9042, "lng": 116.4074}  # every debit at one gantry: the travel rule looks, never fires

    analyst = f"bench-risk-{secrets.token_hex(4)}"
    subprocess.run([sys.executable, "-m", "app", "staff", "create", analyst, "--role", "risk", "--operator", "bench"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)

    def switch(rules: list) -> None:
        newest = _sql(ctx.db_url, [("SELECT COALESCE(MAX(version), 0) FROM risk_rule_sets", ())])[0][0]
        path = ctx.work / "risk-rules.json"
        path.write_text(json.dumps({"version": int(newest) + 1, "rules": rules}))
        # break glass: the bench's own analyst, no second person (audited as staff.break_glass)
        subprocess.run([sys.executable, "-m", "app", "risk", "rules", "load", str(path), "--as", analyst,
                        "--reason", "bench setup", "--break-glass"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=120)
        time.sleep(CACHE_S + 0.5)  # every process reads the rule set in force within CACHE_S

    def run(rules: list, connections: int) -> Callable[[], Load]:
        def go() -> Load:
            switch(rules)
            per_run = max(2000, int(ctx.seconds * 1500))
            return post_signed(project.url, _signed_debits(partner, cards, per_run, 100, here),
                               seconds=ctx.seconds, connections=connections)
        return go

    try:
        on, off = interleave(run(baseline_rules, ctx.connections), run([], ctx.connections), rounds=ctx.rounds)
        ratio = on.rps / off.rps
        one_on, one_off = interleave(run(baseline_rules, 1), run([], 1), rounds=ctx.rounds)
        added = one_on.p99_ms - one_off.p99_ms
        [[decided]] = _sql(ctx.db_url, [(
            "SELECT GROUP_CONCAT(CONCAT(d, ' ', n) ORDER BY d SEPARATOR ', ') FROM (SELECT COALESCE(decision, 'none') "
            "AS d, COUNT(*) AS n FROM risk_events WHERE subject = 'partner_debit' GROUP BY 1) AS t", ())])
        check = _ledger_check(env)
        met = ratio >= 0.85 and added <= 2.0 and on.errors == 0 and off.errors == 0
        return Result("risk", f"POST /open/v1/debits across {len(cards)} bindings, baseline rules on vs an empty "
                      "rule set", _as_dict(on), _as_dict(off), "the same debits, no rule in force", round(ratio, 2),
                      round(on.p99_ms / off.p99_ms, 2), "≥ 0.85× throughput, ≤ 2 ms p99 added one at a time", met,
                      _worker_rss(project),
                      notes=[f"one debit at a time: p99 {one_on.p99_ms:.2f} ms with rules, {one_off.p99_ms:.2f} ms "
                             f"without: {added:+.2f} ms; p50 {one_on.p50_ms:.2f} vs {one_off.p50_ms:.2f} ms",
                             f"decisions recorded: {decided}",
                             f"ledger check afterwards: {check}"])
    finally:
        project.stop()


NOTIFY_PER_RUN = 1500  # notifications per second the runs are given (each sent twice): more than they can take


def _notifications(seed: dict, orders: list[list], bank_type: str = "OTHERS") -> list[tuple[str, dict, str]]:
    """One TRANSACTION.SUCCESS per order, signed and encrypted as WeChat Pay does (the emulator's own
    functions and key), each sent twice in a row: half of what arrives is a duplicate, and a duplicate
    often arrives while its first copy is still being applied."""
    import json
    import secrets
    from datetime import datetime, timedelta, timezone

    from cryptography.hazmat.primitives import serialization

    from sandbox import wechatpay as emulator

    platform = emulator.Platform(seed["key_id"], serialization.load_pem_private_key(
        seed["private_key_pem"].encode(), password=None), "")
    now = datetime.now(timezone(timedelta(hours=8))).isoformat(timespec="seconds")
    out = []
    for no, amount in orders:
        tx = {"mchid": seed["mchid"], "appid": seed["appid"], "out_trade_no": no,
              "transaction_id": "42" + secrets.token_hex(14)[:26], "trade_type": "JSAPI", "trade_state": "SUCCESS",
              "trade_state_desc": "支付成功", "bank_type": bank_type, "attach": "", "success_time": now,
              "payer": {"openid": "obench"}, "amount": {"total": amount, "payer_total": amount, "currency": "CNY",
                                                         "payer_currency": "CNY"}}
        body = json.dumps({
            "id": secrets.token_hex(18), "create_time": now, "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
            "resource": {"original_type": "transaction", **emulator.encrypt_resource(
                seed["apiv3_key"], json.dumps(tx, ensure_ascii=False), "transaction")},
        }, ensure_ascii=False, separators=(",", ":"))
        headers = {k: v for k, v in platform.headers(body.encode()).items() if k != "Request-ID"}
        out += [("/callbacks/wechatpay", headers, body)] * 2
    return out


def notifications(ctx: Context) -> Result:
    """WeChat Pay payment notifications, half of them duplicates: each verified (RSA over the raw body,
    the platform key, the timestamp), decrypted (AES-256-GCM), stored in the inbox unique on its id and
    applied once in the same transaction (the order locked, merchant, app and amount checked, moved to
    paid with its audit event); a duplicate answered without a second credit. Against one INSERT in a
    transaction."""
    import json
    import subprocess

    project = ctx.project("notifications", WORKER_IN_SERVER="0")
    per_run = max(2000, int(ctx.seconds * NOTIFY_PER_RUN))
    seed_file = ctx.work / "notifications-seed.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "seed_payments.py"), str((ctx.rounds + 1) * per_run // 2),
                    str(seed_file)], cwd=ROOT, env=ctx.app_env(ctx.work / "notifications", SELF_BASE_URL=project.url),
                   check=True, capture_output=True, timeout=900)
    seed = json.loads(seed_file.read_text())
    batches = iter(range(0, len(seed["orders"]), per_run // 2))
    _sql(ctx.db_url, [("CREATE TABLE IF NOT EXISTS bench_events (id BIGINT PRIMARY KEY AUTO_INCREMENT, "
                       "token CHAR(32) NOT NULL, body TEXT)", ())])
    baseline = ctx.baseline("insert_tx", "--db", ctx.db_url)
    try:
        def ours() -> Load:
            start = next(batches)
            return post_signed(project.url, _notifications(seed, seed["orders"][start:start + per_run // 2]),
                               seconds=ctx.seconds, connections=ctx.connections)

        a, b = interleave(ours, lambda: post(f"{baseline.url}/insert", ['{"n": 1}'], seconds=ctx.seconds,
                                             connections=ctx.connections), rounds=ctx.rounds)
        ratio = a.rps / b.rps
        cpu = _cpu_per_request(ours, {"app": project.pids(), "database": pids_named("mariadbd", "mysqld")})
        once = _credited_once(ctx.db_url, seed["run"])
        return Result("notifications", "POST /callbacks/wechatpay, half of them duplicates (signed, encrypted)",
                      _as_dict(a), _as_dict(b), "one INSERT in a transaction, raw aiomysql", round(ratio, 2),
                      round(a.p99_ms / b.p99_ms, 2), "≥ 0.5× baseline, exactly one credit each",
                      ratio >= 0.5 and a.errors == 0 and once["ok"], _worker_rss(project),
                      notes=[once["text"], f"CPU per notification (half of them duplicates): {cpu}",
                             "each notification sent twice in a row over 64 connections, so a "
                             "duplicate often races its first copy; device-fee orders (¥99.00)"])
    finally:
        project.stop()
        baseline.stop()


def _credited_once(db_url: str, run: str) -> dict:
    """Every order a notification reached is paid once: one inbox row, one paid transition, nothing else."""
    like = f"BN{run}%"
    counts = lambda: _sql(db_url, [  # noqa: E731
        ("SELECT COUNT(*) FROM payment_orders WHERE out_trade_no LIKE %s AND status = 'paid'", (like,)),
        ("SELECT COUNT(*), COUNT(DISTINCT out_trade_no), SUM(outcome = 'applied: paid') "
         "FROM pay_notifications WHERE out_trade_no LIKE %s", (like,)),
        ("SELECT COUNT(*), COUNT(DISTINCT a.entity_id) FROM audit_events a JOIN payment_orders o "
         "ON a.entity_id = CAST(o.id AS CHAR) WHERE a.action = 'payment_order.paid' AND o.out_trade_no LIKE %s",
         (like,)),
    ])
    seen, before = counts(), None
    for _ in range(30):  # requests still in flight when the load stopped finish first
        if seen == before:
            break
        time.sleep(0.5)
        seen, before = counts(), seen
    (paid,), (inbox, distinct, applied), (moves, moved) = seen
    ok = paid > 0 and paid == inbox == distinct == int(applied or 0) == moves == moved
    return {"ok": ok, "text": f"orders paid {paid}; inbox rows {inbox} ({distinct} orders, {applied} applied); "
                              f"paid transitions {moves} — {'exactly one credit each' if ok else 'NOT once each'}"}


SCENARIOS: dict[str, Callable[[Context], Result]] = {
    "live": live,
    "me": me,
    "login": login,
    "insert": insert,
    "workers": workers,
    "topups": topups,
    "outflows": outflows,
    "debits": debits,
    "debit_burst": debit_burst,
    "notifications": notifications,
    "risk": risk,
}


def esign(ctx: Context) -> Result:
    """Contracts signed per second by the service's worker processes (``ESIGN_PROCESSES``, one per
    core) against bare pyHanko signing the same PDF in one process."""
    import datetime as dt

    from bench.esign_baseline import bare_signings_per_second
    from services.esign.pool import ContractWorkers, IdentitySource
    from services.esign.render import render_contract
    from tests.contract_helpers import signature_png

    var = ctx.work / "esign"
    var.mkdir(exist_ok=True)
    source = IdentitySource(sandbox=True, var_dir=str(var))
    identity = source.load()
    context = {"signer_name": "张三丰", "signer_id_number": "11010519491231002X", "date": "2026-11-20"}
    pdf = render_contract("privacy_consent", context, contract_ref="HTBENCH0001").pdf
    png = signature_png()
    processes = os.cpu_count() or 1
    workers = ContractWorkers(processes=processes, identity=identity, source=source, font_path=None)

    async def ours() -> Load:
        await workers.warm_up()
        done, latencies = 0, []
        deadline = time.perf_counter() + ctx.seconds

        async def one_at_a_time() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await workers.sign(pdf, signature_png=png, signer_lines=["签署人：张*丰"],
                                   signed_at=dt.datetime.now(dt.timezone.utc))
                latencies.append((time.perf_counter() - t0) * 1000)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_at_a_time() for _ in range(2 * processes)))
        latencies.sort()
        return Load(done / (time.perf_counter() - started), latencies[len(latencies) // 2],
                    latencies[int(len(latencies) * 0.99)], latencies[-1], done, 0)

    try:
        a, b = interleave(lambda: asyncio.run(ours()),
                          lambda: bare_signings_per_second(pdf, identity, seconds=ctx.seconds), rounds=ctx.rounds)
    finally:
        workers.close()
    ratio = a.rps / b.rps
    return Result("esign", f"contracts signed/s, {processes} worker processes", _as_dict(a), _as_dict(b),
                  "bare pyHanko sign_pdf, one process", round(ratio, 2), None, "≥ 1.5× bare pyHanko", ratio >= 1.5,
                  notes=["signing includes the signer's handwritten image and the bank's seal appearance"])


SCENARIOS["esign"] = esign


def causal_reads(ctx: Context) -> Result:
    """The balance read on a 3-node Galera cluster of its own, with ``wsrep_sync_wait`` (causal reads, on by
    itself on Galera) against without, while node 2 takes writes; and how many reads right after an
    acknowledged write through another node missed it, each way (``bench/causal_reads.py``)."""
    import json
    import subprocess

    var = ctx.work / "causal_reads"
    var.mkdir(exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "bench.causal_reads", str(ctx.seconds), str(ctx.rounds)], cwd=ROOT,
                         env=ctx.app_env(var), capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"bench.causal_reads failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if "skipped" in r:
        return Result("causal_reads", "balance reads on Galera", {}, target="runs where Galera is installed",
                      met=None, notes=[f"skipped: {r['skipped']}"])
    on, off = r["on"], r["off"]
    as_load = lambda d: {**d, "answered": 0, "errors": 0}  # noqa: E731
    ratio = on["rps"] / off["rps"]
    return Result("causal_reads", f"balance reads on node 1, 16 at once, wsrep_sync_wait=1, node 2 writing "
                  f"{r['writes_per_s']}/s", as_load(on), as_load(off), "the same reads with wsrep_sync_wait=0",
                  round(ratio, 2), round(on["p99_ms"] / off["p99_ms"], 2),
                  "detected on Galera; no stale read with it on; cost reported", r["detected"] and r["stale"]["on"] == 0,
                  notes=[f"reads right after a write acknowledged on node 2 that missed it: {r['stale']['off']} of "
                         f"{r['probes']} without, {r['stale']['on']} with"])


SCENARIOS["causal_reads"] = causal_reads


def _staff_session(ctx: Context, project: Proc, var: Path) -> str:
    """A staff member made with ``python -m app staff create`` and logged in through the console's form;
    returns the session cookie's value."""
    import json
    import re
    import subprocess

    import pyotp

    made = subprocess.run([sys.executable, "-m", "app", "staff", "create", f"bench{os.getpid()}", "--role", "viewer",
                           "--operator", "bench"], cwd=ROOT, env=ctx.app_env(var, ADMIN_ENABLED="true"),
                          capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        raise RuntimeError(f"staff create failed:\n{made.stdout[-2000:]}{made.stderr[-2000:]}")
    creds = json.loads(made.stdout.strip().splitlines()[-1])
    http = httpx.Client(base_url=project.url, timeout=30, trust_env=False, follow_redirects=False)
    form = http.get("/admin/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    done = http.post("/admin/login", data={"csrf_token": csrf, "username": creds["username"],
                                           "password": creds["password"], "totp": pyotp.TOTP(creds["totp_secret"]).now()})
    if done.status_code != 303 or "admin_session" not in http.cookies:
        raise RuntimeError(f"staff login failed: {done.status_code} {done.text[:300]}")
    return http.cookies["admin_session"]


def customers(ctx: Context) -> Result:
    """One customer's console page (``GET /admin/customers/<id>``: the session, the page-view audit event in
    the hash chain, the identity, checks, contracts, accounts, decrypted and masked) beside the customer's own
    profile read (``GET /api/v1/me``), on the same server: a report of the ratio, not a timed test."""
    var = ctx.work / "customers"
    project = ctx.project("customers", ADMIN_ENABLED="true")
    try:
        token = verified_user(project.url)
        auth = {"Authorization": f"Bearer {token}"}
        user_id = httpx.get(f"{project.url}/api/v1/me", headers=auth, trust_env=False).json()["id"]
        cookie = {"Cookie": f"admin_session={_staff_session(ctx, project, var)}"}
        probe = httpx.get(f"{project.url}/admin/customers/{user_id}", headers=cookie, trust_env=False)
        if probe.status_code != 200 or f'id="customer-id">{user_id}<' not in probe.text:
            raise RuntimeError(f"the customer page did not answer: {probe.status_code} {probe.text[:300]}")
        a, b = interleave(lambda: ctx.load(f"{project.url}/admin/customers/{user_id}", cookie),
                          lambda: ctx.load(f"{project.url}/api/v1/me", auth), rounds=ctx.rounds)
        ratio = a.rps / b.rps
        return Result("customers", "GET /admin/customers/<id> (staff session, audited page view)", _as_dict(a),
                      _as_dict(b), "GET /api/v1/me on the same server", round(ratio, 2), round(a.p99_ms / b.p99_ms, 2),
                      "≥ 0.1× /me (about 14 reads and an audited write against one read)", ratio >= 0.1,
                      _worker_rss(project),
                      notes=[f"customer page {a.p50_ms:.1f} ms p50 against /me {b.p50_ms:.1f} ms "
                             f"({a.p50_ms / b.p50_ms if b.p50_ms else 0:.1f}× its time)"])
    finally:
        project.stop()


SCENARIOS["customers"] = customers
