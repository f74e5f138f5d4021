"""Subscribe messages (cgi-bin/message/subscribe/send), the app's templates and pages, against a real
sandbox server; the keyword value rules also directly."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from sandbox.config import DEFAULT_SUBSCRIBE_TEMPLATES, SandboxConfig, SubscribeTemplate
from sandbox.state import State
from sandbox.subscribe import get_pages, make_seed, store_pages, value_problem
from tests.sandbox.support import APPID, APPID2, REPO_ROOT, assert_wx_error

SEND = "cgi-bin/message/subscribe/send"
OPENED, DEBIT, ARREARS, LOSS_REPORTED, ID_EXPIRY, CLOSED = (t.template_id for t in DEFAULT_SUBSCRIBE_TEMPLATES)
OPENED_DATA = {
    "thing1": {"value": "二类户"},
    "character_string2": {"value": "6222****3446"},
    "time3": {"value": "2026-01-01 10:00"},
    "thing4": {"value": "请妥善保管账户信息"},
}
APP_JSON_PAGES = json.loads((REPO_ROOT / "miniprogram_stub" / "app.json").read_text(encoding="utf-8"))["pages"]


@pytest.fixture(autouse=True)
def reset_pages(sb):
    yield
    assert sb.control("DELETE", "pages").status_code == 200


def send(sb, token, **body) -> dict:
    return sb.wx_post(SEND, token, body)


def messages(sb, touser) -> list[dict]:
    r = sb.control("GET", "subscribe-messages", params={"touser": touser})
    assert r.status_code == 200
    return r.json()["messages"]


# -- templates -------------------------------------------------------------------------------


def test_default_templates_are_seeded_for_every_appid(sb):
    for appid in (APPID, APPID2):
        r = sb.control("GET", "subscribe-templates", params={"appid": appid})
        assert r.status_code == 200
        templates = {t["template_id"]: t for t in r.json()["templates"]}
        assert {OPENED, DEBIT, ARREARS, LOSS_REPORTED, ID_EXPIRY, CLOSED} <= set(templates)
        for tid in (OPENED, DEBIT, ARREARS, LOSS_REPORTED, ID_EXPIRY, CLOSED):
            assert re.fullmatch(r"[A-Za-z0-9_-]{43}", tid)  # shaped like WeChat's template ids
            assert templates[tid]["appid"] == appid and templates[tid]["source"] == "config"
        assert templates[DEBIT]["keywords"]["amount1"] == "扣款金额"
    assert sb.control("GET", "subscribe-templates", params={"appid": "wxnope"}).status_code == 400


def test_send_with_a_seeded_template_is_recorded(sb, token, user):
    sb.subscribe(user, OPENED, DEBIT)
    page = APP_JSON_PAGES[0] + "?from=notice"
    body = send(sb, token, touser=user, template_id=OPENED, page=page, data=OPENED_DATA,
                miniprogram_state="developer", lang="zh_CN")
    assert body == {"errcode": 0, "errmsg": "ok"}
    [m] = messages(sb, user)
    assert m["touser"] == user and m["template_id"] == OPENED and m["appid"] == APPID
    assert m["data"] == OPENED_DATA and m["page"] == page and m["miniprogram_state"] == "developer"
    # numbers are accepted as values of number-like keywords; no page means no jump
    debit = {"amount1": {"value": "¥12.50"}, "thing2": {"value": "ETC通行费"}, "time3": {"value": "15:01"},
             "character_string4": {"value": 3446}}
    assert send(sb, token, touser=user, template_id=DEBIT, data=debit)["errcode"] == 0
    assert messages(sb, user)[-1]["page"] is None


def test_send_errcodes(sb, token, user):
    ok_body = {"touser": user, "template_id": OPENED, "data": OPENED_DATA}
    sb.subscribe(user, OPENED)
    cases = [
        ({"touser": None}, 40003),
        ({"touser": ""}, 40003),
        ({"touser": "oUnknownUser0000000000000000"}, 40003),
        ({"touser": sb.login_code(appid=APPID2)["openid"]}, 40003),  # an openid of another app
        ({"template_id": None}, 40037),
        ({"template_id": ""}, 40037),
        ({"template_id": "TPL_no_such_template"}, 40037),
        ({"data": None}, 47003),
        ({"data": {}}, 47003),
        ({"data": {**OPENED_DATA, "thing9": {"value": "x"}}}, 47003),  # not a keyword of the template
        ({"data": {k: v for k, v in OPENED_DATA.items() if k != "thing4"}}, 47003),  # keyword missing
        ({"data": {**OPENED_DATA, "thing1": {"value": "超" * 21}}}, 47003),
        ({"data": {**OPENED_DATA, "thing1": "二类户"}}, 47003),
        ({"data": {**OPENED_DATA, "time3": {"value": "明天上午"}}}, 47003),
        ({"page": "pages/no/such"}, 41030),
        ({"page": "pages/index"}, 41030),
        ({"page": 12}, 41030),
        ({"miniprogram_state": "prod"}, 47003),
        ({"lang": "fr_FR"}, 47003),
    ]
    for change, errcode in cases:
        body = {k: v for k, v in {**ok_body, **change}.items() if v is not None}
        assert_wx_error(sb.wx_post(SEND, token, body), errcode)
    assert messages(sb, user) == []
    # the errmsg names the field, as WeChat's does
    body = sb.wx_post(SEND, token, {**ok_body, "data": {**OPENED_DATA, "thing4": {"value": ""}}})
    assert body["errmsg"].startswith("argument invalid! data.thing4.value is empty")
    assert send(sb, token, **ok_body)["errcode"] == 0  # the refused ones spent nothing


def test_register_template(sb, token, user):
    template = {"template_id": "TPL_etc_debit_failed", "title": "扣款失败提醒",
                "keywords": {"amount1": "金额", "phrase2": "状态", "date3": "日期", "name4": "户名",
                             "car_number5": "车牌", "phone_number6": "客服电话"}}
    r = sb.control("POST", "subscribe-templates", json=template)
    assert r.status_code == 201
    assert r.json() == {**template, "appid": APPID, "source": "control"}
    sb.subscribe(user, "TPL_etc_debit_failed")
    data = {"amount1": {"value": "35.00元"}, "phrase2": {"value": "扣款失败"}, "date3": {"value": "2026年1月2日"},
            "name4": {"value": "张三"}, "car_number5": {"value": "粤A8Z888挂"},
            "phone_number6": {"value": "+86-0766-66888866"}}
    assert send(sb, token, touser=user, template_id="TPL_etc_debit_failed", data=data)["errcode"] == 0
    # only for its appid
    other = sb.login_code(appid=APPID2)["openid"]
    assert_wx_error(send(sb, sb.token(APPID2), touser=other, template_id="TPL_etc_debit_failed", data=data), 40037)
    # registering again replaces it
    r = sb.control("POST", "subscribe-templates", json={**template, "keywords": {"thing1": "说明"}})
    assert r.status_code == 201
    assert_wx_error(send(sb, token, touser=user, template_id="TPL_etc_debit_failed", data=data), 47003)
    listed = sb.control("GET", "subscribe-templates").json()["templates"]
    assert [t["keywords"] for t in listed if t["template_id"] == "TPL_etc_debit_failed"] == [{"thing1": "说明"}]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"template_id": ""}, "template_id"),
        ({"template_id": "has space"}, "template_id"),
        ({"title": ""}, "title"),
        ({"keywords": {}}, "keywords"),
        ({"keywords": {"keyword1": "x"}}, "keywords"),
        ({"keywords": {"thing": "x"}}, "keywords"),
        ({"keywords": {"enum1": "x"}}, "keywords"),
        ({"keywords": {"thing1": ""}}, "keywords"),
        ({"keywords": ["thing1"]}, "keywords"),
        ({"appid": "wxnotconfigured"}, "appid"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_register_template_validation(sb, change, field):
    body = {"template_id": "TPL_valid", "title": "标题", "keywords": {"thing1": "事项"}, **change}
    r = sb.control("POST", "subscribe-templates", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "INVALID_REQUEST" and r.json()["field"] == field


# -- subscriptions: what the user accepted ---------------------------------------------------


def test_a_user_who_never_subscribed_is_refused_43101(sb, token, user):
    body = send(sb, token, touser=user, template_id=OPENED, data=OPENED_DATA)
    assert_wx_error(body, 43101)
    assert body["errmsg"].startswith("user refuse to accept the msg rid: ")  # WeChat's answer, word for word
    assert messages(sb, user) == []
    # a subscription to another template, or by another user, lets nothing through
    sb.subscribe(user, DEBIT)
    sb.subscribe(sb.login_code()["openid"], OPENED)
    assert_wx_error(send(sb, token, touser=user, template_id=OPENED, data=OPENED_DATA), 43101)
    assert messages(sb, user) == []


def test_a_one_time_subscription_lets_one_message_through_and_is_spent(sb, token, user):
    [sub] = sb.subscribe(user, OPENED)
    assert (sub["template_id"], sub["remaining"], sub["spent_at"]) == (OPENED, 1, None)
    assert send(sb, token, touser=user, template_id=OPENED, data=OPENED_DATA)["errcode"] == 0
    assert_wx_error(send(sb, token, touser=user, template_id=OPENED, data=OPENED_DATA), 43101)  # spent
    assert len(messages(sb, user)) == 1
    [spent] = sb.control("GET", "subscriptions", params={"openid": user}).json()["subscriptions"]
    assert spent["remaining"] == 0 and spent["spent_at"] >= spent["accepted_at"]
    # accepting again (another tap) lets exactly one more through; acceptances add up
    sb.subscribe(user, OPENED, times=2)
    assert [send(sb, token, touser=user, template_id=OPENED, data=OPENED_DATA)["errcode"] for _ in range(3)] == [
        0, 0, 43101]
    assert len(messages(sb, user)) == 3


def test_subscriptions_belong_to_one_app(sb, user):
    other = sb.login_code(appid=APPID2)["openid"]
    sb.subscribe(other, OPENED, appid=APPID2)
    body = {"touser": other, "template_id": OPENED, "data": OPENED_DATA}
    assert sb.wx_post(SEND, sb.token(APPID2), body)["errcode"] == 0
    assert_wx_error(sb.wx_post(SEND, sb.token(APPID2), body), 43101)


async def test_concurrent_sends_spend_one_subscription_once(sb, token, user):
    import httpx

    sb.subscribe(user, OPENED)
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(*(http.post(f"{sb.sb.wechat}/{SEND}", params={"access_token": token},
                                                   json={"touser": user, "template_id": OPENED, "data": OPENED_DATA})
                                         for _ in range(8)))
    assert sorted(a.json()["errcode"] for a in answers) == [0] + [43101] * 7
    assert len(messages(sb, user)) == 1


@pytest.mark.parametrize("body,field", [
    ({"template_ids": [OPENED]}, "openid"),
    ({"openid": "oUnknownUser0000000000000000", "template_ids": [OPENED]}, "openid"),
    ({"openid": "USER", "template_ids": []}, "template_ids"),
    ({"openid": "USER", "template_ids": [OPENED, DEBIT, ARREARS, CLOSED]}, "template_ids"),  # at most 3 a call
    ({"openid": "USER", "template_ids": ["TPL_no_such_template"]}, "template_ids"),
    ({"openid": "USER", "template_ids": [OPENED, "TPL_no_such_template"]}, "template_ids"),
    ({"openid": "USER", "template_ids": OPENED}, "template_ids"),
    ({"openid": "USER", "template_ids": [OPENED], "appid": "wxnotconfigured"}, "appid"),
    ({"openid": "USER", "template_ids": [OPENED], "count": 5}, "count"),
])
def test_subscriptions_validation(sb, token, user, body, field):
    body = {k: (user if v == "USER" else v) for k, v in body.items()}
    r = sb.control("POST", "subscriptions", json=body)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST" and r.json()["field"] == field, r.text
    # nothing was accepted, not even the known template next to an unknown one
    assert sb.control("GET", "subscriptions", params={"openid": user}).json()["subscriptions"] == []
    assert_wx_error(send(sb, token, touser=user, template_id=OPENED, data=OPENED_DATA), 43101)


# -- pages -----------------------------------------------------------------------------------


def test_pages_default_to_the_stub_app_json(sb):
    r = sb.control("GET", "pages")
    assert r.status_code == 200
    assert r.json() == {"pages": APP_JSON_PAGES, "source": "config"}


def test_pages_can_be_replaced_and_reset(sb, token, user):
    body = {"touser": user, "template_id": OPENED, "data": OPENED_DATA}
    sb.subscribe(user, OPENED, times=4)
    assert send(sb, token, **body, page="/" + APP_JSON_PAGES[0])["errcode"] == 0  # leading slash tolerated
    r = sb.control("POST", "pages", json={"pages": ["pages/home/home", "/pages/bill/detail"]})
    assert r.status_code == 200
    assert r.json() == {"pages": ["pages/home/home", "pages/bill/detail"], "source": "control"}
    assert sb.control("GET", "pages").json()["source"] == "control"
    assert_wx_error(send(sb, token, **body, page=APP_JSON_PAGES[0]), 41030)
    assert send(sb, token, **body, page="pages/bill/detail?id=7")["errcode"] == 0
    # no page registered: every page is refused, a message without one is fine
    assert sb.control("POST", "pages", json={"pages": []}).json()["pages"] == []
    assert_wx_error(send(sb, token, **body, page="pages/bill/detail"), 41030)
    assert send(sb, token, **body)["errcode"] == 0
    r = sb.control("DELETE", "pages")
    assert r.json() == {"pages": APP_JSON_PAGES, "source": "config"}
    assert send(sb, token, **body, page=APP_JSON_PAGES[-1])["errcode"] == 0


@pytest.mark.parametrize("body,field", [
    ({}, "pages"), ({"pages": "pages/index/index"}, "pages"), ({"pages": [1]}, "pages"),
    ({"pages": ["pages/a b/c"]}, "pages"), ({"pages": ["pages/a?x=1"]}, "pages"), ({"pages": [""]}, "pages"),
    ({"pages": [], "extra": 1}, "extra"),
])
def test_pages_validation(sb, body, field):
    r = sb.control("POST", "pages", json=body)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST" and r.json()["field"] == field


async def test_seed_keeps_run_time_changes_and_follows_the_config(tmp_path):
    """Opening the state writes the configured pages and templates, but not over control-API changes."""
    path = str(tmp_path / "s.sqlite3")

    async def opened(pages, templates=DEFAULT_SUBSCRIBE_TEMPLATES) -> State:
        config = SandboxConfig(state_path=path, pages=pages, subscribe_templates=list(templates))
        state = State(path, seed=make_seed(config))
        await state.open()
        return state

    state = await opened(["pages/a/a"])
    assert await get_pages(state) == {"pages": ["pages/a/a"], "source": "config"}
    await state.close()
    # the app.json changed and the server restarted: the new pages apply
    state = await opened(["pages/a/a", "pages/b/b"], [SubscribeTemplate(OPENED, "改名", {"thing1": "x"})])
    assert (await get_pages(state))["pages"] == ["pages/a/a", "pages/b/b"]
    row = await state.fetchone("SELECT title FROM subscribe_templates WHERE template_id = ?", (OPENED,))
    assert row["title"] == "改名"
    await store_pages(state, ["pages/c/c"], "control")
    await state.execute("UPDATE subscribe_templates SET source = 'control', title = 'mine' WHERE template_id = ?",
                        (OPENED,))
    await state.close()
    # a page list or template set at run time survives a restart
    state = await opened(["pages/a/a"])
    assert await get_pages(state) == {"pages": ["pages/c/c"], "source": "control"}
    row = await state.fetchone("SELECT title FROM subscribe_templates WHERE template_id = ?", (OPENED,))
    assert row["title"] == "mine"
    await state.close()


# -- keyword value rules ---------------------------------------------------------------------

FITS = [
    ("thing", "二类户开户成功"), ("thing", "a" * 20), ("thing", "ETC 通行费 #12"),
    ("number", "339208499"), ("number", "12.50"), ("number", "1" * 32),
    ("letter", "abcXYZ"), ("letter", "a" * 32),
    ("symbol", "%#"), ("symbol", "!!!!!"),
    ("character_string", "A1-b2_C3"), ("character_string", "6222****3446"),
    ("time", "15:01"), ("time", "15:01:59"), ("time", "2019年10月1日 15:01"), ("time", "2026-01-01 10:00"),
    ("time", "15:01~16:30"), ("time", "2019年10月1日 15:01~2019年10月1日 16:01"),
    ("date", "2019年10月1日"), ("date", "2019年10月"), ("date", "10月1日"), ("date", "2018-01-01"),
    ("date", "2018/01/01"), ("date", "2018.01.01"), ("date", "2018-01"), ("date", "01-01"),
    ("date", "2019年10月1日 15:01"), ("date", "2018-01-01~2018-02-01"), ("date", "02-29"),
    ("amount", "¥100.00"), ("amount", "100"), ("amount", "100元"), ("amount", "$1234567890.99"), ("amount", "￥0.5"),
    ("phone_number", "+86-0766-66888866"), ("phone_number", "13800138000"),
    ("car_number", "粤A8Z888挂"), ("car_number", "京A12345"),
    ("name", "张三"), ("name", "欧阳娜娜"), ("name", "John Smith"), ("name", "张三Li"), ("name", "阿依古丽·买买提"),
    ("phrase", "配送中"), ("phrase", "扣款成功"),
]
REFUSED = [
    ("thing", "a" * 21), ("thing", "line\nbreak"),
    ("number", "1" * 33), ("number", "12a"), ("number", "-1"), ("number", "1."),
    ("letter", "abc1"), ("letter", "a" * 33), ("letter", "汉"),
    ("symbol", "!!!!!!"), ("symbol", "a!"),
    ("character_string", "a" * 33), ("character_string", "汉字"),
    ("time", "25:00"), ("time", "12:60"), ("time", "2019年10月1日"), ("time", "tomorrow"),
    ("time", "15:01~16:30~17:00"),
    ("date", "2018-13-01"), ("date", "2018-02-30"), ("date", "15:01"), ("date", "2018-01/01"), ("date", "下周一"),
    ("amount", "12345678901"), ("amount", "1.234"), ("amount", "¥¥1"), ("amount", "1,000"), ("amount", "-5"),
    ("phone_number", "1" * 18), ("phone_number", "138abc"),
    ("car_number", "粤A8Z888挂1"), ("car_number", "粤A8汉888"), ("car_number", "粤"),
    ("name", "一二三四五六七八九十一"), ("name", "a" * 21), ("name", "Bob2"),
    ("phrase", "已扣款成功啦"), ("phrase", "ok"), ("phrase", "配送 中"),
]


@pytest.mark.parametrize("kind,value", FITS)
def test_values_that_fit(kind, value):
    assert value_problem(kind, value) is None


@pytest.mark.parametrize("kind,value", REFUSED)
def test_values_that_do_not_fit(kind, value):
    assert value_problem(kind, value)
