"""Partner refunds give back only money a debit booked on the account: a debit risk control refused,
one left in arrears, or arrears settled by WeChat Pay moved nothing on the account, so refunding one
would mint money. Money given back is held to the Class III balance cap like any credit. ``ledger check`` runs
after each test (tests/conftest.py)."""

from __future__ import annotations


import pytest

from models.accounts import Account, LedgerEntry
from models.partners import PartnerDebit, PartnerRefund
from models.accounts import EntryDirection, EntryKind
from services.accounts import ledger, rules
from services.db import atomic
from tests.account_helpers import open_account, top_up
from tests.helpers import assert_error, rules_in_force
from tests.partner_helpers import bound_car, call, debit_body, new_partner
from tests.payment_helpers import car_with_arrears, create_order, pay, wait_status

DEBITS = "/open/v1/debits"


async def balance(account_id: int) -> int:
    return (await Account.get(id=account_id)).balance_fen


async def refund(client, partner, out_trade_no: str, amount_fen: int, number: str):
    return await call(client, partner, "POST", f"{DEBITS}/{out_trade_no}/refund",
                      {"out_refund_no": number, "amount_fen": amount_fen})


@pytest.fixture
async def tolls_held():
    """Tolls above 1,000 yuan held by risk control (RISK_REVIEW) while the test runs."""
    await rules_in_force([{"id": "big-toll", "type": "amount", "status": "active", "action": "review",
                  "applies_to": ["partner_debit"], "categories": ["toll"], "max_amount_fen": 100_000}])
    yield
    await rules_in_force([])


async def assert_refund_moves_nothing(client, partner, car, out_trade_no: str, state: str) -> None:
    before = await balance(car.account["id"])
    entries = await LedgerEntry.filter(account_id=car.account["id"]).count()
    assert (await PartnerDebit.get(partner__app_id=partner.app_id, out_trade_no=out_trade_no)).status == state
    assert_error(await refund(client, partner, out_trade_no, 1, f"R-{state}-small"), 409, "DEBIT_NOT_REFUNDABLE")
    assert_error(await refund(client, partner, out_trade_no, 200_000, f"R-{state}-all"), 409, "DEBIT_NOT_REFUNDABLE")
    assert await balance(car.account["id"]) == before
    assert await LedgerEntry.filter(account_id=car.account["id"]).count() == entries
    assert await PartnerRefund.filter(partner__app_id=partner.app_id).count() == 0
    assert (await PartnerDebit.get(partner__app_id=partner.app_id, out_trade_no=out_trade_no)).refunded_fen == 0


async def test_a_debit_risk_control_held_cannot_be_refunded(client, sandbox, ctx, tolls_held):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=500_000)
    body = debit_body(car, 200_000)
    assert_error(await call(client, partner, "POST", DEBITS, body), 403, "RISK_REVIEW")
    await assert_refund_moves_nothing(client, partner, car, body["out_trade_no"], "refused")
    assert await balance(car.account["id"]) == 500_000


async def test_a_debit_left_in_arrears_cannot_be_refunded(client, sandbox, ctx):
    car, partner = await car_with_arrears(client, sandbox, ctx, 1_200)
    owed = await PartnerDebit.get(partner__app_id=partner.app_id)
    await assert_refund_moves_nothing(client, partner, car, owed.out_trade_no, "arrears")


async def test_arrears_settled_by_wechat_pay_are_not_refunded_into_the_account(client, sandbox, ctx):
    car, partner = await car_with_arrears(client, sandbox, ctx, 1_200)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    await pay(client, order)
    assert (await wait_status(order["id"], "paid")).status == "paid"
    owed = await PartnerDebit.get(partner__app_id=partner.app_id)
    await assert_refund_moves_nothing(client, partner, car, owed.out_trade_no, "settled")


async def test_a_booked_debit_is_refunded_up_to_what_it_booked(client, sandbox, ctx):
    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 3_000)
    assert (await call(client, partner, "POST", DEBITS, body)).status_code == 201
    assert (await refund(client, partner, body["out_trade_no"], 3_000, "R-booked-1")).status_code == 201
    assert await balance(car.account["id"]) == 10_000
    assert_error(await refund(client, partner, body["out_trade_no"], 1, "R-booked-2"), 422, "REFUND_EXCEEDS_DEBIT")
    assert await balance(car.account["id"]) == 10_000


async def test_money_returned_to_a_full_class_iii_account_is_held_to_the_cap(client, sandbox):
    """ETC debits bind Class II accounts only, so the ledger itself is asked: a credit that returns money
    (``reversal``) with no room reserved for it is refused at the cap like any other."""
    cap = rules.RULES["III"].balance_cap_fen
    user, person, account = await open_account(client, sandbox, "III", card_balance_fen=1_000_000)
    assert (await top_up(client, user, account["id"], cap)).status_code == 201

    async def give_back(conn):
        await ledger.post(conn, account["id"], direction=EntryDirection.CREDIT, kind=EntryKind.TOLL_REFUND,
                          amount_fen=1, reference="PR-test-cap", settling=True, reversal=True)

    with pytest.raises(ledger.BalanceCapExceeded):
        await atomic(give_back)
    assert await balance(account["id"]) == cap
