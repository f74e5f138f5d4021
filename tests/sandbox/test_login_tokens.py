"""Login (jscode2session) and access tokens (cgi-bin/token, cgi-bin/stable_token) on a real sandbox server."""

from __future__ import annotations

import asyncio
import base64
import re

import httpx

from tests.sandbox.support import APPID, APPID2, SECRET, SECRET2, assert_wx_error


def test_code2session_returns_openid_and_session_key(sb):
    minted = sb.login_code()
    assert re.fullmatch(r"o[A-Za-z0-9_-]{27}", minted["openid"])
    body = sb.code2session(minted["code"])
    assert body["openid"] == minted["openid"]
    assert len(base64.b64decode(body["session_key"], validate=True)) == 16
    assert "unionid" not in body
    assert "errcode" not in body


def test_code2session_unionid_only_when_minted_with_one(sb):
    minted = sb.login_code(openid="oFixedOpenid_for_unionid_test1", unionid="uSandboxUnion1")
    assert minted["openid"] == "oFixedOpenid_for_unionid_test1"
    body = sb.code2session(minted["code"])
    assert body["openid"] == "oFixedOpenid_for_unionid_test1"
    assert body["unionid"] == "uSandboxUnion1"


def test_code_is_single_use(sb):
    code = sb.login_code()["code"]
    first = sb.code2session(code)
    assert "openid" in first
    assert_wx_error(sb.code2session(code), 40163)
    assert_wx_error(sb.code2session(code), 40163)


def test_session_keys_differ_between_logins(sb):
    openid = sb.login_code()["openid"]
    a = sb.code2session(sb.login_code(openid=openid)["code"])
    b = sb.code2session(sb.login_code(openid=openid)["code"])
    assert a["openid"] == b["openid"] == openid
    assert a["session_key"] != b["session_key"]


async def test_concurrent_use_of_one_code_succeeds_once(sb, sandbox):
    code = sb.login_code()["code"]
    params = {"appid": APPID, "secret": SECRET, "js_code": code, "grant_type": "authorization_code"}
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(client.get(f"{sandbox.wechat}/sns/jscode2session", params=params) for _ in range(12))
        )
    bodies = [r.json() for r in responses]
    assert sum("openid" in b for b in bodies) == 1, bodies
    assert sorted(b.get("errcode") for b in bodies if "openid" not in b) == [40163] * 11


def test_expired_and_unknown_codes(sb):
    expired = sb.login_code(expires_in=0)["code"]
    assert_wx_error(sb.code2session(expired), 40029)
    assert_wx_error(sb.code2session("0" * 32), 40029)


def test_code_belongs_to_its_appid(sb):
    code = sb.login_code(appid=APPID2)["code"]
    assert_wx_error(sb.code2session(code, appid=APPID), 40029)
    body = sb.code2session(code, appid=APPID2)
    assert "openid" in body
    # other app's code was not consumed by the failed attempt, but is now
    assert_wx_error(sb.code2session(code, appid=APPID2), 40163)


def test_wrong_secret_and_appid(sb):
    code = sb.login_code()["code"]
    assert_wx_error(sb.code2session(code, secret="wrong-secret"), 40125)
    assert_wx_error(sb.code2session(code, appid="wxunknown", secret=SECRET), 40013)
    # the failed attempts did not consume the code
    assert "openid" in sb.code2session(code)


def test_bad_grant_type_and_missing_params(sb, sandbox, http):
    code = sb.login_code()["code"]
    r = http.get(
        f"{sandbox.wechat}/sns/jscode2session",
        params={"appid": APPID, "secret": SECRET, "js_code": code, "grant_type": "password"},
    )
    assert_wx_error(r.json(), 40002)
    r = http.get(f"{sandbox.wechat}/sns/jscode2session", params={"secret": SECRET, "js_code": code})
    assert_wx_error(r.json(), 41002)
    r = http.get(
        f"{sandbox.wechat}/sns/jscode2session",
        params={"appid": APPID, "secret": SECRET, "grant_type": "authorization_code"},
    )
    assert_wx_error(r.json(), 41008)


def test_control_login_code_validation(sb):
    assert sb.control("POST", "login-code", json={"appid": "wxnotconfigured"}).status_code == 400
    r = sb.control("POST", "login-code", json={"expires_in": -1})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST" and r.json()["field"] == "expires_in"
    r = sb.control("POST", "login-code", content=b"not json")
    assert r.status_code == 400 and set(r.json()) >= {"code", "message"}


# -- tokens ------------------------------------------------------------------------------------


def phone_call(sb, token: str, appid: str = APPID) -> dict:
    """A cheap token-checked API call: succeeds only with a valid token of ``appid``."""
    code = sb.phone_code("13800001111", appid=appid)
    return sb.wx_post("wxa/business/getuserphonenumber", token, {"code": code})


def test_cgi_bin_token_issues_new_tokens_and_keeps_previous_briefly(sb):
    t1 = sb.token()
    t2 = sb.token()
    assert t1 != t2
    # the previous one keeps working during the 5-minute overlap
    assert phone_call(sb, t1)["errcode"] == 0
    assert phone_call(sb, t2)["errcode"] == 0


def test_cgi_bin_token_errors(sb, sandbox, http):
    url = f"{sandbox.wechat}/cgi-bin/token"
    r = http.get(url, params={"grant_type": "client_credential", "appid": APPID, "secret": "nope"})
    assert_wx_error(r.json(), 40125)
    r = http.get(url, params={"grant_type": "client_credential", "appid": "wxnope", "secret": SECRET})
    assert_wx_error(r.json(), 40013)
    r = http.get(url, params={"appid": APPID, "secret": SECRET})
    assert_wx_error(r.json(), 40002)


def stable(http, sandbox, appid=APPID, secret=SECRET, **extra) -> dict:
    r = http.post(
        f"{sandbox.wechat}/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": appid, "secret": secret, **extra},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_stable_token_same_twice_and_force_refresh(sb, sandbox, http):
    sb.control("POST", "settings", json={"stable_token_refresh_interval_s": 30, "stable_token_daily_force_limit": 20})
    a = stable(http, sandbox, appid=APPID2, secret=SECRET2)
    b = stable(http, sandbox, appid=APPID2, secret=SECRET2)
    assert a["access_token"] == b["access_token"]
    assert 300 <= b["expires_in"] <= 7200
    # separate from cgi-bin/token
    assert a["access_token"] != sb.token(APPID2)
    forced = stable(http, sandbox, appid=APPID2, secret=SECRET2, force_refresh=True)
    assert forced["access_token"] != a["access_token"]
    assert forced["expires_in"] == 7200
    # normal mode now hands out the new one
    assert stable(http, sandbox, appid=APPID2, secret=SECRET2)["access_token"] == forced["access_token"]
    # both old (within its 5-minute overlap) and new work for API calls
    assert phone_call(sb, a["access_token"], APPID2)["errcode"] == 0
    assert phone_call(sb, forced["access_token"], APPID2)["errcode"] == 0
    # a phone code of one app cannot be redeemed with another app's token
    assert_wx_error(phone_call(sb, forced["access_token"], APPID), 40029)
    # a second forced refresh within 30 s is refused
    assert_wx_error(stable(http, sandbox, appid=APPID2, secret=SECRET2, force_refresh=True), 45011)


def test_stable_token_force_refresh_limits_are_configurable(sb, sandbox, http):
    r = sb.control("POST", "settings", json={"stable_token_refresh_interval_s": 0, "stable_token_daily_force_limit": 3})
    assert r.json() == {"stable_token_refresh_interval_s": 0, "stable_token_daily_force_limit": 3}
    try:
        tokens = set()
        # APPID may already have forced refreshes from other tests in this module: count what is left
        for _ in range(3):
            body = stable(http, sandbox, force_refresh=True)
            if body.get("errcode") == 45009:
                break
            tokens.add(body["access_token"])
        assert tokens, "no forced refresh succeeded"
        assert_wx_error(stable(http, sandbox, force_refresh=True), 45009)
    finally:
        sb.control("POST", "settings", json={"stable_token_refresh_interval_s": 30, "stable_token_daily_force_limit": 20})


def test_stable_token_errors(sb, sandbox, http):
    assert_wx_error(stable(http, sandbox, secret="bad"), 40125)
    assert_wx_error(stable(http, sandbox, appid="wxnope"), 40013)
    assert_wx_error(stable(http, sandbox, force_refresh="yes"), 47001)
    r = http.post(f"{sandbox.wechat}/cgi-bin/stable_token", content=b"{oops")
    assert_wx_error(r.json(), 47001)
    # GET on a POST API answers 43002 like WeChat
    assert_wx_error(http.get(f"{sandbox.wechat}/cgi-bin/stable_token").json(), 43002)


def test_expired_unknown_and_missing_tokens(sb, sandbox, http):
    token = sb.token()
    stable_token = stable(http, sandbox)["access_token"]
    assert phone_call(sb, token)["errcode"] == 0
    r = sb.control("POST", "expire-tokens", json={"appid": APPID})
    assert r.status_code == 200 and r.json()["expired"] >= 2
    assert_wx_error(phone_call(sb, token), 42001)
    assert_wx_error(phone_call(sb, stable_token), 42001)
    assert_wx_error(phone_call(sb, "not-a-token"), 40001)
    # a missing access_token is 41001 "access_token missing", not 40001 (global error codes)
    r = http.post(f"{sandbox.wechat}/wxa/business/getuserphonenumber", json={"code": "x"})
    assert_wx_error(r.json(), 41001)
    assert "access_token missing" in r.json()["errmsg"]
    r = http.post(f"{sandbox.wechat}/wxa/business/getuserphonenumber", params={"access_token": ""}, json={"code": "x"})
    assert_wx_error(r.json(), 41001)
    # fresh tokens work again; the stable endpoint issues a new one since the old expired
    assert phone_call(sb, sb.token())["errcode"] == 0
    fresh = stable(http, sandbox)["access_token"]
    assert fresh != stable_token and phone_call(sb, fresh)["errcode"] == 0


def test_calls_are_logged(sb):
    before = len(sb.calls("sns/jscode2session"))
    sb.code2session("nonexistent-code")
    sb.code2session(sb.login_code()["code"])
    calls = sb.calls("/sandbox/wechat/sns/jscode2session")
    assert len(calls) == before + 2
    assert [c["errcode"] for c in calls[-2:]] == [40029, 0]
    assert all(c["path"] == "sns/jscode2session" and c["http_status"] == 200 for c in calls)
    assert calls[-1]["at"] >= calls[-2]["at"]
