"""``python -m bench`` runs end to end (a quick pass: the harness, not the speed; nothing is timed here).

The targets themselves are reported by the benchmark, never asserted in tests: this machine's speed
varies by ±25% between runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import MYSQL_URL
from tests.e2e.servers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not MYSQL_URL, reason="the benchmarks run on MySQL")]


def test_bench_quick_run_prints_every_scenario_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "BENCH_DATABASE_URL": MYSQL_URL.rsplit("/", 1)[0] + "/openbank_bench_smoke"}
    scenarios = ["live", "me", "esign", "topups", "outflows", "debits", "debit_burst", "notifications", "risk",
                 "customers"]
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", *scenarios, "--json", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [r["scenario"] for r in data["results"]] == scenarios
    by_name = {r["scenario"]: r for r in data["results"]}
    for r in data["results"]:
        assert r["project"]["requests"] > 0 and r["project"]["errors"] == 0, r
        if r["scenario"] not in ("outflows", "debit_burst"):
            # the ratio is rounded to two places: on a loaded machine a slow path's rounds to 0.0
            assert r["baseline"]["requests"] > 0 and r["project"]["rps"] > 0 and r["ratio"] >= 0, r
    # correctness, not speed: every top-up booked with its entry, and the concurrent outflows kept the limit
    assert any("ledger OK" in n for n in by_name["topups"]["notes"]), by_name["topups"]
    assert by_name["outflows"]["met"] is True and by_name["outflows"]["project"]["requests"] == 200, by_name["outflows"]
    assert any("ledger OK" in n for n in by_name["debits"]["notes"]), by_name["debits"]
    assert by_name["debit_burst"]["met"] is True and by_name["debit_burst"]["project"]["requests"] == 200, by_name[
        "debit_burst"]
    assert any("exactly one credit each" in n for n in by_name["notifications"]["notes"]), by_name["notifications"]
    # the rules were really in force during the "on" runs, and ordinary debits passed them
    assert any(n.startswith("decisions recorded: allow") and "review" not in n and "block" not in n
               for n in by_name["risk"]["notes"]), by_name["risk"]
    assert "target" in result.stdout and "ratio" in result.stdout
