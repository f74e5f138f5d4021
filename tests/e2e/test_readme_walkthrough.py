"""The README's curl walkthrough, run as written against a fresh server: a newcomer with only the README
logs in, binds a phone, passes the three identity checks and signs the privacy consent."""

from __future__ import annotations

import re
import shutil
import subprocess

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env

pytestmark = pytest.mark.slow


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- walkthrough:start -->\s*```sh\n(.*?)```\s*<!-- walkthrough:end -->", readme, re.S)
    assert block, "the README's walkthrough block is missing"
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
