"""The mini-program's real JS (miniprogram_stub/) driven under Node against a real server process.

Starts ``python -m app serve`` on a free port (sandbox mode: the WeChat emulator is mounted on the same
server), waits for ``/health/ready``, then runs ``node --test miniprogram_stub/test/`` with ``BASE_URL``
pointing at it, and a partner's credentials (``PARTNER_APP_ID``, ``PARTNER_SECRET``: made with
``python -m app partner create``) for the toll the journey sees debited. Node's built-in test runner
only: no npm packages. Skipped only when ``node`` is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env

STUB_TESTS = ROOT / "miniprogram_stub" / "test"

pytestmark = pytest.mark.slow


def test_miniprogram_journey_under_node(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is not on PATH in CI: the mini-program journey must run there")
        pytest.skip("node is not on PATH")

    # The second customer does in a minute what a person does over years (identity, two signatures, lifting a
    # loss report, a new bound card, closing), each act with its own face check: more than the 5 a day a
    # person is allowed (the limit has its own tests).
    env = server_env(tmp_path, SANDBOX_ROUTES="1", DAILY_ATTEMPT_LIMIT="10")
    server = ServerProcess(free_port(), env, tmp_path / "server.log")
    try:
        server.wait_ready()
        # the toll operator whose debit the journey sees: a partner made the way the bank makes one
        made = subprocess.run([sys.executable, "-m", "app", "partner", "create", "--name", "测试高速",
                               "--scopes", "etc:debit,etc:read"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert made.returncode == 0, made.stderr
        partner = json.loads(made.stdout)
        result = subprocess.run(
            [node, "--test", "--test-reporter=tap", str(STUB_TESTS.relative_to(ROOT)) + "/"],
            cwd=ROOT,
            env=dict(os.environ, BASE_URL=server.url, NODE_NO_WARNINGS="1", PARTNER_APP_ID=partner["app_id"],
                     PARTNER_SECRET=partner["secret"]),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.stop()

    output = result.stdout + ("\n[stderr]\n" + result.stderr if result.stderr.strip() else "")
    print(output)
    fails = re.search(r"^# fail (\d+)$", result.stdout, re.M)
    passes = re.search(r"^# pass (\d+)$", result.stdout, re.M)
    skips = re.search(r"^# skipped (\d+)$", result.stdout, re.M)
    detail = output + "\n[server log]\n" + server.log.read_text(errors="replace")[-6000:]
    assert result.returncode == 0, f"node --test exited with {result.returncode}\n{detail}"
    assert fails is not None and passes is not None, f"no TAP summary in node's output\n{detail}"
    assert int(fails.group(1)) == 0, detail
    assert int(passes.group(1)) > 0, detail
    # Every capability the backend has must be exercised: nothing in the journey may skip.
    assert skips is None or int(skips.group(1)) == 0, detail
