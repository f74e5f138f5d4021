"""A fresh install (``make run``: ``python -m app serve`` on the embedded default, nothing configured)
has the baseline risk rule set in force from its first start, loaded through the audited path: a cloned
plate is refused with no command typed. Production refuses to start with no rule set in force."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env
from tests.helpers import Sandbox, assert_error
from tests.partner_helpers import PartnerCreds, bound_car, call, debit_body

pytestmark = pytest.mark.slow

BEIJING, GUANGZHOU = (39.9042, 116.4074), (23.1291, 113.2644)  # about 1,890 km apart


def fresh_env(var_dir) -> dict:
    """What `make run` has on a new machine: the embedded SQLite under var/, no rule set configured."""
    env = server_env(var_dir)
    env.pop("DATABASE_URL")
    env.pop("RISK_BASELINE_FILE")
    return env


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


async def test_a_fresh_install_refuses_a_cloned_plate_with_no_command_typed(tmp_path):
    env = fresh_env(tmp_path)
    server = ServerProcess(free_port(), env, tmp_path / "server.log")
    try:
        server.wait_ready()
        assert "rule set version 1 from" in (tmp_path / "server.log").read_text()
        made = cli(env, "partner", "create", "--name", "高速公路", "--scopes", "etc:debit")
        assert made.returncode == 0, made.stderr
        made = json.loads(made.stdout)
        partner = PartnerCreds(made["app_id"], made["secret"], made["scopes"])
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as client:
            car = await bound_car(client, Sandbox(client), balance_fen=100_000)
            here = {**debit_body(car, 2_000), "location": {"lat": BEIJING[0], "lng": BEIJING[1]}}
            assert (await call(client, partner, "POST", "/open/v1/debits", here)).status_code == 201
            there = {**debit_body(car, 2_000), "location": {"lat": GUANGZHOU[0], "lng": GUANGZHOU[1]}}
            assert_error(await call(client, partner, "POST", "/open/v1/debits", there), 403, "RISK_BLOCKED")
            account = (await client.get(f"/api/v1/accounts/{car.account['id']}", headers=car.user.headers)).json()
            assert account["balance_fen"] == 100_000 - 2_000  # only the first debit moved money
        verified = cli(env, "audit", "verify")  # the load is in the audit hash chain
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        server.stop()
    # a second start loads nothing again: the rule set in force is the operator's from now on
    again = ServerProcess(free_port(), env, tmp_path / "again.log")
    try:
        again.wait_ready()
        assert "rule set version" not in (tmp_path / "again.log").read_text()
    finally:
        again.stop()


GATE = """
import asyncio, sys
from app.config import load_settings
from app.db import close_db, first_start, init_db
from core.errors import ConfigError
from services.risk import rules

settings = load_settings({"VAR_DIR": sys.argv[1]}, dotenv=False).replace(app_env="production", risk_baseline_file="")

async def run():
    await init_db("sqlite://" + sys.argv[1] + "/prod.sqlite3", auto_migrate=True)
    try:
        try:
            await first_start(settings)
            print("started with no rule set")
        except ConfigError as exc:
            print("refused:", exc)
        await rules.load(rules.parse('{"version": 1, "rules": []}'), actor="ops:test")  # explicitly none
        await first_start(settings)
        print("started with an empty rule set")
    finally:
        await close_db()

asyncio.run(run())
"""


def test_production_refuses_to_start_with_no_rule_set_unless_an_empty_one_was_loaded(tmp_path):
    """The rule-set gate on its own (the rest of a production configuration would be refused first), in a
    process of its own, with production settings, no baseline configured and a new database."""
    done = subprocess.run([sys.executable, "-c", GATE, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("refused: refusing to start in production: no risk rule set in force"), lines
    assert lines[1:] == ["started with an empty rule set"]
