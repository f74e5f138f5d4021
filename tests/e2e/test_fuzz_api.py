"""Schemathesis over the served OpenAPI document, against a live server, with every check on.

Given a user who has walked every flow so far (login, phone, ID card, face, bank card, a signed
privacy consent, an open and funded Class II account, a Class III application, a car whose ETC card is
bound to it and debited once by a partner, a WeChat Pay order for its device fee, a fresh draft, unused
uploads and face checks), and who then opened two more funded Class II accounts with a bound car and a
booked debit each and two accounts without money with three bound cars each, and two other persons with
five funded accounts and a bound car each, with the baseline risk rule set (``risk/baseline.json``) put in
force by ``python -m app risk rules load``, schemathesis runs twice, authenticated as that user, half of the
ids it sends being that user's real ones (``tests/fuzz/hooks.py``): first the three money operations alone
(partner debits, partner refunds, payment orders; positive cases, fuzzing) for a quarter of the budget,
then all its phases (examples, coverage, fuzzing, stateful) over every operation for the rest. Every
``/open/v1`` request is signed as that partner (unless the case is about malformed signing headers), so the
fuzzer reaches the handlers; most positive partner debits, refunds and payment orders carry real cards,
debits and bindings with fresh numbers, the debits spread over the accounts under the burst rule, so they
reach the money paths. Then: zero server errors, zero schema violations, zero failures of any check in
either pass, every operation exercised, debits booked, refunded and ordered beyond the walk's own (counted
from the partner's statement and the user's orders: ``MIN_BOOKED``), and ``python -m app ledger check``
passing.

Bounded by ``FUZZ_SECONDS`` (default 75 s); ``FUZZ_SEED`` picks the seed (fixed by default, so CI is
repeatable; set another to explore).
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env
from tests.partner_helpers import partner_headers
from tests.walker import Walker, signed_call

pytestmark = pytest.mark.slow

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "75"))
FUZZ_SEED = os.environ.get("FUZZ_SEED", "20261129")
BASELINE_RULES = ROOT / "risk" / "baseline.json"
RULES_CACHE_S = 5  # services.risk.rules.CACHE_S: how long a server may still decide with the rules it had
# A pass of the money operations alone, for a quarter of the budget.
MONEY_SECONDS = max(1, round(FUZZ_SECONDS / 4))
MONEY_OPERATIONS = ("POST /open/v1/debits", "POST /open/v1/debits/{out_trade_no}/refund",
                    "POST /api/v1/payments/orders")
# The walked user's five Class II accounts: the walk's, two more funded, two without money with three cars
# each (each car owes a device fee, and arrears as its debits fail). And other persons with five funded accounts
# and a bound car each, for the partner to debit: debit-burst holds the sixth debit of an account in a minute,
# so with the walked user's three, 5 x 13 debits a minute fit.
FUNDED, POOR_ACCOUNTS, POOR_CARS = 2, 2, 3
OTHER_PERSONS, THEIR_ACCOUNTS = 2, 5
# Rows the fuzzer booked beyond the walk's, measured over three runs of the default length with the fixed seed
# on a shared two-core machine, SQLite: debits 49, 63, 57; refunds 99, 174, 143; orders 16, 14, 15 (eight
# device fees, then arrears). The debits are bounded by debit-burst (5 a minute on each of 13 funded
# accounts), not by the fuzzer's pace; the floors sit well below the lowest measured.
MIN_BOOKED = {"booked": 20, "refunds": 20, "orders": 10}


def baseline_as_next_version(env: dict, tmp_path, *, rules: list | None = None) -> str:
    """The baseline's rules (or ``rules``) under a version above every one loaded so far: on MySQL the
    suite's database has had many rule sets in force before this test (a load must be newer than all of
    them), and the tests after it run on it too."""
    url = env["DATABASE_URL"]
    if url.startswith("sqlite://"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite://"):].split("?")[0]) as db:
            newest = db.execute("SELECT MAX(version) FROM risk_rule_sets").fetchone()[0]
    else:
        import pymysql

        from tests.testdb import _parts

        conn_args, name = _parts(url)
        with pymysql.connect(**conn_args, database=name) as db, db.cursor() as cur:
            cur.execute("SELECT MAX(version) FROM risk_rule_sets")
            newest = cur.fetchone()[0]
    rule_set = json.loads(BASELINE_RULES.read_text())
    rule_set["version"] = max(rule_set["version"], (newest or 0) + 1)
    if rules is not None:
        rule_set["rules"] = rules
    path = tmp_path / f"rules-{rule_set['version']}.json"
    path.write_text(json.dumps(rule_set, ensure_ascii=False))
    return str(path)


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def load_rules(env: dict, path: str, staff: str) -> subprocess.CompletedProcess:
    """The rule set in force now, as the fuzz run's own risk analyst, with break glass (no second person
    to approve it here: the console's maker-checker has its own tests), audited as such."""
    return cli(env, "risk", "rules", "load", path, "--as", staff, "--reason", "fuzz run setup", "--break-glass")


def money_counts(walker: Walker, started: datetime, walked: set[str]) -> dict:
    """What the fuzzer booked, as the bank tells the partner (its statements of each day of the run, China
    Standard Time) and the user (the orders list): rows, not answers, so a replayed answer counts once."""
    partner = walker.partner
    rows = []
    day, last = started.astimezone(timezone(timedelta(hours=8))).date(), datetime.now(timezone(timedelta(hours=8))).date()
    while day <= last:
        path = f"/open/v1/statements?date={day.isoformat()}"
        resp = walker.http.get(path, headers=partner_headers(partner["app_id"], partner["secret"], "GET", path))
        assert resp.status_code == 200, resp.text
        rows += list(csv.DictReader(io.StringIO(resp.text)))
        day += timedelta(days=1)
    debits = [r for r in rows if r["type"] == "debit" and r["out_trade_no"] not in walked]
    orders, cursor = [], None
    while True:
        page = walker.ok(walker.http.get("/api/v1/payments/orders", headers=walker.headers,
                                         params={"limit": 100, **({"cursor": cursor} if cursor else {})}))
        orders += page["orders"]
        if not (cursor := page["next_cursor"]):
            break
    return {"booked": sum(r["status"] == "succeeded" for r in debits),
            "arrears": sum(r["status"] == "arrears" for r in debits),
            "risk_refused": sum(r["status"] == "refused" for r in debits),
            "refunds": sum(r["type"] == "refund" for r in rows),
            "orders": len(orders) - 1}  # the walk's own order for the device fee


def test_fuzz_every_operation_with_every_check(tmp_path):
    # A high daily attempt limit, so the fuzzer reaches the checks behind it (the limit has its own tests).
    env = server_env(tmp_path, SANDBOX_ROUTES="1", DAILY_ATTEMPT_LIMIT="100000")
    server = ServerProcess(free_port(), env, tmp_path / "server.log")
    try:
        server.wait_ready()
        began = time.monotonic()
        walker = Walker(server.url, env)
        fixtures = walker.walk(tmp_path)
        # the baseline rules in force from here on: the rest of the walk is ordinary traffic they let through
        analyst = f"fuzz-risk-{secrets.token_hex(4)}"
        made = cli(env, "staff", "create", analyst, "--role", "risk", "--operator", "fuzz")
        assert made.returncode == 0, made.stderr
        loaded = load_rules(env, str(baseline_as_next_version(env, tmp_path)), analyst)
        assert loaded.returncode == 0, loaded.stderr
        in_force_by = time.monotonic() + RULES_CACHE_S
        money = walker.open_funded_bindings(funded=FUNDED, poor_accounts=POOR_ACCOUNTS, poor_cars=POOR_CARS)
        for n in range(OTHER_PERSONS):
            other = Walker(server.url, env, partner=walker.partner, person={"phone": f"1360000{n:04d}"})
            money["cars"] += other.funded_cars(accounts=THEIR_ACCOUNTS)
        fixtures["money"], fixtures["path"]["out_trade_no"] = money, money["debits"]
        (tmp_path / "fixtures.json").write_text(json.dumps(fixtures))
        time.sleep(max(0.0, in_force_by - time.monotonic()))
        print(f"fuzz walk: {time.monotonic() - began:.0f} s")
        started = datetime.now(timezone.utc)
        spec = httpx.get(f"{server.url}/docs/openapi.json", trust_env=False).json()
        operations = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
        fuzz_env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "FUZZ_FIXTURES": str(tmp_path / "fixtures.json"),
               "PYTHONPATH": str(ROOT)}

        def schemathesis(name: str, seconds: int, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
            report, began = tmp_path / f"{name}.json", time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "--config-file",
                 str(ROOT / "tests" / "fuzz" / "schemathesis.toml"), "--no-color", "run",
                 f"{server.url}/docs/openapi.json", "--checks", "all", "--max-time", str(seconds),
                 "--seed", FUZZ_SEED, "--workers", "1",
                 "--header", walker.headers["Authorization"].join(["Authorization: ", ""]),
                 "--report", "json", "--report-json-path", str(report), *args],
                cwd=tmp_path, env=fuzz_env, capture_output=True, text=True, timeout=seconds + 600,
            )
            (tmp_path / f"{name}.out").write_text(result.stdout + result.stderr)  # failing cases replay from here
            print(f"fuzz pass {name}: {seconds} s budget, {time.monotonic() - began:.0f} s")
            return result, (json.loads(report.read_text()) if report.exists() else {})

        # First the money operations alone, their positive cases, for a share of the budget (an even split
        # over every operation leaves each about a second: too little to book); first, because the fuzzer
        # goes on to unbind the user's cars. Then every operation, every phase, for the rest.
        passes = {"money": schemathesis("money", MONEY_SECONDS, "--phases", "fuzzing", "--mode", "positive",
                                        *[arg for op in MONEY_OPERATIONS for arg in ("--include-name", op)])}
        passes["every-operation"] = schemathesis("every-operation", max(1, FUZZ_SECONDS - MONEY_SECONDS))
        counts = money_counts(walker, started, set(money["debits"]))
    finally:
        # the tests after this one share the database on MySQL: they start, as every test does, with an
        # empty rule set in force
        load_rules(env, baseline_as_next_version(env, tmp_path, rules=[]), analyst)
        server.stop()
    server_log = server.log.read_text(errors="replace")
    server_errors = "\n[server errors]\n" + "\n".join(
        l[:2000] for l in server_log.splitlines() if '"level": "ERROR"' in l)[-6000:]
    assert '"level": "ERROR"' not in server_log, server_errors
    for name, (result, summary) in passes.items():
        detail = f"[{name}]\n" + (result.stdout + result.stderr)[-12000:] + server_errors
        assert result.returncode == 0, detail
        ops = summary["operations"]
        # every selected operation was tested (in the first pass, every documented one); none skipped as
        # unfuzzable, none errored
        selected = len(operations) if name == "every-operation" else len(MONEY_OPERATIONS)
        assert ops["selected"] == ops["tested"] == selected, (name, ops, detail)
        assert ops["skipped"] == 0 and ops["errored"] == 0, (name, ops, detail)
        assert summary["failures"] == [] and summary["errors"] == [], detail
    summary = passes["every-operation"][1]
    assert summary["test_cases"]["generated"] > 1000, summary["test_cases"]
    # the walked user stayed logged in throughout (a user operation answered only 401 was not really fuzzed;
    # the fuzzer's logout and refresh use a login of their own)
    logged_out = [op for _, report in passes.values()
                  for op in (report.get("warnings") or {}).get("missing_auth") or [] if " /api/v1/" in op]
    assert not logged_out, logged_out
    # the money paths were walked to the end, many times, with the baseline rules deciding
    print(f"fuzz money paths: {counts}")
    assert all(counts[k] >= n for k, n in MIN_BOOKED.items()), (counts, MIN_BOOKED)
    # and every balance is still the sum of its entries
    checked = cli(env, "ledger", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
