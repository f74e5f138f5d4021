"""The console's partner pages (issue #23): the list and its CSV, a partner's page (secret versions, never
a secret; masked debits; webhook deliveries), redelivering a notification through the outbox to the
sandbox's partner emulator, setting the callback URL and disabling, each audited as the staff member;
a role without the permission, a form without its CSRF token, an unknown id and another partner's
delivery are refused."""

from __future__ import annotations

import re


from models.audit import AuditEvent
from models.infra import OutboxMessage, OutboxStatus
from models.partners import Partner
from services import audit, outbox
from services.db import atomic
from services.notifications import outbox_handlers
from services.partners import notify, registry
from tests.partner_helpers import TEST_CARD_NETWORK, new_partner
from tests.staff_helpers import csrf_of, log_in, new_staff

DEBITS = "/open/v1/debits"


async def logged_in(ctx, admin_client, clock, role: str):
    me = await new_staff(ctx, role)
    resp = await log_in(admin_client, me, at=clock.now)
    assert resp.status_code == 303, resp.text
    return me


async def emulated_partner(client, ctx, server):
    """A partner whose callback URL is the sandbox emulator's, registered there with its secret."""
    partner = await new_partner(ctx, card_networks=(TEST_CARD_NETWORK,))
    url = f"{server.url}/sandbox/partner/{partner.app_id}/notify"
    await Partner.filter(app_id=partner.app_id).update(callback_url=url)
    resp = await client.post("/sandbox/control/partners", json={"app_id": partner.app_id, "secret": partner.secret})
    assert resp.status_code == 201, resp.text
    return partner


async def notification_for(app_id: str) -> OutboxMessage:
    """One notification queued for the partner, as the debit service queues it (``arrears.settled``)."""
    row = await Partner.get(app_id=app_id)
    await atomic(lambda conn: notify.arrears_settled(conn, row.id, 1, 1500, ["t-console"]))
    return (await OutboxMessage.filter(kind=notify.KIND).order_by("-id").first())


async def deliver(ctx, message_ids: list[int], *, max_attempts: int = 8) -> None:
    """Deliver these messages now (every other pending message is left alone)."""
    from core.clock import utcnow
    from datetime import timedelta

    await OutboxMessage.filter(id__in=message_ids).update(next_attempt_at=utcnow())
    others = await OutboxMessage.filter(status=OutboxStatus.PENDING).exclude(id__in=message_ids).values_list("id", flat=True)
    if others:
        await OutboxMessage.filter(id__in=list(others)).update(next_attempt_at=utcnow() + timedelta(days=1))
    await outbox.deliver_due(outbox_handlers(ctx), holder="test:console", max_attempts=max_attempts)


async def failed_delivery(client, ctx, sandbox, app_id: str) -> OutboxMessage:
    """A notification the partner answered 503 to until the outbox gave up (one attempt allowed)."""
    await sandbox.fault(f"partner/{app_id}/notify", http_status=503, count=1)
    message = await notification_for(app_id)
    await deliver(ctx, [message.id], max_attempts=1)
    message = await OutboxMessage.get(id=message.id)
    assert message.status == OutboxStatus.GAVE_UP, message.last_error
    return message


async def received(client, app_id: str) -> list[dict]:
    resp = await client.get(f"/sandbox/control/partners/{app_id}/notifications")
    assert resp.status_code == 200, resp.text
    return resp.json()["notifications"]


async def staff_action(action: str, staff_id: int) -> list[AuditEvent]:
    return await AuditEvent.filter(action=action, actor=f"staff:{staff_id}").order_by("id")


# -- the pages --


async def test_the_partner_list_shows_every_partner_and_exports_csv(ctx, admin_client, clock):
    made = await new_partner(ctx, scopes=("parking:debit",), callback_url="https://partner.example.com/hook")
    me = await logged_in(ctx, admin_client, clock, "reviewer")
    listing = await admin_client.get("/admin/partners")
    assert listing.status_code == 200
    row = re.search(rf'<tr data-app-id="{made.app_id}">(.*?)</tr>', listing.text, re.S).group(1)
    assert "parking:debit" in row and "https://partner.example.com/hook" in row and "启用" in row
    exported = await admin_client.get("/admin/partners?format=csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.lstrip("\ufeff").splitlines()
    assert lines[0] == "name,app_id,scopes,callback_url,status,created_at"
    assert any(made.app_id in line and "parking:debit" in line for line in lines[1:])
    [export] = await staff_action("staff.export", me.id)
    assert export.data["list"] == "partners" and export.data["rows"] == len(lines) - 1


async def test_a_partners_page_shows_secret_versions_never_a_secret(ctx, admin_client, clock):
    made = await new_partner(ctx, card_networks=("1101", "3201"))
    rotated = await registry.rotate_secret(ctx, made.app_id, grace_s=3600)
    await logged_in(ctx, admin_client, clock, "operator")
    shown = await admin_client.get(f"/admin/partners/{made.app_id}")
    assert shown.status_code == 200
    assert made.secret not in shown.text and rotated.secret not in shown.text
    versions = re.search(r'id="secret-versions">(.*?)</table>', shown.text, re.S).group(1)
    assert "当前" in versions and "上一版" in versions
    assert "1101, 3201" in shown.text
    for scope in made.scopes:
        assert scope in shown.text
    assert 'id="partner-proposals"' in shown.text  # where maker-checker's forms go
    link = re.search(r'href="([^"]+)" id="propose-rotate"', shown.text)
    form = await admin_client.get(link.group(1).replace("&amp;", "&"))
    assert form.status_code == 200 and made.app_id in form.text


async def test_the_partners_page_masks_the_card_of_its_debits(ctx, admin_client, client, sandbox, clock):
    from tests.partner_helpers import bound_car, call, debit_body

    partner = await new_partner(ctx)
    car = await bound_car(client, sandbox, balance_fen=10_000)
    body = debit_body(car, 500)
    resp = await call(client, partner, "POST", DEBITS, body)
    assert resp.status_code in (200, 201), resp.text
    await logged_in(ctx, admin_client, clock, "operator")
    shown = await admin_client.get(f"/admin/partners/{partner.app_id}")
    debits = re.search(r'id="partner-debits">(.*?)</table>', shown.text, re.S).group(1)
    assert car.card_number not in shown.text
    assert body["out_trade_no"] in debits and car.binding["card_number_masked"] in debits and "5.00" in debits


# -- refused --


async def test_a_role_without_the_permission_is_refused_and_audited(ctx, admin_client, clock):
    made = await new_partner(ctx)
    me = await logged_in(ctx, admin_client, clock, "viewer")
    for path in ("/admin/partners", f"/admin/partners/{made.app_id}"):
        assert (await admin_client.get(path)).status_code == 403
    refusals = await staff_action("staff.refused", me.id)
    assert [e.data["permission"] for e in refusals] == ["partners.view", "partners.view"]


async def test_a_reviewer_may_look_but_not_redeliver_set_or_disable(ctx, admin_client, clock):
    made = await new_partner(ctx)
    message = await notification_for(made.app_id)
    me = await logged_in(ctx, admin_client, clock, "reviewer")
    shown = await admin_client.get(f"/admin/partners/{made.app_id}")
    assert shown.status_code == 200 and 'class="redeliver"' not in shown.text and 'id="disable-form"' not in shown.text
    csrf = csrf_of(shown)
    for path, data in ((f"/deliveries/{message.id}/redeliver", {}), ("/callback", {"callback_url": "https://x.example.com/"}),
                       ("/disable", {})):
        resp = await admin_client.post(f"/admin/partners/{made.app_id}{path}",
                                       data={"csrf_token": csrf, "reason": "试试", **data})
        assert resp.status_code == 403, path
    assert [e.data["permission"] for e in await staff_action("staff.refused", me.id)] == ["partners.manage"] * 3
    assert (await Partner.get(app_id=made.app_id)).status == "active"
    assert not await OutboxMessage.filter(kind=notify.KIND, id__gt=message.id).exists()


async def test_a_form_without_its_csrf_token_is_refused(ctx, admin_client, clock):
    made = await new_partner(ctx)
    message = await notification_for(made.app_id)
    await OutboxMessage.filter(id=message.id).update(status=OutboxStatus.GAVE_UP)
    await logged_in(ctx, admin_client, clock, "operator")
    for path in (f"/deliveries/{message.id}/redeliver", "/disable", "/callback"):
        resp = await admin_client.post(f"/admin/partners/{made.app_id}{path}", data={"reason": "无令牌"})
        assert resp.status_code == 403 and "CSRF_REFUSED" in resp.text, path
        resp = await admin_client.post(f"/admin/partners/{made.app_id}{path}",
                                       data={"reason": "错令牌", "csrf_token": "x" * 43})
        assert resp.status_code == 403, path
    assert (await Partner.get(app_id=made.app_id)).status == "active"
    assert not await OutboxMessage.filter(kind=notify.KIND, id__gt=message.id).exists()


async def test_unknown_partners_and_deliveries_are_404(ctx, admin_client, clock):
    made = await new_partner(ctx)
    await logged_in(ctx, admin_client, clock, "operator")
    csrf = csrf_of(await admin_client.get("/admin/partners"))
    assert (await admin_client.get("/admin/partners/pt" + "0" * 16)).status_code == 404
    assert (await admin_client.get("/admin/partners/not-an-app-id")).status_code == 404
    for message_id in (10**12, 2**63, 10**30):
        resp = await admin_client.post(f"/admin/partners/{made.app_id}/deliveries/{message_id}/redeliver",
                                       data={"csrf_token": csrf, "reason": "不存在"})
        assert resp.status_code == 404, message_id
    resp = await admin_client.post("/admin/partners/pt" + "0" * 16 + "/disable", data={"csrf_token": csrf, "reason": "x"})
    assert resp.status_code == 404


async def test_another_partners_delivery_is_404(ctx, admin_client, clock):
    mine, theirs = await new_partner(ctx), await new_partner(ctx)
    message = await notification_for(theirs.app_id)
    await OutboxMessage.filter(id=message.id).update(status=OutboxStatus.GAVE_UP)
    await logged_in(ctx, admin_client, clock, "operator")
    shown = await admin_client.get(f"/admin/partners/{mine.app_id}")
    assert f'id="delivery-{message.id}"' not in shown.text
    resp = await admin_client.post(f"/admin/partners/{mine.app_id}/deliveries/{message.id}/redeliver",
                                   data={"csrf_token": csrf_of(shown), "reason": "别人的推送"})
    assert resp.status_code == 404 and "DELIVERY_NOT_FOUND" in resp.text
    assert not await OutboxMessage.filter(kind=notify.KIND, id__gt=message.id).exists()


# -- redelivery --


async def test_a_failed_delivery_redelivered_reaches_the_partner(ctx, admin_client, client, sandbox, server, clock):
    partner = await emulated_partner(client, ctx, server)
    failed = await failed_delivery(client, ctx, sandbox, partner.app_id)
    assert await received(client, partner.app_id) == []
    me = await logged_in(ctx, admin_client, clock, "operator")
    shown = await admin_client.get(f"/admin/partners/{partner.app_id}")
    row = re.search(rf'id="delivery-{failed.id}"(.*?)</tr>', shown.text, re.S).group(1)
    assert "已放弃" in row and "503" in row and "arrears.settled" in row
    path = f"/admin/partners/{partner.app_id}/deliveries/{failed.id}/redeliver"
    no_reason = await admin_client.post(path, data={"csrf_token": csrf_of(shown), "reason": " "})
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    resp = await admin_client.post(path, data={"csrf_token": csrf_of(shown), "reason": "合作方已修复回调"})
    assert resp.status_code == 303 and resp.headers["location"].startswith(f"/admin/partners/{partner.app_id}?done=")
    again = await OutboxMessage.filter(kind=notify.KIND, id__gt=failed.id).order_by("-id").first()
    assert again.status == OutboxStatus.PENDING and again.payload["redelivery_of"] == failed.id
    assert again.payload["event"] == failed.payload["event"]  # the same notification, its event id too
    # while it waits for the outbox, it is not queued twice
    pending = await admin_client.post(f"/admin/partners/{partner.app_id}/deliveries/{again.id}/redeliver",
                                      data={"csrf_token": csrf_of(shown), "reason": "再来一次"})
    assert pending.status_code == 409
    await deliver(ctx, [again.id])
    assert (await OutboxMessage.get(id=again.id)).status == OutboxStatus.SENT
    [got] = await received(client, partner.app_id)
    assert got["event_id"] == failed.payload["event"]["event_id"] and got["type"] == "arrears.settled"
    after = await admin_client.get(f"/admin/partners/{partner.app_id}")
    assert re.search(rf'id="delivery-{again.id}" data-status="sent"', after.text)
    [event] = await staff_action("partner.webhook_redelivered", me.id)
    assert event.entity_type == "partner" and event.entity_id == partner.app_id
    assert event.data["reason"] == "合作方已修复回调" and event.data["delivery_id"] == failed.id
    assert event.data["redelivery_id"] == again.id and event.data["role"] == "operator"
    assert (await audit.verify()).ok


# -- callback URL and disabling --


async def test_setting_the_callback_url_and_disabling_are_the_members_audit_events(ctx, admin_client, clock):
    made = await new_partner(ctx)
    me = await logged_in(ctx, admin_client, clock, "operator")
    base = f"/admin/partners/{made.app_id}"
    csrf = csrf_of(await admin_client.get(base))
    bad = await admin_client.post(base + "/callback", data={"csrf_token": csrf, "callback_url": "ftp://x/y",
                                                           "reason": "换地址"})
    assert bad.status_code == 422 and (await Partner.get(app_id=made.app_id)).callback_url is None
    no_reason = await admin_client.post(base + "/callback", data={"csrf_token": csrf,
                                                                 "callback_url": "https://p.example.com/hook"})
    assert no_reason.status_code == 422 and (await Partner.get(app_id=made.app_id)).callback_url is None
    resp = await admin_client.post(base + "/callback", data={"csrf_token": csrf, "callback_url": "https://p.example.com/hook",
                                                            "reason": "合作方来函更换地址"})
    assert resp.status_code == 303
    assert (await Partner.get(app_id=made.app_id)).callback_url == "https://p.example.com/hook"
    [set_event] = await staff_action("partner.callback_set", me.id)
    assert set_event.entity_id == made.app_id and set_event.data["reason"] == "合作方来函更换地址"
    assert set_event.data["callback_url"] == "https://p.example.com/hook" and set_event.data["previous"] is None
    cleared = await admin_client.post(base + "/callback", data={"csrf_token": csrf, "callback_url": "", "reason": "暂停推送"})
    assert cleared.status_code == 303 and (await Partner.get(app_id=made.app_id)).callback_url is None
    assert len(await staff_action("partner.callback_cleared", me.id)) == 1
    resp = await admin_client.post(base + "/disable", data={"csrf_token": csrf, "reason": "合同终止"})
    assert resp.status_code == 303
    row = await Partner.get(app_id=made.app_id)
    assert row.status == "disabled" and row.disabled_at is not None
    [disabled] = await staff_action("partner.disabled", me.id)
    assert disabled.entity_id == made.app_id and disabled.data["reason"] == "合同终止"
    again = await admin_client.post(base + "/disable", data={"csrf_token": csrf, "reason": "再停一次"})
    assert again.status_code == 409 and len(await staff_action("partner.disabled", me.id)) == 1
    # one event per change: no operator event beside the member's
    assert not await AuditEvent.filter(entity_type="partner", entity_id=made.app_id, actor="operator",
                                       action__in=["partner.callback_set", "partner.disabled"]).exists()
    assert (await audit.verify()).ok
