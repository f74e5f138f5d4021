"""Shared fixtures: one live server per test session, talking real HTTP to the mounted emulators.

The database is SQLite in a temp dir by default, or the MySQL database named by ``TEST_DATABASE_URL``
(CI runs both). On MySQL the suite only ever uses a database it created itself (``tests/testdb.py``):
it is created afresh at session start and the migrations build the schema, so the suite also proves the
migrations. Tests keep out of each other's way by using fresh openids, not by truncating.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
from pathlib import Path

import httpx
import pytest
from sanic import Sanic

from core.settings import Settings

MYSQL_URL = os.environ.get("TEST_DATABASE_URL", "") if os.environ.get("TEST_DATABASE_URL", "").startswith("mysql") else ""


def pytest_report_header(config) -> str:
    from app.db import _where

    return f"database: {_where(MYSQL_URL) if MYSQL_URL else 'SQLite in a temp dir (set TEST_DATABASE_URL for MySQL)'}"


def pytest_sessionstart(session) -> None:
    if MYSQL_URL:
        from tests.testdb import NotOurDatabase, claim

        try:
            claim(MYSQL_URL)
        except NotOurDatabase as exc:
            pytest.exit(str(exc), returncode=3)


def pytest_sessionfinish(session, exitstatus) -> None:
    """No personal data in any log line the suite produced (``tests/logscan.py``)."""
    import sys

    from tests.logscan import scan

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or exitstatus not in (0, 1):
        return
    files = sorted(factory.getbasetemp().rglob("*.log"))
    findings, lines = scan(files)
    print(f"\nlog scan: {lines} line(s) in {len(files)} log file(s), {len(findings)} with personal data",
          file=sys.stderr)
    if findings:
        print(f"\npersonal data in {len(findings)} log line(s):\n  " + "\n  ".join(findings[:50]), file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_settings(var_dir: Path, port: int, **overrides) -> Settings:
    """Settings as a test server uses them: explicit test-only keys, short timeouts, the sandbox on."""
    from integrations.wechatpay import dev_merchant_key

    key_path, serial = dev_merchant_key(var_dir)
    base = Settings(
        app_env="sandbox",
        database_url=MYSQL_URL or f"sqlite://{var_dir / 'app.sqlite3'}",
        var_dir=str(var_dir),
        self_base_url=f"http://127.0.0.1:{port}",
        wechat_appid="wxsandbox0000dev1",
        wechat_secret="dev-only-sandbox-wechat-secret",
        cardnet_api_key="dev-only-sandbox-cardnet-key",
        http_timeout_s=1.0,
        upstream_retries=2,
        jwt_keys={"test1": b"test-only-jwt-key-" + secrets.token_hex(16).encode()},
        pii_keys={"test1": secrets.token_bytes(32)},
        pii_index_key=secrets.token_bytes(32),
        dev_keys=True,
        sandbox_routes=True,
        validate_responses=True,
        wechatpay_mchid="1900000001",
        wechatpay_private_key_path=str(key_path),
        wechatpay_merchant_serial=serial,
        wechatpay_apiv3_key="test-only-apiv3-" + secrets.token_hex(8),
        wechat_push_token="testonlypushtoken",
        wechat_push_aes_key=base64.b64encode(secrets.token_bytes(32)).decode()[:43],
        # off for the suite's many users from one address; tests/api/test_rate_limits.py turns them on
        rate_limits={},
        # what sandbox mode gives these, and no baseline rule set (the tests that want one load it)
        bank_account_prefix="623099",
        account_opened_template_id="fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE",
        debit_template_id="OyU4C0AHaaok3lDZsIiyqB5mApgyNRFSCeGjwkNclY0",
        arrears_template_id="o5P84JR1UN1RUg2Pvklo4Cnv6R8CLDwYtrwvLINqKgk",
        loss_reported_template_id="MoGCd-tAGbTaoi68ckIliO6I2qfiUzvbhIhJTThW1Qw",
        id_expiry_template_id="utQ-DAmesEIiAWoMh7FNh0f-S5d1A1vfIRG_PBQmJXU",
        account_closed_template_id="G59kAsodnJGDk1l4UdWAFkINByntvi08ZVry8IYa0Yc",
        risk_baseline_file="",
        esign_processes=2,
        admin_enabled=True,  # the staff console (tests/api/test_staff_auth.py); its own test turns it off
    )
    return base.replace(**overrides)


class LiveServer:
    def __init__(self, app: Sanic, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._srv = None

    async def start(self) -> None:
        self._srv = await self.app.create_server(
            host="127.0.0.1", port=self.port, return_asyncio_server=True, access_log=False
        )
        await self._srv.startup()
        await self._srv.before_start()
        await self._srv.after_start()

    async def stop(self) -> None:
        await self._srv.before_stop()
        self._srv.close()
        await self._srv.wait_closed()
        await self._srv.after_stop()


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("var")


def _copy_logs_to(path: Path) -> None:
    """Every record the in-process server logs, also written to ``path`` exactly as its real handler writes
    it (the same redaction filter and formatter), for the suite's personal-data scan."""
    import logging

    from app.logs import JsonFormatter, RedactFilter

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter())
    for name in ("", "sanic.root", "sanic.error", "sanic.server"):
        logging.getLogger(name).addHandler(handler)


@pytest.fixture(scope="session")
async def server(var_dir):
    Sanic.test_mode = True
    from app.factory import create_app

    port = free_port()
    settings = test_settings(var_dir, port)
    live = LiveServer(create_app(settings), port)
    await live.start()
    _copy_logs_to(var_dir / "suite-records.log")
    yield live
    await live.stop()


@pytest.fixture(scope="session")
def settings(server) -> Settings:
    return server.app.ctx.settings


@pytest.fixture(scope="session")
def ctx(server):
    """The server's ServiceContext, for tests that call services or read rows directly."""
    return server.app.ctx.services


@pytest.fixture
async def client(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=15, trust_env=False) as c:
        yield c


@pytest.fixture
async def admin_client(server):
    """A browser-like HTTP client for the staff console (its own cookies)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=15, trust_env=False,
                                 headers={"user-agent": "staff-test-browser/1.0"}) as c:
        yield c


@pytest.fixture
def clock(monkeypatch):
    """``utcnow`` of the staff services, moved by the test (``tests.staff_helpers.Clock``), never slept."""
    from tests.staff_helpers import Clock

    return Clock(monkeypatch)


@pytest.fixture
async def sandbox(client):
    from tests.helpers import Sandbox

    s = Sandbox(client)
    yield s
    await client.delete("/sandbox/control/faults")


@pytest.fixture
async def user(client, sandbox):
    """A fresh logged-in user: ``user.headers`` authorises as them."""
    from tests.helpers import login_new_user

    return await login_new_user(client, sandbox)


@pytest.fixture(autouse=True)
def _only_loopback(monkeypatch):
    """Fail any test that tries to reach a host other than loopback (no real WeChat by accident)."""
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and self.family in (socket.AF_INET, socket.AF_INET6):
            if not (host.startswith("127.") or host in ("::1", "localhost")):
                raise AssertionError(f"test tried to reach {host}: only loopback is allowed")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
async def _ledger_adds_up(request):
    """After every test that ran against the server: every balance is the sum of its entries (what
    ``python -m app ledger check`` verifies), whatever the test did with money."""
    yield
    if "server" not in request.fixturenames:
        return
    from services.accounts import ledger

    report = await ledger.check()
    assert report.ok, f"ledger check failed after this test: {report.mismatches}"
