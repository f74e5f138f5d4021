"""Identifiers a caller chooses compare exactly, case included, on MySQL as on SQLite: MySQL's default
collation (utf8mb4_unicode_ci) folded case, so a partner's ``X1`` and ``x1`` were one debit, the nonce
``AbC`` was a replay of ``abc``, and two Idempotency-Keys differing in case shared one answer.
Migration 16 makes those columns ``utf8mb4_bin`` (``models.columns.ExactCharField``). Written for MySQL,
where it matters; on SQLite the same behaviour holds by default."""

from __future__ import annotations

import secrets

import pytest

from models.accounts import Account
from models.infra import IdempotencyRecord
from models.partners import PartnerDebit, PartnerNonce, PartnerRefund
from tests.account_helpers import open_account, top_up
from tests.partner_helpers import bound_car, call, debit_body, new_partner

pytestmark = pytest.mark.mysql
DEBITS = "/open/v1/debits"
STATEMENT = "/open/v1/statements?date=2026-01-01"


async def test_debits_whose_out_trade_no_differ_in_case_are_two_debits(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    upper = debit_body(car, 1_000, out_trade_no="CASE-" + secrets.token_hex(4).upper())
    lower = {**debit_body(car, 1_500), "out_trade_no": upper["out_trade_no"].lower()}
    first = await call(client, partner, "POST", DEBITS, upper)
    second = await call(client, partner, "POST", DEBITS, lower)
    assert (first.status_code, second.status_code) == (201, 201), second.text  # not 409 OUT_TRADE_NO_CONFLICT
    assert "idempotent-replayed" not in second.headers
    assert await PartnerDebit.filter(out_trade_no=upper["out_trade_no"]).count() == 1
    assert await PartnerDebit.filter(out_trade_no=lower["out_trade_no"]).count() == 1
    assert (await Account.get(id=car.account["id"])).balance_fen == 10_000 - 2_500
    for body in (upper, lower):  # each found by its own number
        got = await call(client, partner, "GET", f"{DEBITS}/{body['out_trade_no']}")
        assert got.json()["amount_fen"] == body["amount_fen"]
    # refunds: out_refund_no differing in case are two refunds too
    path = f"{DEBITS}/{upper['out_trade_no']}/refund"
    number = "RF-" + secrets.token_hex(4).upper()
    a = await call(client, partner, "POST", path, {"out_refund_no": number, "amount_fen": 100})
    b = await call(client, partner, "POST", path, {"out_refund_no": number.lower(), "amount_fen": 200})
    assert (a.status_code, b.status_code) == (201, 201), b.text
    assert await PartnerRefund.filter(out_refund_no__in=[number, number.lower()]).count() == 2


async def test_nonces_that_differ_in_case_are_both_accepted(client, ctx):
    partner = await new_partner(ctx)
    nonce = "NoNcE" + secrets.token_hex(8)
    first = await client.get(STATEMENT, headers=partner.headers("GET", STATEMENT, nonce=nonce))
    other = await client.get(STATEMENT, headers=partner.headers("GET", STATEMENT, nonce=nonce.lower()))
    assert (first.status_code, other.status_code) == (200, 200), other.text  # not 401 NONCE_REUSED
    again = await client.get(STATEMENT, headers=partner.headers("GET", STATEMENT, nonce=nonce))
    assert again.status_code == 401 and again.json()["error"]["code"] == "NONCE_REUSED"
    assert await PartnerNonce.filter(nonce__in=[nonce, nonce.lower()]).count() == 2


async def test_idempotency_keys_that_differ_in_case_are_two_requests(client, sandbox):
    user, _, account = await open_account(client, sandbox, card_balance_fen=10_000)
    key = "TopUp-" + secrets.token_hex(6).upper()
    first = await top_up(client, user, account["id"], 1_000, key=key)
    other = await top_up(client, user, account["id"], 1_000, key=key.lower())
    assert (first.status_code, other.status_code) == (201, 201), other.text
    assert "idempotent-replayed" not in {k.lower() for k in other.headers}
    assert first.json()["id"] != other.json()["id"]
    assert (await Account.get(id=account["id"])).balance_fen == 2_000
    assert await IdempotencyRecord.filter(key__in=[key, key.lower()]).count() == 2
    replay = await top_up(client, user, account["id"], 1_000, key=key)  # the same key still replays
    assert replay.status_code == 201 and replay.json()["id"] == first.json()["id"]
