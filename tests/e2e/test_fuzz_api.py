"""Schemathesis over the served OpenAPI document, against a live server, with every check on.

Given a user who has walked every flow so far (login, phone, ID card, face, bank card, a signed
privacy consent, an open and funded Class II account, a Class III application, a car whose ETC card is
bound to it and debited once by a partner, a WeChat Pay order for its device fee, a fresh draft, unused
uploads and face checks), schemathesis runs all its phases
(examples, coverage, fuzzing, stateful) over every operation, authenticated as that user, half of the
ids it sends being that user's real ones (``tests/fuzz/hooks.py``); every ``/open/v1`` request is signed
as that partner (unless the case is about malformed signing headers), so the fuzzer reaches the handlers. Then: zero server errors, zero
schema violations, zero failures of any check, and every operation exercised.

Bounded by ``FUZZ_SECONDS`` (default 75 s); ``FUZZ_SEED`` picks the seed (fixed by default, so CI is
repeatable; set another to explore).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env
from tests.walker import Walker

pytestmark = pytest.mark.slow

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "75"))
FUZZ_SEED = os.environ.get("FUZZ_SEED", "20261129")


def test_fuzz_every_operation_with_every_check(tmp_path):
    # A high daily attempt limit, so the fuzzer reaches the checks behind it (the limit has its own tests).
    env = server_env(tmp_path, SANDBOX_ROUTES="1", DAILY_ATTEMPT_LIMIT="100000")
    server = ServerProcess(free_port(), env, tmp_path / "server.log")
    try:
        server.wait_ready()
        walker = Walker(server.url, env)
        fixtures = walker.walk(tmp_path)
        (tmp_path / "fixtures.json").write_text(json.dumps(fixtures))
        spec = httpx.get(f"{server.url}/docs/openapi.json", trust_env=False).json()
        operations = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
        report = tmp_path / "report.json"
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "FUZZ_FIXTURES": str(tmp_path / "fixtures.json"),
               "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(ROOT / "tests" / "fuzz" / "schemathesis.toml"),
             "--no-color", "run", f"{server.url}/docs/openapi.json", "--checks", "all", "--max-time", str(FUZZ_SECONDS), "--seed", FUZZ_SEED, "--workers", "1",
             "--header", walker.headers["Authorization"].join(["Authorization: ", ""]),
             "--report", "json", "--report-json-path", str(report)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=FUZZ_SECONDS + 600,
        )
    finally:
        server.stop()
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.out").write_text(output)  # the whole report; failing cases replay from here
    server_log = server.log.read_text(errors="replace")
    detail = output[-12000:] + "\n[server errors]\n" + "\n".join(
        l[:2000] for l in server_log.splitlines() if '"level": "ERROR"' in l)[-6000:]
    assert result.returncode == 0, detail
    assert '"level": "ERROR"' not in server_log, detail
    summary = json.loads(report.read_text())
    ops = summary["operations"]
    # every documented operation was tested; none skipped as unfuzzable, none errored
    assert ops["selected"] == ops["tested"] == len(operations), (ops, detail)
    assert ops["skipped"] == 0 and ops["errored"] == 0, (ops, detail)
    assert summary["failures"] == [] and summary["errors"] == [], detail
    assert summary["test_cases"]["generated"] > 1000, summary["test_cases"]
    # the walked user stayed logged in throughout (a user operation answered only 401 was not really fuzzed;
    # the fuzzer's logout and refresh use a login of their own)
    logged_out = [op for op in (summary.get("warnings") or {}).get("missing_auth") or [] if " /api/v1/" in op]
    assert not logged_out, logged_out
