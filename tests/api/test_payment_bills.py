"""The daily reconciliation with WeChat Pay's trade bill, against the emulator's bill over real HTTP:
a payment whose notification was lost and an amount that differs are found (and the lost one settled
as a notification would have), refunds are compared too, what we have that the bill lacks is found,
the operator's command prints it all, and the worker's job checks yesterday once."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, time, timedelta

import pytest

from core.clock import CHINA_TZ, utcnow
from models.payments import BillMismatch, PaymentBill, PaymentOrder, PaymentRefund, PayNotification
from services.payments import bills
from tests.payment_helpers import (
    car_with_arrears,
    create_order,
    paid_device_fee,
    pay,
    refund,
    run_cli,
    wait_refund,
    wait_status,
)


def today() -> date:
    return utcnow().astimezone(CHINA_TZ).date()


def of(result: bills.DayResult, *out_trade_nos: str) -> list[tuple[str, str | None]]:
    """The mismatches about these orders (the bill of today also holds other tests' payments)."""
    return sorted((m.kind, m.out_trade_no) for m in result.mismatches if m.out_trade_no in out_trade_nos)


async def test_the_bill_finds_a_lost_notification_and_an_amount_that_differs(client, sandbox, ctx):
    car, _ = await car_with_arrears(client, sandbox, ctx, 700)
    lost = (await create_order(client, car.user, car.binding["id"])).json()
    await pay(client, lost, notify="drop")  # WeChat Pay took the money; we never heard
    _, order = await paid_device_fee(client, sandbox, ctx)
    # our books say something else than what WeChat Pay took (a bug, a hand edit): only the bill shows it
    await PaymentOrder.filter(id=order["id"]).update(amount_fen=order["amount_fen"] - 1)
    assert (await PaymentOrder.get(id=lost["id"])).status == "prepaid"

    result = await bills.reconcile_day(ctx, today())

    assert result.had_bill and result.payments >= 2
    assert of(result, lost["out_trade_no"], order["out_trade_no"]) == sorted([
        ("payment_not_recorded", lost["out_trade_no"]), ("amount_differs", order["out_trade_no"])])
    found = {m.kind: m for m in result.mismatches if m.out_trade_no in (lost["out_trade_no"], order["out_trade_no"])}
    assert (found["amount_differs"].ours_fen, found["amount_differs"].bill_fen) == (order["amount_fen"] - 1,
                                                                                   order["amount_fen"])
    # the lost payment is applied as its notification would have been, and the record says so
    assert found["payment_not_recorded"].resolution == "asked WeChat Pay: now paid"
    assert (await PaymentOrder.get(id=lost["id"])).status == "paid"
    stored = await BillMismatch.filter(bill_date=today(), out_trade_no__in=[lost["out_trade_no"],
                                                                           order["out_trade_no"]])
    assert sorted(m.kind for m in stored) == ["amount_differs", "payment_not_recorded"]
    day = await PaymentBill.get(bill_date=today())
    assert day.hash_value and day.payments == result.payments and day.mismatches == len(result.mismatches)

    # checked again, the day's mismatches are replaced: the settled one is no longer a mismatch
    again = await bills.reconcile_day(ctx, today())
    assert of(again, lost["out_trade_no"], order["out_trade_no"]) == [("amount_differs", order["out_trade_no"])]
    assert await BillMismatch.filter(bill_date=today(), out_trade_no=lost["out_trade_no"]).count() == 0
    await PaymentOrder.filter(id=order["id"]).update(amount_fen=order["amount_fen"])  # leave the books right


async def test_refunds_are_compared_with_the_bill_too(client, sandbox, ctx):
    car, order = await paid_device_fee(client, sandbox, ctx)
    made = (await refund(client, car.user, order["id"], amount_fen=2_000)).json()
    assert (await wait_refund(made["id"])).status == "success"
    result = await bills.reconcile_day(ctx, today())
    assert of(result, order["out_trade_no"]) == []  # the payment and the refund agree
    await PaymentRefund.filter(id=made["id"]).update(amount_fen=1_999)
    result = await bills.reconcile_day(ctx, today())
    mismatch = [m for m in result.mismatches if m.out_refund_no == made["out_refund_no"]]
    assert [(m.kind, m.ours_fen, m.bill_fen) for m in mismatch] == [("refund_amount_differs", 1_999, 2_000)]
    await PaymentRefund.filter(id=made["id"]).update(amount_fen=2_000)


async def test_what_we_have_and_the_bill_lacks_is_found(client, sandbox, ctx):
    """A day WeChat Pay has no bill for (NO_STATEMENT_EXIST), on which our books show a payment."""
    car, _ = await car_with_arrears(client, sandbox, ctx, 300)
    made = (await create_order(client, car.user, car.binding["id"])).json()
    day = date(2001, 1, 1) + timedelta(days=random.randrange(3000))  # noqa: S311 - a day no other test uses
    paid_at = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=CHINA_TZ)  # late: the day is CST's
    await PaymentOrder.filter(id=made["id"]).update(status="paid", paid_at=paid_at, open_key=None)
    result = await bills.reconcile_day(ctx, day)
    assert not result.had_bill and result.payments == 0
    assert [(m.kind, m.out_trade_no, m.ours_fen) for m in result.mismatches] == [
        ("payment_missing_from_bill", made["out_trade_no"], 300)]
    assert (await PaymentBill.get(bill_date=day)).hash_value is None
    next_day = await bills.reconcile_day(ctx, day + timedelta(days=1))
    assert made["out_trade_no"] not in {m.out_trade_no for m in next_day.mismatches}


async def test_the_operator_command_prints_the_mismatches(client, sandbox, ctx, settings):
    car, _ = await car_with_arrears(client, sandbox, ctx, 400)
    lost = (await create_order(client, car.user, car.binding["id"])).json()
    await pay(client, lost, notify="drop")
    done = await run_cli(settings, "pay", "reconcile", "--date", today().isoformat())
    assert done.returncode == 1, done.stderr
    line = next(x for x in done.stdout.splitlines() if lost["out_trade_no"] in x)
    assert line.startswith("payment_not_recorded: ") and "ours=400 fen bill=400 fen" in line
    assert "[asked WeChat Pay: now paid]" in line
    assert f"{today()}: WeChat Pay's bill," in done.stdout.splitlines()[-1]
    assert (await wait_status(lost["id"], "paid")).status == "paid"
    bad = await run_cli(settings, "pay", "reconcile", "--date", "30-11-2026")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
    future = await run_cli(settings, "pay", "reconcile", "--date", (today() + timedelta(days=2)).isoformat())
    assert future.returncode == 2 and "could not be checked" in future.stderr


async def test_the_daily_job_checks_yesterday_once_after_the_hour(ctx, monkeypatch):
    noon = datetime(2026, 11, 30, 12, 0, tzinfo=CHINA_TZ)
    assert bills.due_day(noon, 10) == date(2026, 11, 29)
    assert bills.due_day(noon.replace(hour=9, minute=59), 10) is None
    assert bills.due_day(datetime(2026, 11, 30, 1, 0, tzinfo=CHINA_TZ).astimezone(CHINA_TZ), 0) == date(2026, 11, 29)
    day = date(1999, 1, 1) + timedelta(days=random.randrange(300))  # noqa: S311
    monkeypatch.setattr(bills, "due_day", lambda now, hour: day)
    asked = []
    real = ctx.wechatpay.trade_bill

    async def counting(bill_date):
        asked.append(bill_date)
        return await real(bill_date)

    monkeypatch.setattr(ctx.wechatpay, "trade_bill", counting)
    first = await bills.daily(ctx, hour=10)
    assert first["checked"] == day.isoformat() and first["mismatches"] == 0
    assert await bills.daily(ctx, hour=10) == {"checked": None}
    assert asked == [day.isoformat()]


async def test_a_bill_whose_hash_does_not_match_is_refused_and_nothing_recorded(client, sandbox, ctx, monkeypatch):
    from integrations import wechatpay

    await paid_device_fee(client, sandbox, ctx)
    real = wechatpay.checked_bill
    monkeypatch.setattr(wechatpay, "checked_bill", lambda content, kind, value: real(content + b"1", kind, value))
    before = await PaymentBill.get_or_none(bill_date=today())
    with pytest.raises(wechatpay.BillUnusable):
        await bills.reconcile_day(ctx, today())
    after = await PaymentBill.get_or_none(bill_date=today())
    assert (after and after.checked_at) == (before and before.checked_at)


async def test_the_bill_day_is_chinas_at_seven_in_the_morning(client, sandbox, ctx, monkeypatch):
    car, _ = await car_with_arrears(client, sandbox, ctx, 300)
    made = (await create_order(client, car.user, car.binding["id"])).json()
    day = date(2011, 1, 1) + timedelta(days=random.randrange(3000))  # noqa: S311 - a day no other test uses
    paid_at = datetime.combine(day, time(7), tzinfo=CHINA_TZ)  # 23:00 UTC the day before: early on `day` in China
    await PaymentOrder.filter(id=made["id"]).update(status="paid", paid_at=paid_at, open_key=None)
    # the worker wakes at 07:00 China time the next morning (still `day` in UTC), past a 06:00 bill hour
    monkeypatch.setattr(bills, "utcnow", lambda: (paid_at + timedelta(days=1)).astimezone(UTC))
    done = await bills.daily(ctx, hour=6)
    assert done["checked"] == day.isoformat()
    assert [(m.kind, m.ours_fen) for m in await BillMismatch.filter(bill_date=day, out_trade_no=made["out_trade_no"])
            ] == [("payment_missing_from_bill", 300)]
    utc_day = await bills.reconcile_day(ctx, day - timedelta(days=1))  # the UTC day it was paid on
    assert made["out_trade_no"] not in {m.out_trade_no for m in utc_day.mismatches}


async def test_a_refund_still_processing_here_that_the_bill_shows_is_settled_from_wechat_pay(client, sandbox, ctx):
    car, order = await paid_device_fee(client, sandbox, ctx)
    made = (await refund(client, car.user, order["id"], amount_fen=1_500)).json()
    assert (await wait_refund(made["id"])).status == "success"
    for _ in range(200):  # its REFUND.SUCCESS notification in: nothing comes afterwards to settle it
        if await PayNotification.filter(event_type="REFUND.SUCCESS", out_trade_no=order["out_trade_no"]).exists():
            break
        await asyncio.sleep(0.05)
    # as if that notification had been lost: processing here, done at WeChat Pay and in its bill
    await PaymentRefund.filter(id=made["id"]).update(status="processing", finished_at=None)
    result = await bills.reconcile_day(ctx, today())
    found = [(m.kind, m.resolution) for m in result.mismatches if m.out_refund_no == made["out_refund_no"]]
    assert found == [("refund_not_recorded", "asked WeChat Pay: refund success")]
    assert (await PaymentRefund.get(id=made["id"])).status == "success"
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == 1_500
    again = await bills.reconcile_day(ctx, today())
    assert made["out_refund_no"] not in {m.out_refund_no for m in again.mismatches}
