"""The SDK against a live bank (the sandbox): skipped unless OPENBANK_LIVE_URL is set.

Environment:

- ``OPENBANK_LIVE_URL``: the bank's origin, e.g. ``http://127.0.0.1:8000`` (no trailing ``/open/v1``);
- ``OPENBANK_APP_ID``, ``OPENBANK_SECRET``: a partner with the ``etc:debit`` scope (for tolls);
- ``OPENBANK_CARD_NUMBER``: an ETC card (20 digits) with an active binding whose account holds at least
  1.00 yuan and whose limits allow a 1.00 yuan debit.

Each run books one 1.00 yuan toll under a fresh ``out_trade_no`` and refunds 0.30 of it. Run near
midnight China Standard Time and the statement check can look at the wrong day: run it again.

    OPENBANK_LIVE_URL=... OPENBANK_APP_ID=... OPENBANK_SECRET=... OPENBANK_CARD_NUMBER=... \\
        pytest partner_sdk/tests/test_live.py
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import datetime

import pytest

from openbank_partner import CHINA_STANDARD_TIME, OpenApiError, PartnerClient, china_today

URL = os.environ.get("OPENBANK_LIVE_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="set OPENBANK_LIVE_URL (and the variables above) to run")

AMOUNT, REFUND = 100, 30


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    names = ("OPENBANK_APP_ID", "OPENBANK_SECRET", "OPENBANK_CARD_NUMBER")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(f"OPENBANK_LIVE_URL is set but not {', '.join(missing)}")
    return {n: os.environ[n] for n in names}


@pytest.fixture(scope="module")
def client(env: dict[str, str]) -> Iterator[PartnerClient]:
    with PartnerClient(URL, env["OPENBANK_APP_ID"], env["OPENBANK_SECRET"]) as c:
        yield c


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    tag = secrets.token_hex(6)
    return {"out_trade_no": f"sdk-live-{tag}", "out_refund_no": f"sdk-refund-{tag}"}


@pytest.fixture(scope="module")
def debit_args(env: dict[str, str]) -> dict[str, object]:
    return {"card_number": env["OPENBANK_CARD_NUMBER"], "category": "toll", "amount_fen": AMOUNT,
            "occurred_at": datetime.now(CHINA_STANDARD_TIME).replace(microsecond=0),
            "merchant": "openbank-partner-sdk live test", "detail": "test_live.py", "location": (39.9042, 116.4074)}


# The tests below run in file order and build on each other (one debit, its refund, the statement).


def test_debit(client: PartnerClient, keys: dict[str, str], debit_args: dict[str, object]) -> None:
    debit = client.debit(keys["out_trade_no"], **debit_args)
    assert (debit.status, debit.amount_fen, debit.refunded_fen, debit.replayed) == ("succeeded", AMOUNT, 0, False)
    assert debit.out_trade_no == keys["out_trade_no"] and debit.refusal_code is None


def test_repeat_is_replayed_with_the_same_body(client: PartnerClient, keys: dict[str, str],
                                               debit_args: dict[str, object]) -> None:
    first = client.get_debit(keys["out_trade_no"])
    again = client.debit(keys["out_trade_no"], **debit_args)
    assert again.replayed is True
    assert again.raw == first.raw


def test_same_number_other_body_conflicts(client: PartnerClient, keys: dict[str, str],
                                          debit_args: dict[str, object]) -> None:
    with pytest.raises(OpenApiError) as info:
        client.debit(keys["out_trade_no"], **(debit_args | {"amount_fen": AMOUNT + 1}))
    assert (info.value.status, info.value.code, info.value.verified) == (409, "OUT_TRADE_NO_CONFLICT", True)


def test_refund_part(client: PartnerClient, keys: dict[str, str]) -> None:
    refund = client.refund(keys["out_trade_no"], keys["out_refund_no"], REFUND, reason="test_live.py")
    assert (refund.status, refund.amount_fen, refund.debit.refunded_fen) == ("succeeded", REFUND, REFUND)
    again = client.refund(keys["out_trade_no"], keys["out_refund_no"], REFUND, reason="test_live.py")
    assert again.replayed is True and again.raw == refund.raw
    with pytest.raises(OpenApiError) as info:
        client.refund(keys["out_trade_no"], keys["out_refund_no"] + "x", AMOUNT)
    assert (info.value.status, info.value.code) == (422, "REFUND_EXCEEDS_DEBIT")


def test_get_debit_shows_the_refund(client: PartnerClient, keys: dict[str, str]) -> None:
    debit = client.get_debit(keys["out_trade_no"])
    assert (debit.amount_fen, debit.refunded_fen) == (AMOUNT, REFUND)


def test_unknown_debit(client: PartnerClient) -> None:
    with pytest.raises(OpenApiError) as info:
        client.get_debit("sdk-live-" + secrets.token_hex(8))
    assert (info.value.status, info.value.code) == (404, "DEBIT_NOT_FOUND")


def test_statement_has_both_rows(client: PartnerClient, keys: dict[str, str]) -> None:
    rows = client.statement(china_today())
    mine = [r for r in rows if r.out_trade_no == keys["out_trade_no"]]
    debits = [r for r in mine if r.out_refund_no is None]
    refunds = [r for r in mine if r.out_refund_no == keys["out_refund_no"]]
    assert [r.amount_fen for r in debits] == [AMOUNT], mine
    # The document does not say whether a refund row's amount carries a sign: accept either.
    assert [abs(r.amount_fen) for r in refunds] == [REFUND], mine
    assert (debits[0].type, refunds[0].type) == ("debit", "refund")
    assert debits[0].category == refunds[0].category == "toll"


def test_wrong_secret_is_an_unsigned_401(env: dict[str, str]) -> None:
    wrong = PartnerClient(URL, env["OPENBANK_APP_ID"], "sk_" + secrets.token_urlsafe(32))
    with wrong, pytest.raises(OpenApiError) as info:
        wrong.get_debit("sdk-live-000000")
    assert (info.value.status, info.value.code, info.value.verified) == (401, "SIGNATURE_INVALID", False)
