"""The partner SDK (``partner_sdk/``, a package of its own that imports nothing of the server): its own
test suite, then its live tests against this server, as a partner with a bound customer's ETC card.

The SDK's suite runs in its own pytest process with its own configuration (``partner_sdk/pyproject.toml``)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import pytest

from tests.e2e.servers import ROOT
from tests.partner_helpers import TEST_CARD_NETWORK, bound_car, new_partner

SDK = ROOT / "partner_sdk"
pytestmark = pytest.mark.slow


def run_sdk_tests(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=SDK,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600)


def counts(output: str) -> dict[str, int]:
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output)}


def test_the_sdk_suite_passes():
    result = run_sdk_tests("--ignore=tests/test_live.py")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    found = counts(out.strip().splitlines()[-1])
    assert found.get("passed", 0) > 100 and "failed" not in found and "skipped" not in found, out[-2000:]


async def test_the_sdk_debits_refunds_and_reads_a_statement_on_a_live_server(client, sandbox, ctx, server):
    partner = await new_partner(ctx, scopes=["etc:debit", "etc:read"])
    car = await bound_car(client, sandbox, balance_fen=10_000)
    result = await asyncio.to_thread(run_sdk_tests, "tests/test_live.py", env={
        "OPENBANK_LIVE_URL": server.url, "OPENBANK_APP_ID": partner.app_id, "OPENBANK_SECRET": partner.secret,
        "OPENBANK_CARD_NUMBER": car.card_number})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    found = counts(out.strip().splitlines()[-1])
    assert found.get("passed", 0) >= 5 and "skipped" not in found and "failed" not in found, out[-2000:]
    # what the SDK did is what the bank booked: a toll of ¥1.00 and a refund of ¥0.30 of it
    from models.accounts import Account

    assert (await Account.get(id=car.account["id"])).balance_fen == 10_000 - 100 + 30


async def test_the_sdk_verifies_a_notification_the_bank_sent(client, sandbox, ctx, server):
    """A real delivery (the outbox, the webhook sender, the bank's signature) caught as it arrives, then
    checked and parsed by the SDK as a partner's web handler would."""
    from sanic import Sanic
    from sanic.response import json as json_response

    from models.partners import Partner
    from tests.api.test_partner_notifications import deliver_all
    from tests.conftest import LiveServer, free_port

    caught: list[dict] = []
    receiver = Sanic("partner_receiver")

    @receiver.post("/hooks/openbank")
    async def hook(request):
        caught.append({"method": request.method, "target": request.path + ("?" + request.query_string
                                                                          if request.query_string else ""),
                       "headers": dict(request.headers), "body": request.body})
        return json_response({"ok": True})

    port = free_port()
    live = LiveServer(receiver, port)
    await live.start()
    try:
        partner = await new_partner(ctx, scopes=["etc:debit"], card_networks=(TEST_CARD_NETWORK,))
        await Partner.filter(app_id=partner.app_id).update(
            callback_url=f"http://127.0.0.1:{port}/hooks/openbank?source=bank")
        row = await Partner.get(app_id=partner.app_id)
        car = await bound_car(client, sandbox)
        await deliver_all(ctx, row.id)
    finally:
        await live.stop()
    assert len(caught) == 1, caught
    sys.path.insert(0, str(SDK))
    try:
        from openbank_partner import SignatureError, parse_notification
    finally:
        sys.path.remove(str(SDK))
    got = caught[0]
    note = parse_notification(partner.secret, got["method"], got["target"], got["headers"], got["body"])
    assert note.type == "binding.activated" and note.data["binding_id"] == car.binding["id"]
    assert note.event_id.startswith("ev_")
    # a tampered body, or another partner's secret, does not verify
    for secret, body in ((partner.secret, got["body"].replace(b"active", b"suspended")), ("sk_other", got["body"])):
        try:
            parse_notification(secret, got["method"], got["target"], got["headers"], body)
        except SignatureError:
            continue
        raise AssertionError("a forged notification verified")
