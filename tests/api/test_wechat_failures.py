"""WeChat's failures are answers, not crashes: rate limits, outages, timeouts, expired tokens."""

from __future__ import annotations

import pytest

from tests.helpers import assert_error


async def test_rate_limited_by_wechat_is_429(client, sandbox):
    minted = await sandbox.login_code()
    await sandbox.fault("sns/jscode2session", errcode=45011)
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert_error(resp, 429, "RATE_LIMITED")
    assert resp.headers.get("retry-after") == "60"


async def test_a_one_shot_call_is_not_retried_after_a_read_timeout(client, sandbox, settings):
    # jscode2session consumes the code: after a timeout WeChat may have done it, so one attempt only.
    minted = await sandbox.login_code()
    await sandbox.fault("sns/jscode2session", delay_s=settings.http_timeout_s + 0.5, count=3)
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert_error(resp, 503, "UPSTREAM_UNAVAILABLE")
    left = (await client.get("/sandbox/control/faults")).json()["faults"]
    assert [f["remaining"] for f in left if "jscode2session" in f["path"]] == [2]  # one attempt consumed
    await client.delete("/sandbox/control/faults")


async def test_a_one_shot_call_is_not_retried_after_a_5xx(client, sandbox):
    minted = await sandbox.login_code()
    await sandbox.fault("sns/jscode2session", http_status=502, count=1)
    assert_error(await client.post("/api/v1/auth/login", json={"code": minted["code"]}), 503, "UPSTREAM_UNAVAILABLE")
    # the mini-program then asks wx.login for a new code, which works
    again = await sandbox.login_code(minted["openid"])
    assert (await client.post("/api/v1/auth/login", json={"code": again["code"]})).status_code == 200


async def test_an_idempotent_call_retries_timeouts_a_bounded_number_of_times(client, sandbox, settings, user):
    from tests.helpers import new_person, upload_id_photos

    person = new_person()
    front, back = await upload_id_photos(client, sandbox, user, person)
    attempts = settings.upstream_retries + 1
    # One more delay than we should use: if exactly `attempts` were consumed, one is left.
    await sandbox.fault("cv/ocr/idcard", delay_s=settings.http_timeout_s + 0.5, count=attempts + 1)
    body = {"front_upload_id": front, "back_upload_id": back, "name": person.name, "id_number": person.id_number}
    assert_error(await client.post("/api/v1/identity/id-card", headers=user.headers, json=body), 503, "UPSTREAM_UNAVAILABLE")
    left = (await client.get("/sandbox/control/faults")).json()["faults"]
    assert [f["remaining"] for f in left if "ocr" in f["path"]] == [1]  # bounded, not endless
    await client.delete("/sandbox/control/faults")


async def test_an_idempotent_call_recovers_from_a_5xx(client, sandbox, user):
    from tests.helpers import new_person, verify_id_card

    await sandbox.fault("cv/ocr/idcard", http_status=502, count=1)
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200


async def test_wechat_busy_minus_one_exhausts_retries(client, sandbox, settings):
    minted = await sandbox.login_code()
    await sandbox.fault("sns/jscode2session", errcode=-1, count=settings.upstream_retries + 1)
    assert_error(await client.post("/api/v1/auth/login", json={"code": minted["code"]}), 503, "UPSTREAM_UNAVAILABLE")


async def test_expired_access_token_is_refreshed_once(client, sandbox, user):
    # Given WeChat has expired every access token we hold
    code = await sandbox.phone_code("13912345678")
    warm = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
    assert warm.status_code == 200
    await sandbox.expire_tokens()
    forced_before = len(await sandbox.calls("cgi-bin/stable_token"))
    # When the next call needs a token
    code = await sandbox.phone_code("13912345679")
    resp = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
    # Then the client refreshes it once and the call succeeds
    assert resp.status_code == 200, resp.text
    assert resp.json()["phone"] == "139****5679"
    assert len(await sandbox.calls("cgi-bin/stable_token")) - forced_before == 1


async def test_token_error_twice_is_not_an_endless_loop(client, sandbox, user):
    code = await sandbox.phone_code("13912345670")
    await sandbox.fault("wxa/business/getuserphonenumber", errcode=40001, count=2)
    resp = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
    assert_error(resp, 503, "UPSTREAM_UNAVAILABLE")


# -- WeChat did the work, the reply was lost ---------------------------------------------------------
# The emulator's `when: after` faults commit the work (a code consumed, a message recorded) and then
# drop the connection or answer too late. A blind retry would turn a login into WECHAT_CODE_INVALID or
# send a message twice; the client sends a one-shot call once and reports the outage.


async def test_login_whose_reply_was_lost_is_503_not_code_invalid(client, sandbox):
    minted = await sandbox.login_code()
    await client.delete("/sandbox/control/calls")
    await sandbox.fault("sns/jscode2session", when="after", drop=True)
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert_error(resp, 503, "UPSTREAM_UNAVAILABLE")  # not 400 WECHAT_CODE_INVALID from a retry
    assert len(await sandbox.calls("sns/jscode2session")) == 1


async def test_phone_binding_whose_reply_came_too_late_is_sent_once(client, sandbox, settings, user):
    code = await sandbox.phone_code("13912340000")
    await client.delete("/sandbox/control/calls")
    await sandbox.fault("wxa/business/getuserphonenumber", when="after", delay_s=settings.http_timeout_s + 0.5)
    resp = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
    assert_error(resp, 503, "UPSTREAM_UNAVAILABLE")
    assert len(await sandbox.calls("wxa/business/getuserphonenumber")) == 1


async def test_a_subscribe_message_whose_reply_was_lost_goes_out_once(client, sandbox, ctx, user):
    from integrations.wechat import WeChatUnavailable

    # two acceptances: a second send would be let through, and counted
    await sandbox.subscribe(user.openid, "fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE", times=2)
    await sandbox.fault("cgi-bin/message/subscribe/send", when="after", drop=True)
    data = {"thing1": {"value": "Ⅱ类电子账户"}, "character_string2": {"value": "6230****1234"},
            "time3": {"value": "2026-11-29 10:00"}, "thing4": {"value": "欢迎使用"}}
    with pytest.raises(WeChatUnavailable):
        await ctx.wechat.send_subscribe_message(
            touser=user.openid, template_id="fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE", data=data,
            page="pages/index/index",
        )
    sent = (await client.get("/sandbox/control/subscribe-messages", params={"touser": user.openid})).json()["messages"]
    assert len(sent) == 1
