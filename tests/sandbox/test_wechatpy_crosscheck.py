"""Cross-check: wechatpy 2.0.0a26's synchronous WeChatClient, an independent client, talks to the sandbox.

wechatpy hard-codes the token URL in ``fetch_access_token`` and puts its base URLs in class
attributes (wire doc section 1), so the client and its ``wxa`` API are re-pointed per instance.
"""

from __future__ import annotations

import base64

import pytest
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from tests.sandbox.support import APPID, SECRET


def sandbox_client(sandbox) -> WeChatClient:
    client = WeChatClient(APPID, SECRET, timeout=30)
    client.API_BASE_URL = f"{sandbox.wechat}/cgi-bin/"
    client.wxa.API_BASE_URL = f"{sandbox.wechat}/"

    def fetch_access_token():
        return client._fetch_access_token(
            url=f"{sandbox.wechat}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": client.appid, "secret": client.secret},
        )

    client.fetch_access_token = fetch_access_token
    return client


def test_wechatpy_code_to_session_and_phone(sb, sandbox):
    client = sandbox_client(sandbox)
    before_token_calls = len(sb.calls("cgi-bin/token"))
    minted = sb.login_code(unionid="uWechatpyCross1")
    session = client.wxa.code_to_session(minted["code"])
    assert session["openid"] == minted["openid"]
    assert session["unionid"] == "uWechatpyCross1"
    assert len(base64.b64decode(session["session_key"])) == 16
    # wechatpy fetched a token (through our override) before calling jscode2session
    assert len(sb.calls("cgi-bin/token")) == before_token_calls + 1

    phone = client.wxa.get_phone_number(sb.phone_code("15012345678"))
    assert phone["errcode"] == 0
    assert phone["phone_info"]["purePhoneNumber"] == "15012345678"
    assert phone["phone_info"]["watermark"]["appid"] == APPID

    with pytest.raises(WeChatClientException) as exc:
        client.wxa.code_to_session(minted["code"])
    assert exc.value.errcode == 40163


def test_wechatpy_retries_after_token_expiry(sb, sandbox):
    client = sandbox_client(sandbox)
    client.wxa.get_phone_number(sb.phone_code("15012345679"))  # obtains a token
    sb.control("POST", "expire-tokens", json={"appid": APPID})
    before = len(sb.calls("cgi-bin/token"))
    # 42001 makes wechatpy fetch a new token and retry
    phone = client.wxa.get_phone_number(sb.phone_code("15012345670"))
    assert phone["phone_info"]["phoneNumber"] == "15012345670"
    assert len(sb.calls("cgi-bin/token")) == before + 1
    errcodes = [c["errcode"] for c in sb.calls("wxa/business/getuserphonenumber")[-2:]]
    assert errcodes == [42001, 0]


def test_wechatpy_subscribe_and_ocr(sb, sandbox):
    client = sandbox_client(sandbox)
    openid = sb.login_code()["openid"]
    r = sb.control("POST", "subscribe-templates", json={"template_id": "TPL_x", "title": "问候", "keywords": {"thing1": "内容"}})
    assert r.status_code == 201
    sb.subscribe(openid, "TPL_x")
    client.wxa.send_subscribe_message(openid, "TPL_x", {"thing1": {"value": "你好"}}, page="pages/index/index")
    msgs = sb.control("GET", "subscribe-messages", params={"touser": openid}).json()["messages"]
    assert [(m["template_id"], m["page"], m["data"]) for m in msgs] == [("TPL_x", "pages/index/index", {"thing1": {"value": "你好"}})]
    with pytest.raises(WeChatClientException) as exc:
        client.wxa.send_subscribe_message(openid, "TPL_x", {"thing1": {"value": "你好"}}, page="pages/nope/nope")
    assert exc.value.errcode == 41030

    image = sb.control("POST", "id-card-images", json={
        "side": "front", "name": "赵六", "id_number": "11010519491231002X", "valid_until": "长期",
    }).content
    result = client.wxa.ocr_idcard(mode="photo", filename="card.png", file_bytes=image, mime_type="image/png")
    assert result["type"] == "Front" and result["name"] == "赵六" and result["gender"] == "女"
    with pytest.raises(WeChatClientException) as exc:
        client.wxa.ocr_idcard(img_url="https://example.com/card.png")
    assert exc.value.errcode == 101003
