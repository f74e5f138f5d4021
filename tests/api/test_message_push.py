"""Message push (消息推送) to /callbacks/wechat/push: the URL verification (with the worked example of
the wire notes), plain and safe mode round trips from the emulator (which encrypts with its own code),
a wrong signature refused with nothing recorded, and a redelivered message recorded once."""

from __future__ import annotations

import pytest

from models.infra import PushEvent
from services.notifications import push
from tests.helpers import assert_error


def test_the_worked_example_of_url_verification():
    # Token AAAAA, timestamp 1714036504, nonce 1514711492 -> f464b24fc39322e44b38aa78f5edd27bd1441696
    assert push.verify_url("AAAAA", "f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036504", "1514711492",
                           "echo-me") == "echo-me"
    with pytest.raises(push.PushSignatureInvalid):
        push.verify_url("AAAAA", "f464b24fc39322e44b38aa78f5edd27bd1441697", "1714036504", "1514711492", "x")


async def test_wechat_verifies_the_url(client, server, settings):
    resp = await client.post("/sandbox/control/push/verify", json={
        "url": f"{server.url}/callbacks/wechat/push", "token": settings.wechat_push_token})
    assert resp.status_code == 200 and resp.json()["ok"] is True, resp.text
    wrong = await client.post("/sandbox/control/push/verify", json={
        "url": f"{server.url}/callbacks/wechat/push", "token": "notourtoken"})
    assert wrong.json()["ok"] is False and wrong.json()["http_status"] == 401


def consent_change(openid: str, n: int) -> dict:
    return {"FromUserName": openid, "CreateTime": 1764460800 + n, "MsgType": "event",
            "Event": "subscribe_msg_change_event",
            "SubscribeMsgChangeEvent": {"List": {"TemplateId": "tpl-1", "SubscribeStatusString": "reject"}}}


@pytest.mark.parametrize("mode", ["plain", "safe"])
async def test_a_pushed_event_is_recorded_once(client, server, settings, mode):
    openid = f"o-push-{mode}"
    body = {"url": f"{server.url}/callbacks/wechat/push", "token": settings.wechat_push_token, "mode": mode,
            "format": "json", "appid": settings.wechat_appid, "message": consent_change(openid, 1)}
    if mode == "safe":
        body["encoding_aes_key"] = settings.wechat_push_aes_key
    for _ in range(2):  # WeChat's retry of a slow answer
        resp = await client.post("/sandbox/control/push", json=body)
        assert resp.status_code == 200 and resp.json()["accepted"] is True, resp.text
    events = await PushEvent.filter(from_user=openid)
    assert len(events) == 1 and events[0].event == "subscribe_msg_change_event" and events[0].safe_mode == (mode == "safe")
    assert events[0].payload["SubscribeMsgChangeEvent"]["List"]["SubscribeStatusString"] == "reject"


async def test_a_wrongly_signed_push_is_refused_and_recorded_nowhere(client, server, settings):
    resp = await client.post("/sandbox/control/push", json={
        "url": f"{server.url}/callbacks/wechat/push", "token": "notourtoken", "mode": "plain", "format": "json",
        "appid": settings.wechat_appid, "message": consent_change("o-push-forged", 2)})
    assert resp.json()["accepted"] is False and resp.json()["http_status"] == 401
    assert not await PushEvent.filter(from_user="o-push-forged").exists()
    safe_with_wrong_key = await client.post("/sandbox/control/push", json={
        "url": f"{server.url}/callbacks/wechat/push", "token": settings.wechat_push_token, "mode": "safe",
        "format": "json", "appid": settings.wechat_appid, "encoding_aes_key": "b" * 43,
        "message": consent_change("o-push-wrong-key", 3)})
    assert safe_with_wrong_key.json()["accepted"] is False and safe_with_wrong_key.json()["http_status"] in (400, 401)
    assert not await PushEvent.filter(from_user="o-push-wrong-key").exists()


async def test_a_push_without_its_signature_is_refused(client):
    resp = await client.post("/callbacks/wechat/push?signature=x&timestamp=1&nonce=2", json={"MsgType": "event"})
    assert_error(resp, 401, "PUSH_SIGNATURE_INVALID")
