"""The console's payments page (issue #23): WeChat Pay orders (by status and day), refunds and daily-bill
mismatches, amounts in yuan, each list as CSV (audited); a mismatch resolved once with a note
(``payments.resolve``, audited ``payments.mismatch_resolved``), and kept when its day is checked again."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, datetime, timedelta

import httpx

from core.clock import CHINA_TZ, china_day
from models.audit import AuditEvent
from models.payments import BillMismatch, PaymentOrder
from services import audit
from services.payments import bills
from tests.payment_helpers import car_with_arrears, create_order, paid_device_fee, refund, wait_refund
from tests.staff_helpers import csrf_of, log_in, new_staff


async def logged_in(ctx, admin_client, clock, role: str = "operator"):
    me = await new_staff(ctx, role)
    assert (await log_in(admin_client, me, at=clock.now)).status_code == 303
    return me


async def a_mismatch(client, sandbox, ctx) -> tuple[BillMismatch, date, str]:
    """A real one: an order paid here on a day WeChat Pay has no bill for (payment_missing_from_bill)."""
    car, _ = await car_with_arrears(client, sandbox, ctx, 1_234)
    made = (await create_order(client, car.user, car.binding["id"])).json()
    day = date(2001, 1, 1) + timedelta(days=random.randrange(3000))  # noqa: S311 - a day no other test uses
    paid_at = datetime(day.year, day.month, day.day, 12, tzinfo=CHINA_TZ)
    await PaymentOrder.filter(id=made["id"]).update(status="paid", paid_at=paid_at, open_key=None)
    await bills.reconcile_day(ctx, day)
    row = await BillMismatch.get(bill_date=day, out_trade_no=made["out_trade_no"])
    return row, day, made["out_trade_no"]


def csv_rows(resp: httpx.Response) -> list[list[str]]:
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv"), resp.text[:300]
    return list(csv.reader(io.StringIO(resp.text.lstrip("\ufeff"))))


async def resolve(admin_client, page, mismatch_id: int, note: str, **extra) -> httpx.Response:
    return await admin_client.post(f"/admin/payments/mismatches/{mismatch_id}/resolve",
                                   data={"csrf_token": csrf_of(page), "note": note, **extra})


async def test_orders_and_refunds_are_listed_in_yuan_and_filtered(client, sandbox, ctx, admin_client, clock):
    car, order = await paid_device_fee(client, sandbox, ctx)
    made = (await refund(client, car.user, order["id"], amount_fen=2_000, reason="用户申请 13812345678")).json()
    assert (await wait_refund(made["id"])).status == "success"
    await logged_in(ctx, admin_client, clock, "reviewer")
    page = await admin_client.get("/admin/payments")
    assert page.status_code == 200
    assert order["out_trade_no"] in page.text and "99.00" in page.text and "20.00" in page.text
    assert made["out_refund_no"] in page.text
    assert "13812345678" not in page.text and "138****5678" in page.text  # personal data masked
    assert car.user.openid not in page.text  # the customer is named by user id only
    paid = await admin_client.get("/admin/payments", params={"order_status": "paid"})
    assert order["out_trade_no"] in paid.text
    closed = await admin_client.get("/admin/payments", params={"order_status": "closed"})
    assert order["out_trade_no"] not in closed.text.split('id="refunds"')[0]
    today = china_day().isoformat()
    assert order["out_trade_no"] in (await admin_client.get("/admin/payments", params={"order_day": today})).text
    other_day = await admin_client.get("/admin/payments", params={"order_day": "2001-01-01"})
    assert order["out_trade_no"] not in other_day.text.split('id="refunds"')[0]
    processing = await admin_client.get("/admin/payments", params={"refund_status": "processing"})
    assert made["out_refund_no"] not in processing.text
    for params in ({"order_status": "nope"}, {"order_day": "2026-02-30"}, {"refund_status": "x"},
                   {"mismatch_state": "x"}, {"format": "csv", "list": "accounts"}):
        assert (await admin_client.get("/admin/payments", params=params)).status_code == 422, params


async def test_each_list_exports_as_csv_and_is_audited(client, sandbox, ctx, admin_client, clock):
    car, order = await paid_device_fee(client, sandbox, ctx)
    made = (await refund(client, car.user, order["id"], amount_fen=500)).json()
    mismatch, _, trade_no = await a_mismatch(client, sandbox, ctx)
    me = await logged_in(ctx, admin_client, clock, "reviewer")
    orders = csv_rows(await admin_client.get("/admin/payments", params={"format": "csv", "list": "orders"}))
    assert orders[0][1] == "商户订单号" and [order["out_trade_no"], "99.00"] in [[r[1], r[4]] for r in orders[1:]]
    refunds = csv_rows(await admin_client.get("/admin/payments", params={"format": "csv", "list": "refunds"}))
    assert [made["out_refund_no"], "5.00"] in [[r[1], r[3]] for r in refunds[1:]]
    found = csv_rows(await admin_client.get("/admin/payments", params={"format": "csv", "list": "mismatches"}))
    assert [str(mismatch.id), "payment_missing_from_bill", trade_no, "12.34"] in [
        [r[0], r[2], r[3], r[5]] for r in found[1:]]
    exports = await AuditEvent.filter(actor=f"staff:{me.id}", action="staff.export").order_by("seq")
    assert [e.data["list"] for e in exports] == ["payments-orders", "payments-refunds", "payments-mismatches"]
    assert exports[0].data["rows"] == len(orders) - 1


async def test_a_mismatch_is_resolved_once_with_a_note(client, sandbox, ctx, admin_client, clock):
    mismatch, day, trade_no = await a_mismatch(client, sandbox, ctx)
    me = await logged_in(ctx, admin_client, clock, "operator")
    page = await admin_client.get("/admin/payments")
    assert f'id="mismatch-{mismatch.id}"' in page.text and "12.34" in page.text
    assert f'action="/admin/payments/mismatches/{mismatch.id}/resolve"' in page.text
    resp = await resolve(admin_client, page, mismatch.id, "  已与微信支付核对，账单次日补发  ")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/admin/payments?")
    row = await BillMismatch.get(id=mismatch.id)
    assert row.resolved_by_id == me.id and row.resolved_at is not None
    assert row.resolution_note == "已与微信支付核对，账单次日补发"
    event = await AuditEvent.filter(action="payments.mismatch_resolved", entity_id=str(mismatch.id)).get()
    assert event.actor == f"staff:{me.id}" and event.entity_type == "bill_mismatch"
    assert event.data["reason"] == "已与微信支付核对，账单次日补发" and event.data["out_trade_no"] == trade_no
    shown = await admin_client.get(resp.headers["location"])
    assert "已记录处理说明" in shown.text and "账单次日补发" in shown.text
    assert f'action="/admin/payments/mismatches/{mismatch.id}/resolve"' not in shown.text
    # once: a second resolution is a conflict, and changes nothing
    again = await resolve(admin_client, page, mismatch.id, "another note")
    assert again.status_code == 409
    assert (await BillMismatch.get(id=mismatch.id)).resolution_note == "已与微信支付核对，账单次日补发"
    assert await AuditEvent.filter(action="payments.mismatch_resolved", entity_id=str(mismatch.id)).count() == 1
    # checking the day again keeps the resolution, and does not raise the same difference again
    await bills.reconcile_day(ctx, day)
    rows = await BillMismatch.filter(bill_date=day, out_trade_no=trade_no)
    assert [(r.id, r.resolved_by_id) for r in rows] == [(mismatch.id, me.id)]
    assert (await audit.verify()).ok


async def test_an_unresolved_mismatch_is_replaced_when_its_day_is_checked_again(client, sandbox, ctx):
    mismatch, day, trade_no = await a_mismatch(client, sandbox, ctx)
    await bills.reconcile_day(ctx, day)
    rows = await BillMismatch.filter(bill_date=day, out_trade_no=trade_no)
    assert len(rows) == 1 and rows[0].id != mismatch.id and rows[0].resolved_at is None


async def test_bad_resolutions_are_refused(client, sandbox, ctx, admin_client, clock):
    mismatch, _, _ = await a_mismatch(client, sandbox, ctx)
    await logged_in(ctx, admin_client, clock, "reviewer")  # reviewers may resolve too
    page = await admin_client.get("/admin/payments")
    assert (await resolve(admin_client, page, mismatch.id, "abc")).status_code == 422  # under 4 characters
    assert (await resolve(admin_client, page, mismatch.id, "x" * 501)).status_code == 422
    assert (await resolve(admin_client, page, mismatch.id, "   ")).status_code == 422
    assert (await resolve(admin_client, page, 2**62, "a good note")).status_code == 404
    assert (await admin_client.post("/admin/payments/mismatches/99999999999999999999/resolve",
                                    data={"csrf_token": csrf_of(page), "note": "a good note"})).status_code == 404
    no_csrf = await admin_client.post(f"/admin/payments/mismatches/{mismatch.id}/resolve", data={"note": "a good note"})
    assert no_csrf.status_code == 403
    assert (await BillMismatch.get(id=mismatch.id)).resolved_at is None


async def test_roles_without_the_permissions_are_refused_and_audited(client, sandbox, ctx, admin_client, clock):
    mismatch, _, _ = await a_mismatch(client, sandbox, ctx)
    viewer = await logged_in(ctx, admin_client, clock, "viewer")
    home = await admin_client.get("/admin/")
    assert (await admin_client.get("/admin/payments")).status_code == 403
    assert (await admin_client.get("/admin/payments?format=csv&list=orders")).status_code == 403
    assert (await resolve(admin_client, home, mismatch.id, "a good note")).status_code == 403
    refusals = await AuditEvent.filter(actor=f"staff:{viewer.id}", action="staff.refused").order_by("seq")
    assert [e.data["permission"] for e in refusals] == ["payments.view", "payments.view", "payments.resolve"]

    async with httpx.AsyncClient(base_url=admin_client.base_url, trust_env=False) as other:
        admin = await new_staff(ctx, "admin")  # admin sees payments, but resolving is operators' and reviewers'
        await log_in(other, admin, at=clock.now)
        page = await other.get("/admin/payments")
        assert page.status_code == 200 and f'/admin/payments/mismatches/{mismatch.id}/resolve' not in page.text
        assert (await resolve(other, page, mismatch.id, "a good note")).status_code == 403
    assert (await BillMismatch.get(id=mismatch.id)).resolved_at is None


async def test_without_a_session_the_payments_page_sends_to_login(admin_client):
    resp = await admin_client.get("/admin/payments")
    assert resp.status_code == 303 and resp.headers["location"] == "/admin/login"
