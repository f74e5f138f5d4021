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
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "live", "me", "esign", "--json", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [r["scenario"] for r in data["results"]] == ["live", "me", "esign"]
    for r in data["results"]:
        assert r["project"]["requests"] > 0 and r["project"]["errors"] == 0, r
        assert r["baseline"]["requests"] > 0 and r["ratio"] > 0, r
    assert "target" in result.stdout and "ratio" in result.stdout
