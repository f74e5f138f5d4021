"""The README's curl walkthrough, run as written against a fresh server: a newcomer with only the README
logs in, binds a phone, passes the three identity checks and signs the privacy consent; then, with its
second block in the same shell, opens an account, tops it up, binds a car's ETC card, plays the toll
operator with the partner SDK (a debit, a refund, arrears) and pays the arrears with WeChat Pay."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env

pytestmark = pytest.mark.slow


def walkthrough(name: str = "walkthrough") -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(rf"<!-- {name}:start -->\s*```sh\n(.*?)```\s*<!-- {name}:end -->", readme, re.S)
    assert block, f"the README's {name} block is missing"
    return block.group(1)


def test_the_readme_walkthrough_signs_the_privacy_consent(tmp_path):
    if shutil.which("curl") is None:
        pytest.fail("curl is needed: the README's walkthrough uses it")
    server = ServerProcess(free_port(), server_env(tmp_path, SANDBOX_ROUTES="1"), tmp_path / "server.log")
    try:
        server.wait_ready()
        work = tmp_path / "newcomer"
        work.mkdir()
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough()], cwd=work,
                                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "B": server.url, "HOME": str(work)},
                                capture_output=True, text=True, timeout=300)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out + server.log.read_text(errors="replace")[-4000:]
        # what the newcomer ends with: a signed PDF the API verifies, and /me showing every step done
        signed = (work / "consent-signed.pdf").read_bytes()
        assert signed.startswith(b"%PDF")
        me = out.strip().splitlines()[-1]
        assert '"phone":"138****5678"' in me and '"done":true' in me and '"card_number":"622202*********0128"' in me
        assert '"status":"signed"' in out
        code = httpx.post(f"{server.url}/sandbox/control/login-code", json={}, trust_env=False).json()["code"]
        token = httpx.post(f"{server.url}/api/v1/auth/login", json={"code": code}, trust_env=False).json()["access_token"]
        verdict = httpx.post(f"{server.url}/api/v1/contracts/verify", content=signed, trust_env=False,
                             headers={"Authorization": f"Bearer {token}", "content-type": "application/pdf"}).json()
        assert verdict["ok"] is True and verdict["contract"]["matches_issued_copy"] is True
    finally:
        server.stop()


def test_the_readme_money_walkthrough_debits_refunds_and_pays_arrears(tmp_path):
    if shutil.which("curl") is None:
        pytest.fail("curl is needed: the README's walkthrough uses it")
    env = server_env(tmp_path, SANDBOX_ROUTES="1")
    server = ServerProcess(free_port(), env, tmp_path / "server.log")
    try:
        server.wait_ready()
        work = tmp_path / "newcomer"
        work.mkdir()
        # the bank's commands find make run's database and keys: here, the test server's
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough() + walkthrough("walkthrough-money")],
                                cwd=work, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "B": server.url,
                                               "HOME": str(work), "REPO": str(ROOT),
                                               "DATABASE_URL": env["DATABASE_URL"], "VAR_DIR": env["VAR_DIR"]},
                                capture_output=True, text=True, timeout=600)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out + server.log.read_text(errors="replace")[-4000:]
        assert "toll: succeeded" in out and "refund: 500" in out and "refused: INSUFFICIENT_FUNDS" in out
        lines = out.strip().splitlines()
        owed, order, binding, account = (json.loads(line) for line in lines[-4:])
        assert owed["arrears_fen"] == 4_000 and owed["status"] == "active"
        assert order["status"] == "paid" and order["amount_fen"] == 4_000 and order["purpose"] == "arrears"
        assert binding["arrears_fen"] == 0
        assert account["balance_fen"] == 5_000 - 3_500 + 500
        # the toll operator heard of it, at the callback URL set after its creation
        app_id = re.search(r'"callback_url": "[^"]*/sandbox/partner/(pt[0-9a-f]{16})/notify"', out).group(1)
        deadline, seen = time.monotonic() + 20, []
        while time.monotonic() < deadline and "arrears.settled" not in seen:
            got = httpx.get(f"{server.url}/sandbox/control/partners/{app_id}/notifications", trust_env=False).json()
            seen = [n["type"] for n in got["notifications"]]
            time.sleep(0.3)
        assert "arrears.settled" in seen, seen
    finally:
        server.stop()
