"""Helpers for the sandbox emulator tests: starting ``python -m sandbox`` as a real server, HTTP helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]

APPID = "wxsandbox0000dev1"
SECRET = "dev-only-sandbox-wechat-secret"
APPID2 = "wxsandbox0000dev2"
SECRET2 = "second-sandbox-secret"
CARDNET_KEY = "dev-only-sandbox-cardnet-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SandboxProcess:
    base: str
    state_path: Path
    proc: subprocess.Popen
    log_path: Path
    apps: dict[str, str] = field(default_factory=dict)

    @property
    def wechat(self) -> str:
        return f"{self.base}/sandbox/wechat"

    @property
    def control(self) -> str:
        return f"{self.base}/sandbox/control"

    @property
    def cardnet(self) -> str:
        return f"{self.base}/sandbox/cardnet"


def start_sandbox(state_path: Path, log_path: Path) -> SandboxProcess:
    port = free_port()
    env = dict(os.environ)
    env.update(
        SANDBOX_STATE_PATH=str(state_path),
        SANDBOX_APPS=f"{APPID}:{SECRET},{APPID2}:{SECRET2}",
        SANDBOX_CARDNET_KEYS=f"{CARDNET_KEY},second-cardnet-key",
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Sanic kills its whole process group on a forced shutdown
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sandbox exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base}/sandbox/control/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_sandbox(proc)
            raise RuntimeError(f"sandbox did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)
    return SandboxProcess(base, state_path, proc, log_path, {APPID: SECRET, APPID2: SECRET2})


def stop_sandbox(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we created with start_new_session
        proc.wait(timeout=10)


class Helpers:
    """Thin helpers over the control API and the token endpoints (all plain HTTP)."""

    def __init__(self, sandbox: SandboxProcess, http: httpx.Client):
        self.sb = sandbox
        self.http = http

    def control(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.http.request(method, f"{self.sb.control}/{path}", **kwargs)

    def login_code(self, **body) -> dict:
        r = self.control("POST", "login-code", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def phone_code(self, phone: str, **body) -> str:
        r = self.control("POST", "phone-code", json={"phone": phone, **body})
        assert r.status_code == 200, r.text
        return r.json()["code"]

    def token(self, appid: str = APPID) -> str:
        r = self.http.get(
            f"{self.sb.wechat}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": appid, "secret": self.sb.apps[appid]},
        )
        body = r.json()
        assert "access_token" in body, body
        return body["access_token"]

    def wx_post(self, path: str, token: str, body: dict | None = None, **kwargs) -> dict:
        r = self.http.post(f"{self.sb.wechat}/{path}", params={"access_token": token}, json=body, **kwargs)
        assert r.status_code == 200, r.text
        return r.json()

    def code2session(self, code: str, appid: str = APPID, secret: str | None = None) -> dict:
        r = self.http.get(
            f"{self.sb.wechat}/sns/jscode2session",
            params={
                "appid": appid,
                "secret": self.sb.apps.get(appid, "x") if secret is None else secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        assert r.status_code == 200, r.text
        return r.json()

    def subscribe(self, openid: str, *template_ids: str, times: int = 1, appid: str | None = None) -> list[dict]:
        """The user accepts these templates in wx.requestSubscribeMessage, ``times`` times (one message each)."""
        body = {"openid": openid, "template_ids": list(template_ids), **({"appid": appid} if appid else {})}
        for _ in range(times):
            r = self.control("POST", "subscriptions", json=body)
            assert r.status_code == 200, r.text
        return r.json()["subscriptions"]

    def calls(self, path: str) -> list[dict]:
        r = self.control("GET", "calls", params={"path": path})
        assert r.status_code == 200, r.text
        return r.json()["calls"]


def assert_wx_error(body: dict, errcode: int) -> None:
    assert body.get("errcode") == errcode, body
    assert " rid: " in body["errmsg"], body
    assert body["errmsg"].rsplit(" rid: ", 1)[1], body
