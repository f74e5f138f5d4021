"""The examples of docs/sandbox.md marked ``checked by`` this file, run as written against a fresh
server in sandbox mode (as ``make run`` starts it): a hand-signed WeChat Pay order with the backend's own
merchant, paying it and sending its notification again, and message pushes to the backend's push URL
with its Token and EncodingAESKey. They once named a merchant, a token and URLs the server never had."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env

pytestmark = pytest.mark.slow
MARK = "<!-- checked by tests/e2e/test_sandbox_doc_examples.py -->"


def checked_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of each code block right after the marker, in the document's order."""
    text = (ROOT / "docs" / "sandbox.md").read_text(encoding="utf-8")
    return re.findall(re.escape(MARK) + r"\n```(sh|python)\n(.*?)```", text, re.S)


def answers(out: str) -> list[dict]:
    """The JSON answers curl printed one after another (curl adds no newline)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(out):
        if out[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(out, at)
        found.append(value)
    return found


def test_the_sandbox_guide_s_wechatpay_and_push_examples_work_as_written(tmp_path):
    if shutil.which("curl") is None:
        pytest.fail("curl is needed: the guide's examples use it")
    blocks = checked_blocks()
    assert [lang for lang, _ in blocks] == ["sh", "python", "sh"], "a checked example went missing"
    by_kind = {"pay": blocks[0][1], "order": blocks[1][1], "push": blocks[2][1]}
    var = tmp_path / "var"
    server = ServerProcess(free_port(), server_env(var, SANDBOX_ROUTES="1"), tmp_path / "server.log")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "B": server.url, "VAR_DIR": str(var),
           "J": "content-type: application/json"}

    def run(*argv: str) -> str:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr + server.log.read_text(errors="replace")[-3000:]
        return done.stdout

    try:
        server.wait_ready()
        # the hand-signed order, with the merchant the backend is
        order = run(sys.executable, "-c", by_kind["order"])
        assert re.fullmatch(r"\{'prepay_id': 'wx[0-9A-Za-z]+'\}\n", order), order
        # paying it, listing its notification, sending it once more
        paid, listed, again = answers(run("bash", "-euo", "pipefail", "-c", by_kind["pay"]))
        assert paid["trade_state"] == "SUCCESS" and paid["out_trade_no"] == "ORDER_000001"
        [notification] = listed["notifications"]
        assert notification["notify_url"] == f"{server.url}/callbacks/wechatpay"
        assert again["id"] == paid["notification_id"] and len(again["attempts"]) == 1
        # the backend checked its signature and decrypted it: an order it never made is refused as such
        assert again["attempts"][0]["http_status"] == 400 and "订单信息不符" in again["attempts"][0]["reply"]
        # the message pushes: the URL verification, a plain and a safe-mode push, all accepted
        push = run("bash", "-euo", "pipefail", "-c", by_kind["push"].replace("http://127.0.0.1:8000", server.url))
        verified, plain, safe = answers(push)
        assert verified["ok"] is True, verified
        assert plain["accepted"] is True and safe["accepted"] is True, (plain, safe)
        assert safe["query"]["encrypt_type"] == "aes" and "msg_signature" in safe["query"]
    finally:
        server.stop()
