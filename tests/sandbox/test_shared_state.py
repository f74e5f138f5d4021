"""State lives in the SQLite file, not in process memory: two sandbox processes share one state file,
as several backend workers mounting the blueprint would."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.sandbox.support import APPID, CARDNET_KEY, SECRET, start_sandbox, stop_sandbox


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
        for _ in range(2):  # the user accepted the template twice, through process a
            r = await http.post(f"{a.control}/subscriptions", json={"openid": openid, "template_ids": ["TPL_shared"]})
            assert r.status_code == 200
        body = {"touser": openid, "template_id": "TPL_shared", "data": {"thing1": {"value": "hi"}}}
        url = f"{b.wechat}/cgi-bin/message/subscribe/send"
        r = await http.post(url, params={"access_token": token}, json={**body, "page": "pages/shared/shared"})
        assert r.json()["errcode"] == 0
        r = await http.post(url, params={"access_token": token}, json={**body, "page": "pages/index/index"})
        assert r.json()["errcode"] == 41030
        await http.delete(f"{b.control}/pages")
        r = await http.post(url, params={"access_token": token}, json={**body, "page": "pages/index/index"})
        assert r.json()["errcode"] == 0


async def test_transfer_duplicates_across_processes_move_money_once(pair):
    """The same request_id reaching two worker processes at once: one pull, one stored answer."""
    a, b = pair
    card = "6222020200112233446"
    auth = {"Authorization": f"Bearer {CARDNET_KEY}"}
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{a.control}/bank-cards", json={
            "card_number": card, "name": "张三", "id_number": "11010119900307123X", "phone": "13812345678",
            "card_class": "I", "balance_fen": 100_00})
        assert r.status_code == 201
        body = {"request_id": "shared-pull-1", "card_number": card, "direction": "debit", "amount_fen": 60_00}
        responses = await asyncio.gather(
            *(http.post(f"{srv.cardnet}/v1/transfers", json=body, headers=auth) for srv in (a, b) * 8)
        )
        answers = [r.json() for r in responses]
        assert all(x == answers[0] for x in answers), answers
        assert answers[0]["status"] == "SUCCEEDED" and answers[0]["card_balance_fen"] == 40_00
        # distinct pulls on both processes at once never overdraw the card
        pulls = [{**body, "request_id": f"shared-pull-{i}", "amount_fen": 10_00} for i in range(2, 10)]
        responses = await asyncio.gather(
            *(http.post(f"{srv.cardnet}/v1/transfers", json=p, headers=auth) for srv, p in zip((a, b) * 4, pulls))
        )
        assert sum(r.json()["status"] == "SUCCEEDED" for r in responses) == 4
        assert (await http.get(f"{b.control}/bank-cards/{card}")).json()["balance_fen"] == 0
        log = (await http.get(f"{a.control}/transfers", params={"card_number": card})).json()["transfers"]
        assert [t["request_id"] for t in log].count("shared-pull-1") == 1
        assert sum(t["status"] == "SUCCEEDED" for t in log) == 5
