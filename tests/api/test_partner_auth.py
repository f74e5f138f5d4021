"""The open API's request signing (docs/open-api.md): every refusal in its order, each signed field
wrong in turn, nonces, scopes, disabled partners, secret rotation with a grace period, signed answers,
and ``python -m app partner``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from core.clock import utcnow
from models.audit import AuditEvent
from models.partners import Partner, PartnerNonce
from services.partners import auth as partner_auth
from tests.e2e.servers import ROOT
from tests.helpers import assert_error
from tests.partner_helpers import call, new_partner, response_signature_ok
from tests.staff_helpers import new_staff

STATEMENT = "/open/v1/statements?date=2026-11-29"


async def test_a_signed_request_is_answered_and_the_answer_is_signed(client, ctx):
    partner = await new_partner(ctx)
    headers = partner.headers("GET", STATEMENT)
    resp = await client.get(STATEMENT, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert response_signature_ok(partner, resp, headers["X-Nonce"])
    # the signature binds the answer to this request and this body
    assert not response_signature_ok(partner, resp, "another-request-nonce")


@pytest.mark.parametrize("missing", ["X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature"])
async def test_each_header_is_required(client, ctx, missing):
    partner = await new_partner(ctx)
    headers = partner.headers("GET", STATEMENT)
    del headers[missing]
    resp = await client.get(STATEMENT, headers=headers)
    assert_error(resp, 401, "PARTNER_AUTH_REQUIRED", missing)
    assert "X-Signature" not in resp.headers  # nobody was identified: nothing to sign for


@pytest.mark.parametrize(("header", "bad"), [("X-App-Id", "PT0123"), ("X-Timestamp", "12.5"), ("X-Nonce", "short"),
                                             ("X-Nonce", "has space in it 1234"), ("X-Signature", "ABC")])
async def test_malformed_headers_are_refused(client, ctx, header, bad):
    partner = await new_partner(ctx)
    headers = {**partner.headers("GET", STATEMENT), header: bad}
    assert_error(await client.get(STATEMENT, headers=headers), 401, "PARTNER_AUTH_REQUIRED", header)


async def test_an_unknown_app_is_refused(client, ctx):
    partner = await new_partner(ctx)
    headers = {**partner.headers("GET", STATEMENT), "X-App-Id": "pt" + "0" * 16}
    assert_error(await client.get(STATEMENT, headers=headers), 401, "APP_ID_UNKNOWN", "X-App-Id")


# The window is 300 s. X-Timestamp is whole seconds and the clock moves between signing and checking (on a
# loaded CI machine, by more than a second), so the refused skews stand 3 s outside it, as the accepted
# ones stand 10 s inside.
@pytest.mark.parametrize("skew", [-303, 303])
async def test_a_timestamp_outside_five_minutes_is_refused(client, ctx, skew):
    partner = await new_partner(ctx)
    headers = partner.headers("GET", STATEMENT, timestamp=int(time.time()) + skew)
    assert_error(await client.get(STATEMENT, headers=headers), 401, "TIMESTAMP_OUT_OF_RANGE", "X-Timestamp")


async def test_a_timestamp_within_five_minutes_is_accepted(client, ctx):
    partner = await new_partner(ctx)
    for skew in (-290, 290):
        headers = partner.headers("GET", STATEMENT, timestamp=int(time.time()) + skew)
        assert (await client.get(STATEMENT, headers=headers)).status_code == 200


async def test_each_signed_field_changed_in_turn_breaks_the_signature(client, ctx):
    partner = await new_partner(ctx, scopes=["etc:debit", "etc:read"])
    body = json.dumps({"out_trade_no": "T-sign-1", "category": "toll"}).encode()
    url = "/open/v1/debits"
    good = partner.headers("POST", url, body)

    async def post(headers, *, to=url, content=body, method="POST"):
        return await client.request(method, to, content=content, headers={**headers, "Content-Type": "application/json"})

    now = int(good["X-Timestamp"])
    cases = {
        "method": partner.headers("PUT", url, body),
        "path": partner.headers("POST", "/open/v1/debit", body),
        "query": partner.headers("POST", url + "?x=1", body),
        "timestamp": {**good, "X-Timestamp": str(now - 1)},
        "nonce": {**good, "X-Nonce": good["X-Nonce"][:-1] + ("a" if good["X-Nonce"][-1] != "a" else "b")},
        "body": partner.headers("POST", url, body + b" "),
        "secret": partner.headers("POST", url, body, secret=partner.secret + "x"),
    }
    for what, headers in cases.items():
        resp = await post(headers)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "SIGNATURE_INVALID", (what, resp.text)
    # ...while the request as signed passes the signature check (and reaches the body's validation)
    assert_error(await post(good), 422, "VALIDATION_ERROR")


async def test_a_query_is_signed_in_canonical_order_and_encoding(client, ctx):
    partner = await new_partner(ctx)
    # the partner signs the query sorted and %20-encoded; the request carries it shuffled and +-encoded
    signed_for = "/open/v1/statements?date=2026-11-29&note=a%20b&a=1"
    sent = "/open/v1/statements?note=a+b&a=1&date=2026-11-29"
    headers = partner.headers("GET", signed_for)
    assert (await client.get(sent, headers=headers)).status_code == 200


async def test_a_nonce_is_spent_once_and_only_by_a_signed_request(client, ctx):
    partner = await new_partner(ctx)
    nonce = "nonce-" + os.urandom(8).hex()
    forged = partner.headers("GET", STATEMENT, nonce=nonce, secret="not-the-secret")
    assert_error(await client.get(STATEMENT, headers=forged), 401, "SIGNATURE_INVALID")
    headers = partner.headers("GET", STATEMENT, nonce=nonce)
    assert (await client.get(STATEMENT, headers=headers)).status_code == 200  # the forgery spent nothing
    again = partner.headers("GET", STATEMENT, nonce=nonce)  # a new signature, the same nonce
    assert_error(await client.get(STATEMENT, headers=again), 401, "NONCE_REUSED", "X-Nonce")


async def test_concurrent_replays_of_one_request_pass_once(client, ctx):
    partner = await new_partner(ctx)
    headers = partner.headers("GET", STATEMENT)
    answers = await asyncio.gather(*(client.get(STATEMENT, headers=headers) for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 9
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 401} == {"NONCE_REUSED"}


async def test_a_missing_scope_is_forbidden_and_the_refusal_signed(client, ctx):
    partner = await new_partner(ctx, scopes=["parking:debit"])
    headers = partner.headers("GET", STATEMENT)
    # parking:debit may read statements (its own debits); a toll debit needs etc:debit
    assert (await client.get(STATEMENT, headers=headers)).status_code == 200
    body = {"out_trade_no": "T-scope-1", "card_number": "1" * 20, "category": "toll", "amount_fen": 100,
            "occurred_at": "2026-11-29T08:00:00+08:00", "merchant": "收费站"}
    resp = await call(client, partner, "POST", "/open/v1/debits", body)
    assert_error(resp, 403, "SCOPE_MISSING")
    reader = await new_partner(ctx, scopes=["etc:read"])
    headers = reader.headers("POST", "/open/v1/debits", json.dumps(body).encode())
    resp = await client.post("/open/v1/debits", content=json.dumps(body).encode(),
                             headers={**headers, "Content-Type": "application/json"})
    assert_error(resp, 403, "SCOPE_MISSING")
    assert response_signature_ok(reader, resp, headers["X-Nonce"])


async def test_a_disabled_partner_is_refused(client, ctx):
    from services.partners import registry

    partner = await new_partner(ctx)
    await registry.disable(partner.app_id)
    assert_error(await client.get(STATEMENT, headers=partner.headers("GET", STATEMENT)), 403, "PARTNER_DISABLED")


async def test_a_rotated_secret_keeps_working_for_the_grace_period_only(client, ctx):
    from services.partners import registry

    partner = await new_partner(ctx)
    old = partner.secret
    rotated = await registry.rotate_secret(ctx, partner.app_id, grace_s=3600)
    assert rotated.secret != old
    assert (await client.get(STATEMENT, headers=partner.headers("GET", STATEMENT, secret=old))).status_code == 200
    new_headers = partner.headers("GET", STATEMENT, secret=rotated.secret)
    resp = await client.get(STATEMENT, headers=new_headers)
    assert resp.status_code == 200
    partner.secret = rotated.secret
    assert response_signature_ok(partner, resp, new_headers["X-Nonce"])  # answered with the secret it was asked with
    await Partner.filter(app_id=partner.app_id).update(previous_valid_until=utcnow() - timedelta(seconds=1))
    assert_error(await client.get(STATEMENT, headers=partner.headers("GET", STATEMENT, secret=old)), 401,
                 "SIGNATURE_INVALID")


async def test_nonces_are_swept_after_an_hour(client, ctx):
    partner = await new_partner(ctx)
    headers = partner.headers("GET", STATEMENT)
    assert (await client.get(STATEMENT, headers=headers)).status_code == 200
    row = await PartnerNonce.get(nonce=headers["X-Nonce"])
    await partner_auth.sweep_nonces(now=row.created_at + timedelta(minutes=59))
    assert await PartnerNonce.exists(id=row.id)
    assert await partner_auth.sweep_nonces(now=row.created_at + timedelta(minutes=61)) >= 1
    assert not await PartnerNonce.exists(id=row.id)


def _cli(settings, *args, command: str = "partner") -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "VAR_DIR": settings.var_dir, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app", command, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def proposal_cli(settings, *args) -> subprocess.CompletedProcess:
    return _cli(settings, *args, command="proposal")


async def test_the_partner_command_creates_rotates_and_disables(client, ctx, settings):
    made = await asyncio.to_thread(_cli, settings, "create", "某停车场", "--scopes", "parking:debit,etc:read",
                                   "--callback-url", "http://127.0.0.1:9/notify")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["app_id"].startswith("pt") and created["secret"].startswith("sk_")
    assert created["scopes"] == ["etc:read", "parking:debit"]
    row = await Partner.get(app_id=created["app_id"])
    assert created["secret"] not in row.secret_enc  # kept encrypted, shown once
    maker, checker = await new_staff(ctx, "operator"), await new_staff(ctx, "admin")
    proposed = await asyncio.to_thread(_cli, settings, "rotate-secret", created["app_id"], "--as", maker.username,
                                       "--reason", "定期轮换")
    assert proposed.returncode == 0 and json.loads(proposed.stdout)["status"] == "pending", proposed.stderr
    assert "secret" not in json.loads(proposed.stdout)
    approved = await asyncio.to_thread(proposal_cli, settings, "approve", str(json.loads(proposed.stdout)["proposal_id"]),
                                       "--as", checker.username)
    rotated = json.loads(approved.stdout)
    assert rotated["secret"] != created["secret"] and rotated["result"]["previous_valid_until"]
    disabled = await asyncio.to_thread(_cli, settings, "disable", created["app_id"])
    assert json.loads(disabled.stdout)["status"] == "disabled"
    unknown = await asyncio.to_thread(_cli, settings, "disable", "pt" + "f" * 16)
    assert unknown.returncode == 1 and "no partner" in unknown.stderr
    bad = await asyncio.to_thread(_cli, settings, "create", "x", "--scopes", "everything")
    assert bad.returncode == 2 and "scopes" in bad.stderr
    actions = [e.action for e in await AuditEvent.filter(entity_type="partner", entity_id=created["app_id"]).order_by("seq")]
    assert actions == ["partner.created", "partner.secret_rotated", "partner.disabled"]
    rotation = await AuditEvent.get(entity_type="partner", entity_id=created["app_id"], action="partner.secret_rotated")
    assert rotation.actor == f"staff:{checker.id}"  # the approver's name on it


async def test_the_partner_command_still_takes_the_name_as_an_option(client, settings):
    made = await asyncio.to_thread(_cli, settings, "create", "--name", "旧写法", "--scopes", "etc:read")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["name"] == "旧写法"
    twice = await asyncio.to_thread(_cli, settings, "create", "甲", "--name", "乙", "--scopes", "etc:read")
    none = await asyncio.to_thread(_cli, settings, "create", "--scopes", "etc:read")
    assert twice.returncode == none.returncode == 2 and "name" in none.stderr


async def test_the_callback_url_is_set_after_creation_and_cleared(client, settings):
    """The partner emulator's URL carries the app id, which exists only once the partner does."""
    made = json.loads((await asyncio.to_thread(_cli, settings, "create", "某洗车店", "--scopes", "carwash:debit")).stdout)
    app_id = made["app_id"]
    assert made["callback_url"] is None
    url = f"http://127.0.0.1:9/sandbox/partner/{app_id}/notify"
    set_ = await asyncio.to_thread(_cli, settings, "set-callback", app_id, url)
    assert set_.returncode == 0, set_.stderr
    assert json.loads(set_.stdout) == {"app_id": app_id, "callback_url": url}
    assert (await Partner.get(app_id=app_id)).callback_url == url
    cleared = await asyncio.to_thread(_cli, settings, "set-callback", app_id, "--clear")
    assert json.loads(cleared.stdout) == {"app_id": app_id, "callback_url": None}
    assert (await Partner.get(app_id=app_id)).callback_url is None
    bad = await asyncio.to_thread(_cli, settings, "set-callback", app_id, "ftp://127.0.0.1/x")
    assert bad.returncode == 2 and "callback URL" in bad.stderr
    unknown = await asyncio.to_thread(_cli, settings, "set-callback", "pt" + "f" * 16, url)
    assert unknown.returncode == 1 and "no partner" in unknown.stderr
    events = await AuditEvent.filter(entity_type="partner", entity_id=app_id).order_by("seq")
    assert [(e.action, e.actor, e.data.get("callback_url")) for e in events] == [
        ("partner.created", "operator", None), ("partner.callback_set", "operator", url),
        ("partner.callback_cleared", "operator", None)]


@pytest.mark.parametrize("day", ["0", "20261129", "2026-11-31", "2026-1-1", "", "2026-11-29T00:00:00"])
async def test_the_statement_date_is_an_iso_day(client, ctx, day):
    """Found by the fuzzer: a lax date parser read ``date=0`` as 1970-01-01."""
    partner = await new_partner(ctx)
    url = f"/open/v1/statements?date={day}"
    assert_error(await client.get(url, headers=partner.headers("GET", url)), 422, "VALIDATION_ERROR", "date")


@pytest.mark.parametrize("twice", ["X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature"])
async def test_a_signing_header_given_twice_is_refused(client, ctx, twice):
    # both copies the same valid value: which one a proxy or framework would take must never matter
    partner = await new_partner(ctx)
    headers = partner.headers("GET", STATEMENT)
    resp = await client.get(STATEMENT, headers=[*headers.items(), (twice, headers[twice])])
    assert_error(resp, 401, "PARTNER_AUTH_REQUIRED", twice)
    assert "X-Signature" not in resp.headers


async def test_a_signed_body_that_is_not_utf8_json_is_400(client, ctx):
    partner = await new_partner(ctx)
    raw = json.dumps({"out_trade_no": "T-utf16-0001", "category": "toll", "amount_fen": 100}).encode("utf-16")
    resp = await call(client, partner, "POST", "/open/v1/debits", raw)
    assert_error(resp, 400, "INVALID_JSON")
