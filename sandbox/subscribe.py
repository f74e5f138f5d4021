"""Emulated subscribe messages (``POST /cgi-bin/message/subscribe/send``), the app's templates and pages.

WeChat docs:
- https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/mp-message-management/subscribe-message/sendMessage.html
  (also https://developers.weixin.qq.com/miniprogram/dev/server/API/mp-message-management/subscribe-message/api_sendmessage):
  errcodes 40003 "touser 字段 openid 为空或者不正确", 40037 "订阅模板 id 为空不正确", 47003 "模板参数不准确,
  可能为空或者不满足规则,errmsg 会提示具体是哪个字段出错", 41030 "page 路径不正确,需要保证在现网版本小程序
  中存在,与 app.json 保持一致", and the value rules of its section "订阅消息参数值内容限制说明".

Checks, in this order (the first failure answers):
1. body: empty → 44002, not a JSON object → 47001;
2. ``touser`` missing, empty or not a string → 40003;
3. ``template_id`` missing, empty or not a string → 40037;
4. ``touser`` not an openid known on the token's appid (no login code was minted for it) → 40003;
5. ``template_id`` not a template of that appid (seeded from ``SandboxConfig.subscribe_templates``
   or registered with ``POST /sandbox/control/subscribe-templates``) → 40037;
6. ``data`` (47003, errmsg naming the field as WeChat does, e.g. ``data.thing1.value is empty``):
   must be an object of ``{"<key>": {"value": ...}}``; every key must be a keyword of the template,
   and every keyword of the template must be given (a missing one is reported as empty); each value
   (a string, or a number for convenience) must fit its keyword type (the prefix of the key):

   - ``thing``: at most 20 characters (汉字, digits, letters, symbols);
   - ``number``: digits with an optional decimal part, at most 32 digits;
   - ``letter``: at most 32 letters (A-Z, a-z);
   - ``symbol``: at most 5 symbols;
   - ``character_string``: at most 32 digits, letters or symbols;
   - ``time``: 24-hour ``HH:MM`` or ``HH:MM:SS``, optionally after a date (``2019年10月1日 15:01``);
   - ``date``: ``y年m月d日``, ``y年m月``, ``m月d日``, or joined by ``-``, ``/`` or ``.``
     (``2018-01-01``, ``2018/01/01``, ``2018.01.01``, ``2018-01``, ``01-01``), optionally followed
     by a time. ``time`` and ``date`` may be a period: two points joined by ``~``;
   - ``amount``: an optional currency symbol (``¥ ￥ $ € £ ₩ ₽ ₹``), at most 10 digits, at most 2
     decimals, an optional final ``元``;
   - ``phone_number``: at most 17 digits and symbols (``+86-0766-66888866``);
   - ``car_number``: at most 8 characters, the first and the last may be 汉字, the others letters
     or digits (``粤A8Z888挂``);
   - ``name``: at most 10 characters when it holds 汉字 (汉字, letters, symbols), else at most 20
     letters or symbols (spaces allowed between words);
   - ``phrase``: at most 5 汉字.

   "Symbol" means what WeChat says: a common character that is not 汉字, a letter or a digit;
   control characters such as a line feed are refused in every type;
7. ``page``: the path before ``?`` (a leading ``/`` is tolerated) must be one of the mini-program's
   pages, else 41030; an absent or empty ``page`` means "no jump" and is fine. The pages come from
   ``SandboxConfig.pages`` (by default ``miniprogram_stub/app.json``, see :mod:`sandbox.config`) and
   can be replaced with ``POST /sandbox/control/pages``. No pages registered → every page is 41030;
8. ``miniprogram_state`` not developer/trial/formal, or ``lang`` not zh_CN/en_US/zh_HK/zh_TW → 47003;
9. the user holds no unspent acceptance of the template → 43101 "user refuse to accept the msg", as
   WeChat answers it. A user accepts one-time templates in the dialog ``wx.requestSubscribeMessage``
   opens on a tap (https://developers.weixin.qq.com/miniprogram/dev/api/open-api/subscribe-message/wx.requestSubscribeMessage.html);
   the mini-program stub's wx shim tells the emulator with ``POST /sandbox/control/subscriptions
   {openid, template_ids}``. Each acceptance lets exactly one message of that template through (they
   add up: accepting twice allows two), and the message that passes spends it in the transaction that
   records it.

Sandbox choices where WeChat documents nothing: the order above (a malformed message is refused for
what it is, subscribed or not, and spends nothing); requiring every keyword. Long-term subscriptions
(templates of the categories WeChat allows them for) are not emulated: every template is one-time.

Templates and pages live in the state DB (several worker processes share them). Values from the
configuration are written by every process when it opens the DB, except where the control API has
changed them at run time (rows marked ``source = 'control'``), so editing ``app.json`` and restarting
takes effect while a page list set through the control API survives until ``DELETE
/sandbox/control/pages``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import unicodedata
from typing import Any

from pydantic import Field, field_validator
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from sandbox.config import KEYWORD_KEY_RE, KEYWORD_TYPES, SandboxConfig
from sandbox.control_kit import Body, ControlRoutes, answer, appid_of, bad, parse
from sandbox.state import State, Tx
from sandbox.wxcommon import WxError, add_wechat_api, dumps, ok, parse_json_body

MINIPROGRAM_STATES = {"developer", "trial", "formal"}
LANGS = {"zh_CN", "en_US", "zh_HK", "zh_TW"}
PAGES_KEY = "pages"
CURRENCY_SYMBOLS = "¥￥$€£₩₽₹"

TEMPLATE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
PAGE_RE = re.compile(r"^[A-Za-z0-9_\-.@]+(/[A-Za-z0-9_\-.@]+)*$")
MAX_KEYWORDS = 10
MAX_PAGES = 500
MAX_TEMPLATES_PER_REQUEST = 3  # wx.requestSubscribeMessage: tmplIds holds at most 3 ids


# -- keyword values --------------------------------------------------------------------------


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _is_letter(ch: str) -> bool:
    return ("A" <= ch <= "Z") or ("a" <= ch <= "z")


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_symbol(ch: str) -> bool:
    """A common character that is neither 汉字 nor a letter nor a digit (nor a space or control)."""
    return ch.isprintable() and not ch.isspace() and not ch.isalnum()


_DATE_FORMS = (
    re.compile(r"(?P<y>\d{4})年(?P<m>\d{1,2})月(?P<d>\d{1,2})日"),
    re.compile(r"(?P<y>\d{4})年(?P<m>\d{1,2})月"),
    re.compile(r"(?P<m>\d{1,2})月(?P<d>\d{1,2})日"),
    re.compile(r"(?P<y>\d{4})(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})"),
    re.compile(r"(?P<m>\d{1,2})[-/.](?P<d>\d{1,2})"),
)
_TIME_AT_END = re.compile(r"(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?$")
_NUMBER_RE = re.compile(r"^\d+(\.\d+)?$")
_AMOUNT_RE = re.compile(rf"^[{CURRENCY_SYMBOLS}]?\d{{1,10}}(\.\d{{1,2}})?元?$")


def _date_ok(text: str) -> bool:
    for form in _DATE_FORMS:
        m = form.fullmatch(text)
        if m is None:
            continue
        parts = m.groupdict()
        month = int(parts["m"])
        day = int(parts["d"]) if parts.get("d") else 1
        year = int(parts["y"]) if parts.get("y") else 2000  # a leap year: 02-29 without a year is fine
        try:
            dt.date(year, month, day)
        except ValueError:
            return False
        return True
    return False


def _point_ok(text: str, kind: str) -> bool:
    """One point in time: ``time`` needs the clock time (date optional), ``date`` the date (time optional)."""
    text = text.strip()
    m = _TIME_AT_END.search(text)
    if m is not None:
        if int(m["H"]) > 23 or int(m["M"]) > 59 or (m["S"] is not None and int(m["S"]) > 59):
            return False
        date_part = text[: m.start()].strip()
        if not date_part:
            return kind == "time"
        return _date_ok(date_part)
    return kind == "date" and _date_ok(text)


def value_problem(kind: str, value: str) -> str | None:
    """Why ``value`` does not fit keyword type ``kind`` (None when it fits)."""
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        return "contains a control character"
    n = len(value)
    if kind == "thing":
        return None if n <= 20 else "thing is at most 20 characters"
    if kind == "number":
        digits = sum(_is_digit(ch) for ch in value)
        return None if _NUMBER_RE.fullmatch(value) and digits <= 32 else "number is at most 32 digits, with an optional decimal part"
    if kind == "letter":
        return None if n <= 32 and all(_is_letter(ch) for ch in value) else "letter is at most 32 letters"
    if kind == "symbol":
        return None if n <= 5 and all(_is_symbol(ch) for ch in value) else "symbol is at most 5 symbols"
    if kind == "character_string":
        fits = n <= 32 and all(_is_letter(ch) or _is_digit(ch) or _is_symbol(ch) for ch in value)
        return None if fits else "character_string is at most 32 digits, letters or symbols"
    if kind in ("time", "date"):
        points = value.split("~")
        if len(points) <= 2 and all(_point_ok(p, kind) for p in points):
            return None
        return f"{kind} is not in a format WeChat accepts"
    if kind == "amount":
        return None if _AMOUNT_RE.fullmatch(value) else "amount is a currency symbol, at most 10 digits and 2 decimals, optional 元"
    if kind == "phone_number":
        fits = n <= 17 and any(_is_digit(ch) for ch in value) and all(_is_digit(ch) or _is_symbol(ch) for ch in value)
        return None if fits else "phone_number is at most 17 digits and symbols"
    if kind == "car_number":
        inner = value[1:-1] if n >= 2 else ""
        fits = (
            2 <= n <= 8
            and (_is_cjk(value[0]) or _is_letter(value[0]) or _is_digit(value[0]))
            and (_is_cjk(value[-1]) or _is_letter(value[-1]) or _is_digit(value[-1]))
            and all(_is_letter(ch) or _is_digit(ch) for ch in inner)
        )
        return None if fits else "car_number is at most 8 characters, 汉字 only first and last"
    if kind == "name":
        if any(_is_digit(ch) for ch in value):
            return "name has no digits"
        if any(_is_cjk(ch) for ch in value):
            fits = n <= 10 and all(_is_cjk(ch) or _is_letter(ch) or _is_symbol(ch) for ch in value)
            return None if fits else "name is at most 10 汉字"
        fits = n <= 20 and any(_is_letter(ch) for ch in value) and all(
            _is_letter(ch) or _is_symbol(ch) or ch == " " for ch in value
        )
        return None if fits else "name is at most 20 letters or symbols"
    if kind == "phrase":
        return None if n <= 5 and all(_is_cjk(ch) for ch in value) else "phrase is at most 5 汉字"
    return f"unknown keyword type {kind}"


def check_data(keywords: dict[str, str], data: Any) -> None:
    """Raise 47003 unless ``data`` fills exactly the template's keywords with fitting values."""
    if not isinstance(data, dict) or not data:
        raise WxError(47003, "data is empty")
    for key in data:
        if key not in keywords:
            raise WxError(47003, f"data.{key} is not a keyword of the template")
    for key in keywords:
        item = data.get(key)
        if item is None:
            raise WxError(47003, f"data.{key}.value is empty")
        if not isinstance(item, dict):
            raise WxError(47003, f"data.{key} must be an object with a value")
        value = item.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if value is None or value == "":
            raise WxError(47003, f"data.{key}.value is empty")
        if not isinstance(value, str):
            raise WxError(47003, f"data.{key}.value invalid")
        kind = KEYWORD_KEY_RE.fullmatch(key).group(1)  # type: ignore[union-attr]  # keys were checked on registration
        problem = value_problem(kind, value)
        if problem:
            raise WxError(47003, f"data.{key}.value invalid: {problem}")


# -- pages -----------------------------------------------------------------------------------


def page_path(page: str) -> str:
    """``/pages/a/a?x=1`` → ``pages/a/a``."""
    return page.split("?", 1)[0].strip().lstrip("/")


async def get_pages(state: State) -> dict[str, Any]:
    """``{"pages": [...], "source": "config"|"control"}`` as stored in the DB."""
    row = await state.fetchone("SELECT value FROM settings WHERE key = ?", (PAGES_KEY,))
    if row is None:  # the DB is seeded when opened, so this is only a safety net
        return {"pages": [], "source": "config"}
    return json.loads(row["value"])


async def store_pages(db: State | Tx, pages: list[str], source: str) -> dict[str, Any]:
    value = {"pages": pages, "source": source}
    await db.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (PAGES_KEY, dumps(value)),
    )
    return value


class PagesBody(Body):
    """``POST /sandbox/control/pages``: the mini-program's pages, replacing the configured ones."""

    pages: list[Any] = Field(max_length=MAX_PAGES,
                             description=f"pages must be a list of at most {MAX_PAGES} page paths")

    @field_validator("pages")
    @classmethod
    def page_paths(cls, pages: list[Any]) -> list[str]:
        for page in pages:
            if not isinstance(page, str) or len(page) > 256 or not PAGE_RE.fullmatch(page.lstrip("/")):
                raise ValueError(f"{page!r} is not a page path like pages/index/index")
        return list(dict.fromkeys(page.lstrip("/") for page in pages))


# -- templates -------------------------------------------------------------------------------


def template_row(row) -> dict[str, Any]:
    return {
        "appid": row["appid"],
        "template_id": row["template_id"],
        "title": row["title"],
        "keywords": json.loads(row["keywords_json"]),
        "source": row["source"],
    }


async def find_template(state: State, appid: str, template_id: str) -> dict[str, str] | None:
    row = await state.fetchone(
        "SELECT keywords_json FROM subscribe_templates WHERE appid = ? AND template_id = ?", (appid, template_id)
    )
    return None if row is None else json.loads(row["keywords_json"])


async def store_template(
    db: State | Tx, appid: str, template_id: str, title: str, keywords: dict[str, str], source: str
) -> None:
    """Insert or replace a template; a ``config`` write never replaces one registered through the control API."""
    guard = "WHERE subscribe_templates.source = 'config'" if source == "config" else ""
    await db.execute(
        "INSERT INTO subscribe_templates (appid, template_id, title, keywords_json, source, updated_at) "  # nosec B608
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (appid, template_id) DO UPDATE SET title = excluded.title, "
        "keywords_json = excluded.keywords_json, source = excluded.source, updated_at = excluded.updated_at "
        + guard,
        (appid, template_id, title, dumps(keywords), source, time.time()),
    )


class TemplateBody(Body):
    """``POST /sandbox/control/subscribe-templates``: a template as the app's WeChat console shows it."""

    template_id: str = Field(pattern=TEMPLATE_ID_RE.pattern,
                             description="template_id must be 1-128 characters of [A-Za-z0-9_-]")
    title: str = Field(max_length=64, description="title must be a non-empty string of at most 64 characters")
    keywords: dict[str, Any] = Field(min_length=1, max_length=MAX_KEYWORDS,
                                     description=f"keywords must be an object of 1-{MAX_KEYWORDS} keywords")
    appid: str | None = Field(None, description="appid is not configured in the sandbox")

    @field_validator("title")
    @classmethod
    def title_given(cls, title: str) -> str:
        if not title.strip():
            raise ValueError("title must be a non-empty string of at most 64 characters")
        return title.strip()

    @field_validator("keywords")
    @classmethod
    def typed_keywords(cls, keywords: dict[str, Any]) -> dict[str, str]:
        for key, label in keywords.items():
            if not KEYWORD_KEY_RE.fullmatch(key):
                raise ValueError(f"keyword {key!r} must be a type ({', '.join(KEYWORD_TYPES)}) and a number")
            if not isinstance(label, str) or not label.strip() or len(label) > 20:
                raise ValueError(f"keyword {key!r} needs a label of 1-20 characters")
        return {key: label.strip() for key, label in keywords.items()}


# -- subscriptions: what the user accepted ---------------------------------------------------------


async def spend_subscription(tx: Tx, appid: str, openid: str, template_id: str, now: float) -> bool:
    """Spend one acceptance of ``template_id`` by the user; False when they have none left."""
    return bool(await tx.execute(
        "UPDATE subscriptions SET remaining = remaining - 1, spent_at = ? "
        "WHERE appid = ? AND openid = ? AND template_id = ? AND remaining > 0",
        (now, appid, openid, template_id),
    ))


def subscription_row(row) -> dict[str, Any]:
    return {"appid": row["appid"], "openid": row["openid"], "template_id": row["template_id"],
            "remaining": row["remaining"], "accepted_at": row["accepted_at"], "spent_at": row["spent_at"]}


class SubscriptionsBody(Body):
    """``POST /sandbox/control/subscriptions``: the user tapped 允许 for these templates in the dialog of
    ``wx.requestSubscribeMessage`` (at most 3 templates a call, as WeChat allows)."""

    openid: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="openid must be a user's openid")
    template_ids: list[str] = Field(min_length=1, max_length=MAX_TEMPLATES_PER_REQUEST,
                                    description=f"template_ids must be a list of 1-{MAX_TEMPLATES_PER_REQUEST} "
                                                "template ids")
    appid: str | None = Field(None, description="appid is not configured in the sandbox")


def make_seed(config: SandboxConfig):
    """The :class:`State` seed: the configured templates (for every appid) and pages."""

    async def seed(tx: Tx) -> None:
        for appid in config.apps:
            for t in config.subscribe_templates:
                await store_template(tx, appid, t.template_id, t.title, dict(t.keywords), "config")
        row = await tx.fetchone("SELECT value FROM settings WHERE key = ?", (PAGES_KEY,))
        if row is None or json.loads(row["value"]).get("source") != "control":
            await store_pages(tx, list(config.pages), "config")

    return seed


# -- the API ---------------------------------------------------------------------------------


def register(bp: Blueprint, state: State) -> None:
    async def subscribe_send(request: Request, appid: str) -> dict[str, Any]:
        data = parse_json_body(request)
        touser = data.get("touser")
        if not isinstance(touser, str) or not touser:
            raise WxError(40003, "touser missing")
        template_id = data.get("template_id")
        if not isinstance(template_id, str) or not template_id:
            raise WxError(40037, "template_id missing")
        known = await state.fetchone("SELECT 1 FROM users WHERE appid = ? AND openid = ?", (appid, touser))
        if known is None:
            raise WxError(40003)
        keywords = await find_template(state, appid, template_id)
        if keywords is None:
            raise WxError(40037)
        items = data.get("data")
        check_data(keywords, items)
        page = data.get("page")
        if page is not None and page != "":
            if not isinstance(page, str):
                raise WxError(41030, "page must be a string")
            if page_path(page) not in set((await get_pages(state))["pages"]):
                raise WxError(41030, f"page {page_path(page)} is not a page of the mini-program")
        state_ = data.get("miniprogram_state")
        if state_ is not None and state_ not in MINIPROGRAM_STATES:
            raise WxError(47003, "miniprogram_state invalid")
        lang = data.get("lang")
        if lang is not None and lang not in LANGS:
            raise WxError(47003, "lang invalid")
        now = time.time()
        async with state.tx() as tx:  # the acceptance is spent by the message it lets through, or not at all
            if not await spend_subscription(tx, appid, touser, template_id, now):
                raise WxError(43101)  # as WeChat answers a user who never accepted it, or spent it
            await tx.execute(
                "INSERT INTO subscribe_messages "
                "(appid, touser, template_id, page, data_json, miniprogram_state, lang, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (appid, touser, template_id, page or None, dumps(items), state_, lang, now),
            )
        return ok()

    add_wechat_api(bp, state, "cgi-bin/message/subscribe/send", subscribe_send)


def subscribe_message_row(row) -> dict[str, Any]:
    return {
        "appid": row["appid"],
        "touser": row["touser"],
        "template_id": row["template_id"],
        "page": row["page"],
        "data": json.loads(row["data_json"]),
        "miniprogram_state": row["miniprogram_state"],
        "lang": row["lang"],
        "at": row["at"],
    }


# -- control routes: the app's templates and pages, and what was sent ----------------------------


def add_control_routes(routes: ControlRoutes, config: SandboxConfig, state: State) -> None:
    route = routes.route

    @route("/subscribe-templates", ["POST"])
    async def subscribe_templates_add(request: Request) -> HTTPResponse:
        body = parse(TemplateBody, request)
        appid = appid_of(config, body.appid)
        await store_template(state, appid, body.template_id, body.title, body.keywords, "control")
        return answer({"appid": appid, "template_id": body.template_id, "title": body.title,
                       "keywords": body.keywords, "source": "control"}, status=201)

    @route("/subscribe-templates", ["GET"])
    async def subscribe_templates_list(request: Request) -> HTTPResponse:
        appid = request.args.get("appid")
        if appid is not None:
            appid_of(config, appid)
            rows = await state.fetchall(
                "SELECT * FROM subscribe_templates WHERE appid = ? ORDER BY appid, template_id", (appid,)
            )
        else:
            rows = await state.fetchall("SELECT * FROM subscribe_templates ORDER BY appid, template_id")
        return answer({"templates": [template_row(r) for r in rows]})

    @route("/pages", ["GET"])
    async def pages_get(request: Request) -> HTTPResponse:
        return answer(await get_pages(state))

    @route("/pages", ["POST"])
    async def pages_set(request: Request) -> HTTPResponse:
        return answer(await store_pages(state, parse(PagesBody, request).pages, "control"))

    @route("/pages", ["DELETE"])
    async def pages_reset(request: Request) -> HTTPResponse:
        return answer(await store_pages(state, list(config.pages), "config"))

    @route("/subscriptions", ["POST"])
    async def subscriptions_accept(request: Request) -> HTTPResponse:
        body = parse(SubscriptionsBody, request)
        appid = appid_of(config, body.appid)
        template_ids = list(dict.fromkeys(body.template_ids))
        now = time.time()
        async with state.tx() as tx:
            if await tx.fetchone("SELECT 1 FROM users WHERE appid = ? AND openid = ?", (appid, body.openid)) is None:
                raise bad("openid", "openid is not a user of this appid (mint a login code for it first)")
            for template_id in template_ids:
                known = await tx.fetchone("SELECT 1 FROM subscribe_templates WHERE appid = ? AND template_id = ?",
                                          (appid, template_id))
                if known is None:
                    raise bad("template_ids", f"{template_id!r} is not a template of this appid")
            for template_id in template_ids:
                await tx.execute(
                    "INSERT INTO subscriptions (appid, openid, template_id, remaining, accepted_at) "
                    "VALUES (?, ?, ?, 1, ?) ON CONFLICT (appid, openid, template_id) DO UPDATE SET "
                    "remaining = subscriptions.remaining + 1, accepted_at = excluded.accepted_at",
                    (appid, body.openid, template_id, now),
                )
            rows = await tx.fetchall(
                "SELECT * FROM subscriptions WHERE appid = ? AND openid = ? ORDER BY template_id", (appid, body.openid))
        return answer({"subscriptions": [subscription_row(r) for r in rows]})

    @route("/subscriptions", ["GET"])
    async def subscriptions_list(request: Request) -> HTTPResponse:
        openid = request.args.get("openid")
        if openid:
            rows = await state.fetchall(
                "SELECT * FROM subscriptions WHERE openid = ? ORDER BY appid, template_id", (openid,))
        else:
            rows = await state.fetchall("SELECT * FROM subscriptions ORDER BY appid, openid, template_id")
        return answer({"subscriptions": [subscription_row(r) for r in rows]})

    @route("/subscribe-messages", ["GET"])
    async def subscribe_messages(request: Request) -> HTTPResponse:
        touser = request.args.get("touser")
        if touser:
            rows = await state.fetchall("SELECT * FROM subscribe_messages WHERE touser = ? ORDER BY id", (touser,))
        else:
            rows = await state.fetchall("SELECT * FROM subscribe_messages ORDER BY id")
        return answer({"messages": [subscribe_message_row(r) for r in rows]})
