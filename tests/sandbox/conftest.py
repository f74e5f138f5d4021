"""Fixtures for the sandbox emulator tests: a real ``python -m sandbox`` server per test module."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.support import Helpers, SandboxProcess, start_sandbox, stop_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> SandboxProcess:
    tmp = tmp_path_factory.mktemp("sandbox")
    server = start_sandbox(tmp / "state" / "sandbox.sqlite3", tmp / "sandbox.log")
    yield server
    stop_sandbox(server.proc)
    assert server.proc.returncode == 0, server.log_path.read_text(errors="replace")


@pytest.fixture
def http(sandbox) -> httpx.Client:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def sb(sandbox, http) -> Helpers:
    return Helpers(sandbox, http)


@pytest.fixture
def token(sb) -> str:
    """A valid access token of the default app."""
    return sb.token()


@pytest.fixture
def user(sb) -> str:
    """The openid of a user the emulated WeChat knows (a login code was minted for it)."""
    return sb.login_code()["openid"]
