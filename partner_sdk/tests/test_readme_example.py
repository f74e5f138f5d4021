"""The README's worked signing example can never drift: its commands are rerun and every value in their
output is recomputed here with hashlib/hmac, independently of the SDK."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import re
import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from fakebank import debit_json, signed_response_headers

import openbank_partner.client as client_module
import openbank_partner.signing as signing_module
from openbank_partner import PartnerClient
from openbank_partner.__main__ import BEGIN, END, main

README = Path(__file__).resolve().parents[1] / "README.md"
APP_ID = "pt0123456789abcdef"
SECRET = "sk_dev-only-example-secret-do-not-use-0000000000"
TIMESTAMP, NONCE = "1764460800", "n0nce-example-0001"


def examples() -> list[tuple[list[str], str]]:
    """(argv of `python -m openbank_partner`, printed output) for each console block of the README."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL):
        lines = block.splitlines()
        command = lines.pop(0)
        while command.endswith("\\"):
            command = command[:-1] + lines.pop(0)
        argv = shlex.split(command)
        assert argv[:4] == ["$", "python", "-m", "openbank_partner"], command
        found.append((argv[4:], "\n".join(lines)))
    return found


def option(argv: list[str], name: str, default: str = "") -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def parse_output(output: str) -> tuple[str, dict[str, str]]:
    """The signed string between the markers, and the `name: value` lines after it."""
    before, rest = output.split(BEGIN + "\n")
    signed, after = rest.split("\n" + END + "\n")
    assert before == ""
    fields = dict(line.split(": ", 1) for line in after.splitlines())
    return signed, fields


def test_readme_has_both_examples() -> None:
    methods = [option(argv, "--method") for argv, _ in examples()]
    assert methods == ["POST", "GET"]


@pytest.mark.parametrize(("argv", "output"), examples(), ids=["post", "get"])
def test_readme_output_is_what_the_cli_prints(argv: list[str], output: str) -> None:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    assert stdout.getvalue() == output + "\n"


@pytest.mark.parametrize(("argv", "output"), examples(), ids=["post", "get"])
def test_readme_values_recomputed_independently(argv: list[str], output: str) -> None:
    assert (option(argv, "--secret"), option(argv, "--app-id")) == (SECRET, APP_ID)
    assert (option(argv, "--timestamp"), option(argv, "--nonce")) == (TIMESTAMP, NONCE)
    method, target, body = option(argv, "--method"), option(argv, "--path"), option(argv, "--body").encode()
    path, _, query = target.partition("?")
    canonical = {"": "", "date=2026-11-30&b=x%20y&a=1": "a=1&b=x%20y&date=2026-11-30"}[query]  # by hand
    body_sha = hashlib.sha256(body).hexdigest()
    expected_string = "\n".join([method, path, canonical, TIMESTAMP, NONCE, body_sha])

    signed, fields = parse_output(output)
    assert signed == expected_string
    assert fields == {
        "body sha256": body_sha,
        "X-App-Id": APP_ID,
        "X-Timestamp": TIMESTAMP,
        "X-Nonce": NONCE,
        "X-Signature": hmac.new(SECRET.encode(), expected_string.encode(), hashlib.sha256).hexdigest(),
    }


def test_readme_post_body_is_what_the_client_sends(monkeypatch) -> None:
    """The quick start's debit() call sends exactly the example's body, with exactly its headers when the
    clock and nonce are pinned to the example's."""
    [(argv, output)] = [e for e in examples() if option(e[0], "--method") == "POST"]
    _, fields = parse_output(output)
    monkeypatch.setattr(client_module, "new_nonce", lambda: NONCE)
    monkeypatch.setattr(signing_module.time, "time", lambda: int(TIMESTAMP))
    sent: list[httpx.Request] = []

    def bank(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        body = httpx.Response(201, json=debit_json()).content
        return httpx.Response(201, content=body, headers=signed_response_headers(SECRET, 201, NONCE, body))

    with PartnerClient("https://bank.example", APP_ID, SECRET, transport=httpx.MockTransport(bank)) as client:
        client.debit("ETC20261130000001", card_number="32010123456789012345", category="toll", amount_fen=3500,
                     occurred_at=datetime(2026, 11, 30, 8, 0, tzinfo=timezone(timedelta(hours=8))),
                     merchant="G2 Beijing-Shanghai Expwy", detail="Wuxi East to Suzhou")
    [request] = sent
    assert request.content == option(argv, "--body").encode()
    assert {k: request.headers[k] for k in ("X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature")} == {
        k: fields[k] for k in ("X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature")}


def test_readme_quick_start_mentions_the_example_call() -> None:
    text = README.read_text(encoding="utf-8")
    for fragment in ('"ETC20261130000001"', 'card_number="32010123456789012345"', 'category="toll"',
                     "amount_fen=3500", "datetime(2026, 11, 30, 8, 0, tzinfo=CHINA_STANDARD_TIME)",
                     'merchant="G2 Beijing-Shanghai Expwy"', 'detail="Wuxi East to Suzhou"'):
        assert fragment in text
