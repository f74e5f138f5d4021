"""Which WeChat calls may be sent again, shown on the client alone (httpx's MockTransport).

A request that never left (connection refused) is always safe to resend; after a read timeout only an
idempotent call is, since a one-shot call (a login code, a phone code, a message) may have been done
and only its reply lost."""

from __future__ import annotations

import httpx
import pytest

from integrations.wechat import MiniProgramClient, WeChatUnavailable


def _client(handler) -> tuple[MiniProgramClient, list[str]]:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return handler(request, len([p for p in seen if p == request.url.path]))

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return MiniProgramClient(base_url="http://wx.test", appid="wx1", secret="s", http=http, retries=2, backoff_s=0), seen


def _token(request):
    return httpx.Response(200, json={"access_token": "T", "expires_in": 7200})


async def test_connect_errors_are_retried_even_for_one_shot_calls():
    def handler(request, n):
        if n == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"openid": "o1", "session_key": "k"})

    client, seen = _client(handler)
    assert (await client.code2session("c"))["openid"] == "o1"
    assert seen.count("/sns/jscode2session") == 2


@pytest.mark.parametrize("fail", ["timeout", "502"])
async def test_one_shot_calls_are_sent_once(fail):
    def handler(request, n):
        if request.url.path.endswith("stable_token"):
            return _token(request)
        if fail == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(502)

    for call, path in [
        (lambda c: c.code2session("c"), "/sns/jscode2session"),
        (lambda c: c.get_phone_number("c"), "/wxa/business/getuserphonenumber"),
        (lambda c: c.send_subscribe_message(touser="o", template_id="t", data={"thing1": {"value": "x"}}),
         "/cgi-bin/message/subscribe/send"),
        (lambda c: c.face_get_verify_id(out_seq_no="s1234", cert_name="张三", cert_no="1" * 18, openid="o"),
         "/cityservice/face/identify/getverifyid"),
    ]:
        client, seen = _client(handler)
        with pytest.raises(WeChatUnavailable, match="not idempotent"):
            await call(client)
        assert seen.count(path) == 1, path


async def test_idempotent_calls_retry_timeouts_up_to_the_bound():
    def handler(request, n):
        if request.url.path.endswith("stable_token"):
            return _token(request)
        raise httpx.ReadTimeout("slow", request=request)

    client, seen = _client(handler)
    with pytest.raises(WeChatUnavailable):
        await client.face_query_verify_info(verify_id="v", out_seq_no="s", cert_name="张三", cert_no="1" * 18, openid="o")
    assert seen.count("/cityservice/face/identify/queryverifyinfo") == 3


async def test_busy_minus_one_is_retried_for_every_call():
    def handler(request, n):
        if n == 1:
            return httpx.Response(200, json={"errcode": -1, "errmsg": "system error"})
        return httpx.Response(200, json={"openid": "o1", "session_key": "k"})

    client, seen = _client(handler)
    assert (await client.code2session("c"))["openid"] == "o1"
    assert seen.count("/sns/jscode2session") == 2
