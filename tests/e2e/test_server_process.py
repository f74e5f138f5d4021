"""The server as ops run it: a real process that logs JSON lines and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import MYSQL_URL, free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env

pytestmark = pytest.mark.slow


def test_serves_logs_json_and_stops_on_sigterm(tmp_path):
    server = ServerProcess(free_port(), server_env(tmp_path), tmp_path / "server.log")
    try:
        server.wait_ready()
        out = httpx.get(f"{server.url}/api/v1/me", trust_env=False)
        assert out.status_code == 401 and out.headers["x-request-id"]
    finally:
        started = time.monotonic()
        code = server.stop()
    assert code == 0, server.log.read_text(errors="replace")[-3000:]
    assert time.monotonic() - started < 10
    text = server.log.read_text(errors="replace")
    lines = [l for l in text.splitlines() if l.startswith("{")]
    assert any(json.loads(l).get("route") == "/api/v1/me" for l in lines)
    assert all(json.loads(l)["level"] for l in lines)  # every structured line parses
    assert "Listening on http://127.0.0.1:" in text and "/docs" in text  # tells a newcomer where and how


def test_a_contract_font_problem_is_said_once_at_start(tmp_path):
    """It was said three times (the serve command, the renderer's own log, the worker's start)."""
    bogus = tmp_path / "no-such-font.ttf"
    server = ServerProcess(free_port(), server_env(tmp_path, CJK_FONT_PATH=str(bogus)), tmp_path / "server.log")
    try:
        server.wait_ready()
    finally:
        assert server.stop() == 0
    said = [l for l in server.log.read_text(errors="replace").splitlines() if str(bogus) in l]
    assert len(said) == 1, said
    assert said[0].startswith("  WARNING: contract font: ")


def test_sqlite_refuses_more_than_one_worker_with_a_clear_message(tmp_path):
    """SQLite has one writer: several worker processes would fail requests with "database is locked"
    (and use up identity attempts doing it), so the embedded default refuses them up front."""
    env = server_env(tmp_path, DATABASE_URL=f"sqlite://{tmp_path}/app.sqlite3")
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", str(free_port()), "--workers", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--workers 2 needs MySQL" in result.stderr and "DATABASE_URL=mysql://" in result.stderr
    assert not (tmp_path / "app.sqlite3").exists()  # refused before touching anything


@pytest.mark.skipif(not MYSQL_URL, reason="several workers need MySQL (SQLite serves one)")
def test_metrics_count_every_worker_whichever_answers_the_scrape(tmp_path):
    server = ServerProcess(free_port(), server_env(tmp_path), tmp_path / "server.log", workers=2)
    try:
        server.wait_ready()
        n = 60
        for _ in range(n):  # a new connection each time, so both workers take some
            assert httpx.get(f"{server.url}/health/live", headers={"Connection": "close"}, trust_env=False).status_code == 200
        time.sleep(1.0)  # each worker moves its in-memory counts to the shared files every 0.5 s
        counted_by = {p.name for p in (tmp_path / "metrics").glob("counter_*.db")}
        assert len(counted_by) >= 2, counted_by  # both worker processes counted requests
        for _ in range(6):  # whichever worker answers, it reports the whole server
            text = httpx.get(f"{server.url}/metrics", headers={"Connection": "close"}, trust_env=False).text
            line = next(l for l in text.splitlines()
                        if l.startswith('http_requests_total{method="GET",route="/health/live",status="200"}'))
            assert float(line.rsplit(" ", 1)[1]) == n, line
    finally:
        assert server.stop() == 0
