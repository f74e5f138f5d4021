"""Our async WeChat client and wechatpy's synchronous one, both against the emulator, agree.

wechatpy is an independent implementation of the same wire format: if our client and the emulator
shared a mistake, wechatpy would disagree with one of them.
"""

from __future__ import annotations

import asyncio

import pytest
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from integrations.wechat import WeChatAPIError
from tests.helpers import new_openid


def wechatpy_client(settings) -> WeChatClient:
    base = settings.wechat_base
    client = WeChatClient(settings.wechat_appid, settings.wechat_secret, timeout=10)
    client.API_BASE_URL = f"{base}/cgi-bin/"
    client.wxa.API_BASE_URL = f"{base}/"
    client.fetch_access_token = lambda: client._fetch_access_token(
        url=f"{base}/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": client.appid, "secret": client.secret},
    )
    return client


async def test_code2session_and_phone_agree(sandbox, ctx, settings):
    theirs = wechatpy_client(settings)
    openid = new_openid()
    unionid = "u_" + openid[1:10]
    code_a = (await sandbox.login_code(openid, unionid=unionid))["code"]
    code_b = (await sandbox.login_code(openid, unionid=unionid))["code"]

    ours = await ctx.wechat.code2session(code_a)
    # wechatpy is synchronous: run it in a thread so the in-process server keeps serving.
    wp = await asyncio.to_thread(theirs.wxa.code_to_session, code_b)
    assert (ours["openid"], ours["unionid"]) == (wp["openid"], wp["unionid"]) == (openid, unionid)
    assert ours["session_key"] and wp["session_key"]

    # Both see the same error for a used code
    with pytest.raises(WeChatAPIError) as our_err:
        await ctx.wechat.code2session(code_a)
    with pytest.raises(WeChatClientException) as their_err:
        await asyncio.to_thread(theirs.wxa.code_to_session, code_a)
    assert our_err.value.errcode == their_err.value.errcode == 40163

    phone_a = await sandbox.phone_code("13612345678")
    phone_b = await sandbox.phone_code("13612345678")
    our_phone = await ctx.wechat.get_phone_number(phone_a)
    their_phone = (await asyncio.to_thread(theirs.wxa.get_phone_number, phone_b))["phone_info"]
    assert our_phone["purePhoneNumber"] == their_phone["purePhoneNumber"] == "13612345678"
    assert our_phone["watermark"]["appid"] == their_phone["watermark"]["appid"] == settings.wechat_appid
