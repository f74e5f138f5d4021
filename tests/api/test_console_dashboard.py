"""The console's landing page (issue #23): today's tiles, and the last 14 days (China Standard Time) as
inline-SVG bar charts read with one grouped query per measure. The clock is moved to a day of its own (in
2031, where no other test writes), and rows are written with timestamps in the 14 days before it."""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest

from models.accounts import Account
from models.enums import DebitStatus, OutboxStatus
from models.infra import OutboxMessage
from models.partners import Partner, PartnerDebit
from models.payments import BillMismatch
from tests.account_helpers import open_account
from tests.partner_helpers import bound_car, new_partner
from tests.staff_helpers import Clock, log_in, new_staff

NOW = datetime(2031, 5, 20, 3, 0, tzinfo=timezone.utc)  # 11:00 on 20 May in China
TODAY = date(2031, 5, 20)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock(monkeypatch)
    c.now = NOW
    return c


def tile(page: httpx.Response, name: str) -> int:
    return int(re.search(rf'id="count-{name}">(\d+)<', page.text).group(1))


def bars(page: httpx.Response, chart: str) -> dict[str, int]:
    found = re.search(rf'<figure class="card chart" id="chart-{chart}">(.*?)</figure>', page.text, re.S)
    assert found, chart
    return {d: int(n) for d, n in re.findall(r'<rect class="bar"[^>]*data-day="([\d-]+)" data-count="(\d+)"',
                                            found.group(1))}


async def debit(car, partner_id: int, day: date, status: DebitStatus) -> None:
    at = datetime(day.year, day.month, day.day, 2, tzinfo=timezone.utc)
    await PartnerDebit.create(partner_id=partner_id, out_trade_no="t" + secrets.token_hex(8), request_hash="0" * 64,
                              binding_id=car.binding["id"], account_id=car.account["id"], category="toll",
                              amount_fen=100, status=status, merchant="test", occurred_at=at, booked_at=at,
                              booked_day=day)


async def test_the_charts_count_each_day_of_the_last_fourteen(ctx, client, sandbox, admin_client, clock):
    partner = await Partner.get(app_id=(await new_partner(ctx)).app_id)
    car = await bound_car(client, sandbox)
    accounts = [car.account["id"]] + [(await open_account(client, sandbox))[2]["id"] for _ in range(3)]
    # openings, placed by their UTC time: 16:30 UTC on the 19th is the 20th in China, 15:59 UTC the 18th
    for account_id, at in zip(accounts, (datetime(2031, 5, 19, 16, 30, tzinfo=timezone.utc),
                            datetime(2031, 5, 18, 15, 59, tzinfo=timezone.utc),
                            datetime(2031, 5, 18, 1, 0, tzinfo=timezone.utc),
                            datetime(2031, 5, 6, 10, 0, tzinfo=timezone.utc))):  # before the 14 days
        await Account.filter(id=account_id).update(opened_at=at)
    for day, status in ((TODAY, DebitStatus.SUCCEEDED), (TODAY, DebitStatus.ARREARS), (TODAY, DebitStatus.SETTLED),
                        (date(2031, 5, 15), DebitStatus.REFUSED), (date(2031, 5, 15), DebitStatus.REFUSED),
                        (date(2031, 5, 15), DebitStatus.ARREARS), (date(2031, 5, 7), DebitStatus.SUCCEEDED),
                        (date(2031, 5, 6), DebitStatus.SUCCEEDED), (date(2031, 5, 21), DebitStatus.SUCCEEDED)):
        await debit(car, partner.id, day, status)

    me = await new_staff(ctx)  # a viewer: everyone sees the landing page
    assert (await log_in(admin_client, me, at=clock.now)).status_code == 303
    home = await admin_client.get("/admin/")
    assert home.status_code == 200
    days = [(date(2031, 5, 7) + timedelta(days=i)).isoformat() for i in range(14)]
    for chart in ("openings", "debits", "refusals", "arrears"):
        assert list(bars(home, chart)) == days, chart  # 14 bars, oldest first, the 20th last
    zero = dict.fromkeys(days, 0)
    assert bars(home, "openings") == {**zero, "2031-05-18": 2, "2031-05-20": 1}
    assert bars(home, "debits") == {**zero, "2031-05-07": 1, "2031-05-15": 1, "2031-05-20": 3}
    assert bars(home, "refusals") == {**zero, "2031-05-15": 2}
    assert bars(home, "arrears") == {**zero, "2031-05-15": 1, "2031-05-20": 2}  # settled since: still fell in arrears
    assert tile(home, "openings") == 1 and tile(home, "debits") == 3 and tile(home, "refusals") == 0
    assert tile(home, "arrears") == 2
    # a bar's height is its share of the chart's peak; an empty day draws nothing
    assert re.search(r'height="80\.0"\s+data-day="2031-05-20" data-count="3"', home.text)
    assert re.search(r'height="0"\s+data-day="2031-05-08" data-count="0"', home.text)
    # no script, no inline style: the CSP is default-src 'self'
    assert "<script" not in home.text and "style=" not in home.text and "<svg" in home.text


async def test_the_charts_read_one_grouped_query_per_measure(ctx, admin_client, clock, monkeypatch):
    from tortoise import Tortoise

    from services.staff import dashboard

    seen: list[str] = []
    conn = Tortoise.get_connection("default")
    real = type(conn).execute_query_dict

    async def counting(self, query, values=None):
        seen.append(query)
        return await real(self, query, values)

    monkeypatch.setattr(type(conn), "execute_query_dict", counting)
    series = await dashboard.last_days()
    assert [s.name for s in series] == ["openings", "debits", "refusals", "arrears"]
    assert len(seen) == 4 and all("GROUP BY" in q for q in seen)


async def test_failed_webhooks_and_open_mismatches_are_counted(ctx, admin_client, clock):
    me = await new_staff(ctx)
    await log_in(admin_client, me, at=clock.now)
    before = await admin_client.get("/admin/")
    later = datetime(2032, 1, 1, tzinfo=timezone.utc)  # never due while the test runs: no worker delivers it
    # shaped as the notifications are (other tests read every partner notification); removed afterwards
    payload = {"partner_id": 0, "event": {"event_id": "ev_test", "type": "binding.activated",
                                          "data": {"binding_id": 0}}}
    made = [
        await OutboxMessage.create(kind="partner_notification", payload=payload, status=OutboxStatus.GAVE_UP,
                                   attempts=8, next_attempt_at=later, finished_at=NOW - timedelta(hours=1),
                                   last_error="gave up"),
        await OutboxMessage.create(kind="partner_notification", payload=payload, status=OutboxStatus.GAVE_UP,
                                   attempts=8, next_attempt_at=later, finished_at=NOW - timedelta(days=1)),  # yesterday's
        await OutboxMessage.create(kind="partner_notification", payload=payload, status=OutboxStatus.PENDING,
                                   attempts=2, next_attempt_at=later, last_error="HTTP 500"),
        await OutboxMessage.create(kind="partner_notification", payload=payload, status=OutboxStatus.PENDING,
                                   attempts=0, next_attempt_at=later),  # not tried yet: not a failure
    ]
    await BillMismatch.create(bill_date=date(2031, 5, 19), kind="amount_differs", out_trade_no="x1", ours_fen=100,
                              bill_fen=90, found_at=NOW)
    await BillMismatch.create(bill_date=date(2031, 5, 19), kind="amount_differs", out_trade_no="x2", ours_fen=100,
                              bill_fen=90, found_at=NOW, resolved_at=NOW, resolved_by_id=me.id, resolution_note="done")
    try:
        after = await admin_client.get("/admin/")
        assert tile(after, "webhooks-failed") == tile(before, "webhooks-failed") + 1
        assert tile(after, "webhooks-retrying") == tile(before, "webhooks-retrying") + 1
        assert tile(after, "mismatches") == tile(before, "mismatches") + 1
    finally:
        await OutboxMessage.filter(id__in=[m.id for m in made]).delete()
