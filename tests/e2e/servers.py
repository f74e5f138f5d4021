"""Real server processes for end-to-end tests (``python -m app serve``), each in its own session:
Sanic's forced shutdown kills its whole process group, which must not include pytest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def server_env(var_dir: Path, **extra: str) -> dict:
    from tests.conftest import MYSQL_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "WECHAT_", "JWT_", "PII_", "SELF_BASE"))}
    env["VAR_DIR"] = str(var_dir)
    env["DATABASE_URL"] = MYSQL_URL or f"sqlite://{var_dir}/app.sqlite3"
    env["PYTHONPATH"] = str(ROOT)
    env["RATE_LIMITS"] = "off"  # a test's many users share one address; the limits have their own tests
    # no rule set at first start, as the in-process test server has none: on MySQL every server shares the
    # suite's database, where a baseline loaded by one would bite every later test (the fresh-install test
    # leaves this out, and its own database, to show the default)
    env["RISK_BASELINE_FILE"] = ""
    env.update(extra)
    return env


class ServerProcess:
    def __init__(self, port: int, env: dict, log: Path, *, workers: int = 1) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._fh = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            cwd=ROOT, env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log.read_text(errors='replace')[-3000:]}")

    def descendants(self) -> list[int]:
        """Every process this server started (its workers, and theirs)."""
        found, frontier = [], [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            try:
                kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                continue
            found += kids
            frontier += kids
        return found

    def stop(self) -> int | None:
        """SIGTERM to the main process only, as Docker does: it shuts its workers down gracefully.
        (Signalling the whole group makes workers get it twice, and Sanic then hangs in cleanup.)
        Returns the exit code, or None when it had to be killed (its log's tail then goes to stderr).

        The wait is longer than the server may take: the background worker gets 10 s to finish its job,
        then Sanic gives requests in flight up to its graceful timeout (15 s)."""
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                code = None
        self._fh.close()
        if code is None:
            print(f"server on port {self.port} had to be killed; its log ends:\n"
                  f"{self.log.read_text(errors='replace')[-6000:]}", file=sys.stderr)
        return code
