"""State lives in the SQLite file, not in process memory: two sandbox processes share one state file,
as several backend workers mounting the blueprint would."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.sandbox.support import APPID, SECRET, start_sandbox, stop_sandbox


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shared")
    state = tmp / "shared.sqlite3"
    a = start_sandbox(state, tmp / "a.log")
    try:
        b = start_sandbox(state, tmp / "b.log")
    except Exception:
        stop_sandbox(a.proc)
        raise
    yield a, b
    stop_sandbox(a.proc)
    stop_sandbox(b.proc)
    assert a.proc.returncode == 0 and b.proc.returncode == 0


async def test_codes_tokens_and_faults_are_shared(pair):
    a, b = pair
    async with httpx.AsyncClient(timeout=30) as http:
        code = (await http.post(f"{a.control}/login-code", json={})).json()["code"]
        params = {"appid": APPID, "secret": SECRET, "js_code": code, "grant_type": "authorization_code"}
        # the same code redeemed concurrently on both processes: exactly one success
        responses = await asyncio.gather(
            *(http.get(f"{srv.wechat}/sns/jscode2session", params=params) for srv in (a, b) * 4)
        )
        bodies = [r.json() for r in responses]
        assert sum("openid" in x for x in bodies) == 1, bodies
        assert all(x.get("errcode") == 40163 for x in bodies if "openid" not in x)

        # a token issued by A is accepted by B; expiring through B expires it for A
        token = (await http.get(f"{a.wechat}/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": APPID, "secret": SECRET})).json()["access_token"]
        phone_code = (await http.post(f"{a.control}/phone-code", json={"phone": "13512345678"})).json()["code"]
        r = await http.post(f"{b.wechat}/wxa/business/getuserphonenumber",
                            params={"access_token": token}, json={"code": phone_code})
        assert r.json()["phone_info"]["phoneNumber"] == "13512345678"
        await http.post(f"{b.control}/expire-tokens", json={})
        r = await http.post(f"{a.wechat}/wxa/business/getuserphonenumber",
                            params={"access_token": token}, json={"code": phone_code})
        assert r.json()["errcode"] == 42001

        # stable token: same on both
        body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
        s1 = (await http.post(f"{a.wechat}/cgi-bin/stable_token", json=body)).json()["access_token"]
        s2 = (await http.post(f"{b.wechat}/cgi-bin/stable_token", json=body)).json()["access_token"]
        assert s1 == s2

        # a fault set through A fires once, on whichever process is called
        await http.post(f"{a.control}/faults", json={"path": "cgi-bin/stable_token", "errcode": 45009})
        r1 = (await http.post(f"{b.wechat}/cgi-bin/stable_token", json=body)).json()
        r2 = (await http.post(f"{a.wechat}/cgi-bin/stable_token", json=body)).json()
        assert r1["errcode"] == 45009 and r2["access_token"] == s1

        # and both logged their calls into the same table
        calls = (await http.get(f"{b.control}/calls", params={"path": "sns/jscode2session"})).json()["calls"]
        assert len(calls) == 8


async def test_templates_and_pages_are_shared(pair):
    a, b = pair
    async with httpx.AsyncClient(timeout=30) as http:
        openid = (await http.post(f"{a.control}/login-code", json={})).json()["openid"]
        token = (await http.get(f"{b.wechat}/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": APPID, "secret": SECRET})).json()["access_token"]
        r = await http.post(f"{a.control}/subscribe-templates",
                            json={"template_id": "TPL_shared", "title": "共享", "keywords": {"thing1": "内容"}})
        assert r.status_code == 201
        r = await http.post(f"{a.control}/pages", json={"pages": ["pages/shared/shared"]})
        assert r.status_code == 200
        assert (await http.get(f"{b.control}/pages")).json() == {"pages": ["pages/shared/shared"], "source": "control"}
        body = {"touser": openid, "template_id": "TPL_shared", "data": {"thing1": {"value": "hi"}}}
        url = f"{b.wechat}/cgi-bin/message/subscribe/send"
        r = await http.post(url, params={"access_token": token}, json={**body, "page": "pages/shared/shared"})
        assert r.json()["errcode"] == 0
        r = await http.post(url, params={"access_token": token}, json={**body, "page": "pages/index/index"})
        assert r.json()["errcode"] == 41030
        await http.delete(f"{b.control}/pages")
        r = await http.post(url, params={"access_token": token}, json={**body, "page": "pages/index/index"})
        assert r.json()["errcode"] == 0
