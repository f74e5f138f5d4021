"""Sandbox control API, mounted at ``/sandbox/control`` (sandbox only; no WeChat counterpart).

It plays the parts WeChat's servers and the user's phone play in reality (wx.login codes, phone
codes, ID-card photos, a handwritten signature, finishing face verification), seeds the card network
(cards, balances, blocked cards), the partners whose callbacks are emulated, and the app's subscribe
templates and pages, injects faults and lets tests inspect what the emulators saw (calls, messages,
transfers, notifications). Guide with curl examples: ``docs/sandbox.md``; machine-readable description (OpenAPI
3.1): ``sandbox/control_openapi.json``, served at ``GET /sandbox/control/openapi.json``.

JSON in and out; errors are HTTP 400/404 ``{"code","message","field"?}``.

- ``GET  health`` → ``{"ok": true}``; ``GET openapi.json`` → the OpenAPI document
- ``POST login-code {openid?, unionid?, appid?, expires_in?}`` → ``{"code","openid","appid"}``
- ``POST phone-code {phone, appid?, expires_in?}`` → ``{"code"}``
- ``POST id-card-images {side, name, id_number, valid_until, address?, valid_from?, nationality?,
  authority?, format?: png|jpeg}`` → the image bytes (``image/png`` by default)
- ``POST signature-image {text?}`` → a handwritten-looking signature, ``image/png``
- ``POST face/{verify_id} {result: pass|fail|pending, verify_ret?, expires_in?}`` →
  ``{"verify_id","verify_ret"}``; ``GET face/{verify_id}`` → the stored session
- ``POST bank-cards {card_number, name, id_number, phone, card_class, balance_fen?}`` → 201 ``{"card_number"}``
  (card_number: 12-19 digits passing the Luhn check; re-registering replaces the card: its balance
  becomes balance_fen, default 0, and it is unblocked)
- ``GET bank-cards/{card_number}`` → ``{card_number, name, card_class, balance_fen, blocked}``;
  ``POST bank-cards/{card_number}/balance {balance_fen}`` and ``POST bank-cards/{card_number}/block
  {blocked}`` → the same (a blocked card declines every transfer with CARD_BLOCKED); 404 for an
  unknown card
- ``GET transfers?card_number=`` → ``{"transfers": [{request_id, card_number, direction, amount_fen,
  memo, status, reason, at}]}``: every transfer the card network answered, declined ones included,
  oldest first (count the SUCCEEDED ones to see how often money really moved)
- ``POST partners {app_id, secret, previous_secret?}`` → 201 ``{"app_id","previous_secret": bool,
  "callback_path"}``: registers a partner with the callback emulator, or replaces its secrets (its
  records stay); ``GET partners/{app_id}/notifications`` → ``{"notifications": [{event_id, type,
  occurred_at, data, received_at, deliveries}]}`` (each event once); ``GET
  partners/{app_id}/deliveries`` → ``{"deliveries": [{at, event_id, outcome, reason, detail,
  http_status, secret_used}]}`` (every attempt); ``DELETE partners/{app_id}/notifications`` →
  ``{"notifications": n, "deliveries": m}`` (forgets events, deliveries and spent nonces); 404 for
  an unknown app_id (semantics: :mod:`sandbox.partner`)
- ``POST faults {path, errcode?, http_status?, body?, drop?, delay_s?, when?: before|after, count?}``
  → 201; ``GET faults``; ``DELETE faults`` (semantics: :mod:`sandbox.wxcommon`; partner callback
  keys ``partner/<app_id>/notify`` and ``partner/{app_id}/notify``: :mod:`sandbox.partner`)
- ``POST subscribe-templates {template_id, title, keywords, appid?}`` → 201;
  ``GET subscribe-templates?appid=`` → ``{"templates": [...]}``
- ``GET|POST|DELETE pages {pages}`` → ``{"pages": [...], "source": "config"|"control"}``
- ``POST expire-tokens {appid?}`` → ``{"expired": n}``
- ``GET  subscribe-messages?touser=`` → ``{"messages": [...]}``
- ``GET  calls?path=`` → ``{"calls": [{path, errcode, http_status, at}]}``; ``DELETE calls``
- ``GET|POST settings {stable_token_refresh_interval_s?, stable_token_daily_force_limit?}``
- WeChat Pay (semantics: :mod:`sandbox.wechatpay`): ``POST pay/merchants {mchid, appid, apiv3_key,
  merchant_serial, merchant_public_key_pem}`` → 201; ``GET pay/merchants``; ``GET pay/platform-key`` →
  ``{"public_key_id","public_key_pem"}``; ``GET|POST pay/settings {retry_schedule_s?,
  refund_delay_s?, notify_timeout_s?}``; ``GET pay/orders?mchid=&out_trade_no=``; ``POST
  pay/{prepay_id} {result: SUCCESS|PAYERROR, notify?: send|drop|delay, delay_s?, bank_type?}`` (the
  user pays); ``GET pay/notifications?out_trade_no=&out_refund_no=&mchid=&event_type=`` (each with
  its delivery attempts); ``POST pay/notifications/{id}/redeliver {count?, parallel?, tamper?}``
  (and ``POST pay/{prepay_id}/notify``, the same body optional: that order's payment notification)
- message push (semantics: :mod:`sandbox.push`): ``POST push {url, token, mode?, encoding_aes_key?,
  appid?, format?, message}`` and ``POST push/verify {url, token}``
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import time
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json as json_response, raw

from sandbox import face, ocr, partner, push, signature, subscribe, wechatpay
from sandbox.cardnet import card_number_ok
from sandbox.config import SandboxConfig
from sandbox.control_kit import ControlError, ControlRoutes, bad, json_object
from sandbox.state import State
from sandbox.subscribe import subscribe_message_row
from sandbox.wxcommon import dumps, normalise_path

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CARD_CLASSES = ("I", "II", "III", "credit")
DEFAULT_CODE_TTL = 300
FAULT_FIELDS = ("path", "errcode", "http_status", "body", "drop", "delay_s", "when", "count")
MAX_FAULT_BODY = 64 * 1024
OPENAPI_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "control_openapi.json")


body_of = json_object


def opt_int(data: dict[str, Any], name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise bad(name, f"{name} must be an integer in [{lo}, {hi}]")
    return value


def opt_str(data: dict[str, Any], name: str, pattern: re.Pattern[str] | None = None, max_len: int = 64) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len or (pattern and not pattern.fullmatch(value)):
        raise bad(name, f"{name} is not valid")
    return value


def strict_body(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """The JSON body, refusing fields not in ``fields`` (a typo must not pass as a no-op)."""
    data = body_of(request)
    unknown = set(data) - set(fields)
    if unknown:
        raise bad(min(unknown), f"unknown field; the fields are {', '.join(fields)}")
    return data


CARD_COLUMNS = "card_number, name, card_class, balance_fen, blocked"


def card_state(row: Any) -> dict[str, Any]:
    """A card as the control API shows it (the full name: this is the sandbox)."""
    return {
        "card_number": row["card_number"],
        "name": row["name"],
        "card_class": row["card_class"],
        "balance_fen": row["balance_fen"],
        "blocked": bool(row["blocked"]),
    }


def new_code() -> str:
    return secrets.token_hex(16)


def new_openid() -> str:
    return "o" + secrets.token_urlsafe(21)[:27]


def create_control_blueprint(
    config: SandboxConfig, state: State, pay: wechatpay.WeChatPay, dispatcher: wechatpay.Dispatcher
) -> Blueprint:
    bp = Blueprint("sandbox_control", url_prefix="/control")
    routes = ControlRoutes(bp)
    route = routes.route
    wechatpay.add_control_routes(routes, pay, dispatcher)

    def appid_of(data: dict[str, Any]) -> str:
        appid = data.get("appid", config.default_appid)
        if appid not in config.apps:
            raise bad("appid", "appid is not configured in the sandbox")
        return appid

    @route("/health", ["GET"])
    async def health(request: Request) -> HTTPResponse:
        await state.fetchone("SELECT 1")
        return json_response({"ok": True})

    @route("/login-code", ["POST"])
    async def login_code(request: Request) -> HTTPResponse:
        data = body_of(request)
        appid = appid_of(data)
        openid = opt_str(data, "openid", OPENID_RE) or new_openid()
        unionid = opt_str(data, "unionid", OPENID_RE)
        ttl = opt_int(data, "expires_in", DEFAULT_CODE_TTL, 0, 86400)
        now = time.time()
        code = new_code()
        async with state.tx() as tx:
            await tx.execute(
                "INSERT INTO users (appid, openid, unionid, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (appid, openid) DO UPDATE SET unionid = COALESCE(excluded.unionid, users.unionid)",
                (appid, openid, unionid, now),
            )
            await tx.execute(
                "INSERT INTO login_codes (code, appid, openid, unionid, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (code, appid, openid, unionid, now, now + ttl),
            )
        return json_response({"code": code, "openid": openid, "appid": appid})

    @route("/phone-code", ["POST"])
    async def phone_code(request: Request) -> HTTPResponse:
        data = body_of(request)
        phone = data.get("phone")
        if not isinstance(phone, str) or not PHONE_RE.fullmatch(phone):
            raise bad("phone", "phone must match ^1[3-9]\\d{9}$")
        appid = appid_of(data)
        ttl = opt_int(data, "expires_in", DEFAULT_CODE_TTL, 0, 86400)
        now = time.time()
        code = new_code()
        await state.execute(
            "INSERT INTO phone_codes (code, appid, phone, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (code, appid, phone, now, now + ttl),
        )
        return json_response({"code": code})

    @route("/id-card-images", ["POST"])
    async def id_card_images(request: Request) -> HTTPResponse:
        data = body_of(request)
        try:
            card = ocr.validate_card_request(data)
        except ocr.CardDataError as exc:
            raise bad(exc.field, exc.message) from None
        key = await state.get_image_key()
        image, content_type = await asyncio.to_thread(ocr.mint_image, key, card)
        return raw(image, content_type=content_type)

    @route("/face/<verify_id>", ["GET"])
    async def face_get(request: Request, verify_id: str) -> HTTPResponse:
        row = await state.fetchone("SELECT * FROM face_verifications WHERE verify_id = ?", (verify_id,))
        if row is None:
            raise ControlError(404, "NOT_FOUND", "unknown verify_id")
        return json_response(
            {
                "verify_id": row["verify_id"],
                "appid": row["appid"],
                "openid": row["openid"],
                "out_seq_no": row["out_seq_no"],
                "cert_type": row["cert_type"],
                "cert_name": row["cert_name"],
                "cert_no": row["cert_no"],
                "created_at": row["created_at"],
                "expires_at": row["expires_at"],
                "verify_ret": row["verify_ret"],
            },
            dumps=dumps,
        )

    @route("/face/<verify_id>", ["POST"])
    async def face_set(request: Request, verify_id: str) -> HTTPResponse:
        data = body_of(request)
        result = data.get("result")
        if result not in (None, "pass", "fail", "pending"):
            raise bad("result", "result must be 'pass', 'fail' or 'pending'")
        ttl = opt_int(data, "expires_in", None, 0, 86400)
        if result is None and ttl is None:
            raise bad("result", "result is required")
        custom = opt_int(data, "verify_ret", None, 1, 999999)
        if custom is not None and (result != "fail" or custom == face.VERIFY_PASSED):
            raise bad("verify_ret", "verify_ret may only be given with result 'fail' and must not be 10000")
        sets, params = [], []
        if result is not None:
            ret = {"pass": face.VERIFY_PASSED, "fail": custom or face.VERIFY_FAILED_DEFAULT, "pending": None}[result]
            sets += ["verify_ret = ?", "finished_at = ?"]
            params += [ret, None if ret is None else time.time()]
        if ttl is not None:
            sets.append("expires_at = created_at + ?")
            params.append(ttl)
        row = await state.fetchone(
            f"UPDATE face_verifications SET {', '.join(sets)} WHERE verify_id = ? RETURNING verify_ret",  # nosec B608
            (*params, verify_id),
        )
        if row is None:
            raise ControlError(404, "NOT_FOUND", "unknown verify_id")
        return json_response({"verify_id": verify_id, "verify_ret": row["verify_ret"]})

    @route("/bank-cards", ["POST"])
    async def bank_cards(request: Request) -> HTTPResponse:
        data = body_of(request)
        card_number = data.get("card_number")
        if not isinstance(card_number, str) or not card_number_ok(card_number):
            raise bad("card_number", "card_number must be 12-19 digits passing the Luhn check")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 32:
            raise bad("name", "name must be a non-empty string")
        id_number = data.get("id_number")
        if not isinstance(id_number, str) or not ocr.ID_RE.fullmatch(id_number):
            raise bad("id_number", "id_number must be 17 digits followed by a digit or X")
        phone = data.get("phone")
        if not isinstance(phone, str) or not PHONE_RE.fullmatch(phone):
            raise bad("phone", "phone must match ^1[3-9]\\d{9}$")
        card_class = data.get("card_class")
        if card_class not in CARD_CLASSES:
            raise bad("card_class", "card_class must be one of I, II, III, credit")
        balance = opt_int(data, "balance_fen", 0, 0, 10**15)
        await state.execute(
            "INSERT INTO bank_cards (card_number, name, id_number, phone, card_class, balance_fen, updated_at, blocked) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (card_number) DO UPDATE SET name = excluded.name, "
            "id_number = excluded.id_number, phone = excluded.phone, card_class = excluded.card_class, "
            "balance_fen = excluded.balance_fen, updated_at = excluded.updated_at, blocked = 0",
            (card_number, name.strip(), id_number.upper(), phone, card_class, balance, time.time()),
        )
        return json_response({"card_number": card_number}, status=201)

    def unknown_card() -> ControlError:
        return ControlError(404, "NOT_FOUND", "unknown card_number; register it with POST bank-cards")

    @route("/bank-cards/<card_number>", ["GET"])
    async def bank_card_get(request: Request, card_number: str) -> HTTPResponse:
        row = await state.fetchone(f"SELECT {CARD_COLUMNS} FROM bank_cards WHERE card_number = ?", (card_number,))  # nosec B608
        if row is None:
            raise unknown_card()
        return json_response(card_state(row), dumps=dumps)

    @route("/bank-cards/<card_number>/balance", ["POST"])
    async def bank_card_balance(request: Request, card_number: str) -> HTTPResponse:
        data = strict_body(request, ("balance_fen",))
        if data.get("balance_fen") is None:
            raise bad("balance_fen", "balance_fen is required")
        balance = opt_int(data, "balance_fen", None, 0, 10**15)
        # one statement: atomic against a transfer running in another process
        row = await state.fetchone(
            f"UPDATE bank_cards SET balance_fen = ?, updated_at = ? WHERE card_number = ? RETURNING {CARD_COLUMNS}",  # nosec B608
            (balance, time.time(), card_number),
        )
        if row is None:
            raise unknown_card()
        return json_response(card_state(row), dumps=dumps)

    @route("/bank-cards/<card_number>/block", ["POST"])
    async def bank_card_block(request: Request, card_number: str) -> HTTPResponse:
        data = strict_body(request, ("blocked",))
        blocked = data.get("blocked")
        if not isinstance(blocked, bool):
            raise bad("blocked", "blocked must be true or false")
        row = await state.fetchone(
            f"UPDATE bank_cards SET blocked = ?, updated_at = ? WHERE card_number = ? RETURNING {CARD_COLUMNS}",  # nosec B608
            (int(blocked), time.time(), card_number),
        )
        if row is None:
            raise unknown_card()
        return json_response(card_state(row), dumps=dumps)

    @route("/transfers", ["GET"])
    async def transfers(request: Request) -> HTTPResponse:
        columns = "request_id, card_number, direction, amount_fen, memo, status, reason, at"
        card_number = request.args.get("card_number")
        if card_number:
            rows = await state.fetchall(
                f"SELECT {columns} FROM cardnet_transfers WHERE card_number = ? ORDER BY id", (card_number,)  # nosec B608
            )
        else:
            rows = await state.fetchall(f"SELECT {columns} FROM cardnet_transfers ORDER BY id")  # nosec B608
        return json_response({"transfers": [dict(r) for r in rows]}, dumps=dumps)

    @route("/partners", ["POST"])
    async def partners_add(request: Request) -> HTTPResponse:
        try:
            app_id, secret, previous = partner.validate_registration(body_of(request))
        except partner.RequestError as exc:
            raise bad(exc.field, exc.message) from None
        return json_response(await partner.register(state, app_id, secret, previous), status=201, dumps=dumps)

    async def known_partner(app_id: str) -> None:
        if not await partner.known(state, app_id):
            raise ControlError(404, "NOT_FOUND", "unknown app_id; register it with POST partners")

    @route("/partners/<app_id>/notifications", ["GET"])
    async def partner_notifications(request: Request, app_id: str) -> HTTPResponse:
        await known_partner(app_id)
        return json_response({"notifications": await partner.notifications(state, app_id)}, dumps=dumps)

    @route("/partners/<app_id>/notifications", ["DELETE"])
    async def partner_reset(request: Request, app_id: str) -> HTTPResponse:
        await known_partner(app_id)
        return json_response(await partner.reset(state, app_id))

    @route("/partners/<app_id>/deliveries", ["GET"])
    async def partner_deliveries(request: Request, app_id: str) -> HTTPResponse:
        await known_partner(app_id)
        return json_response({"deliveries": await partner.deliveries(state, app_id)}, dumps=dumps)

    @route("/faults", ["POST"])
    async def faults_add(request: Request) -> HTTPResponse:
        data = body_of(request)
        unknown = set(data) - set(FAULT_FIELDS)
        if unknown:
            raise bad(min(unknown), f"unknown field; the fields are {', '.join(FAULT_FIELDS)}")
        raw_path = data.get("path")
        if not isinstance(raw_path, str):
            raise bad("path", "path is required")
        path = normalise_path(raw_path)
        if path not in state.api_paths and not partner.is_fault_path(path):
            raise bad(
                "path",
                f"unknown API path; one of: {', '.join(sorted(state.api_paths))}, or partner/<app_id>/notify",
            )
        errcode = opt_int(data, "errcode", None, -(2**31), 2**31 - 1)
        http_status = opt_int(data, "http_status", None, 400, 599)
        delay = data.get("delay_s")
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 < delay <= 120):
            raise bad("delay_s", "delay_s must be a number in (0, 120]")
        count = opt_int(data, "count", 1, 1, 100000)
        when = data.get("when", "before")
        if when not in ("before", "after"):
            raise bad("when", "when must be 'before' or 'after'")
        drop = data.get("drop", False)
        if not isinstance(drop, bool):
            raise bad("drop", "drop must be true or false")
        body = data.get("body")
        if body is not None and (not isinstance(body, dict) or len(dumps(body)) > MAX_FAULT_BODY):
            raise bad("body", f"body must be a JSON object of at most {MAX_FAULT_BODY} bytes")
        replies = [
            name
            for name, given in (("errcode", errcode), ("http_status", http_status), ("body", body), ("drop", drop or None))
            if given is not None
        ]
        if not replies and delay is None:
            raise bad(None, "give errcode, http_status, body or drop, and/or delay_s")
        if len(replies) > 1:
            raise bad(replies[1], "give only one of errcode, http_status, body and drop (delay_s may go with any)")
        if errcode is not None and path.startswith(("cardnet/", "partner/", "wechatpay/")):
            raise bad("errcode", "the card network, partner callbacks and WeChat Pay have no errcodes; "
                                 "use http_status or body")
        if errcode == 0:
            raise bad("errcode", "errcode 0 is not a fault; use body to answer a success of your own")
        body_json = None if body is None else dumps(body)
        async with state.tx() as tx:
            await tx.execute(
                "INSERT INTO faults (path, errcode, http_status, delay_s, remaining, created_at, phase, drop_conn, body_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (path, errcode, http_status, delay, count, time.time(), when, int(drop), body_json),
            )
            row = await tx.fetchone("SELECT last_insert_rowid() AS id")
            fault_id = row["id"]
        return json_response(
            {"id": fault_id, "path": path, "errcode": errcode, "http_status": http_status, "body": body,
             "drop": drop, "delay_s": delay, "when": when, "count": count},
            status=201,
            dumps=dumps,
        )

    @route("/faults", ["GET"])
    async def faults_list(request: Request) -> HTTPResponse:
        rows = await state.fetchall("SELECT * FROM faults WHERE remaining > 0 ORDER BY id")
        return json_response(
            {
                "faults": [
                    {
                        **{k: r[k] for k in ("id", "path", "errcode", "http_status", "delay_s", "remaining")},
                        "when": r["phase"],
                        "drop": bool(r["drop_conn"]),
                        "body": None if r["body_json"] is None else json.loads(r["body_json"]),
                    }
                    for r in rows
                ]
            },
            dumps=dumps,
        )

    @route("/faults", ["DELETE"])
    async def faults_clear(request: Request) -> HTTPResponse:
        n = await state.execute("DELETE FROM faults")
        return json_response({"deleted": n})

    @route("/expire-tokens", ["POST"])
    async def expire_tokens(request: Request) -> HTTPResponse:
        data = body_of(request)
        appid = opt_str(data, "appid")
        now = time.time()
        if appid is None:
            n = await state.execute("UPDATE access_tokens SET expires_at = ? WHERE expires_at > ?", (now, now))
        else:
            n = await state.execute(
                "UPDATE access_tokens SET expires_at = ? WHERE expires_at > ? AND appid = ?", (now, now, appid)
            )
        return json_response({"expired": n})

    @route("/subscribe-messages", ["GET"])
    async def subscribe_messages(request: Request) -> HTTPResponse:
        touser = request.args.get("touser")
        if touser:
            rows = await state.fetchall("SELECT * FROM subscribe_messages WHERE touser = ? ORDER BY id", (touser,))
        else:
            rows = await state.fetchall("SELECT * FROM subscribe_messages ORDER BY id")
        return json_response({"messages": [subscribe_message_row(r) for r in rows]}, dumps=dumps)

    @route("/calls", ["GET"])
    async def calls(request: Request) -> HTTPResponse:
        path = request.args.get("path")
        if path:
            rows = await state.fetchall(
                "SELECT path, errcode, http_status, at FROM calls WHERE path = ? ORDER BY id", (normalise_path(path),)
            )
        else:
            rows = await state.fetchall("SELECT path, errcode, http_status, at FROM calls ORDER BY id")
        return json_response({"calls": [dict(r) for r in rows]})

    @route("/calls", ["DELETE"])
    async def calls_clear(request: Request) -> HTTPResponse:
        n = await state.execute("DELETE FROM calls")
        return json_response({"deleted": n})

    @route("/subscribe-templates", ["POST"])
    async def subscribe_templates_add(request: Request) -> HTTPResponse:
        data = body_of(request)
        try:
            template_id, title, keywords = subscribe.validate_template(data)
        except subscribe.RequestError as exc:
            raise bad(exc.field, exc.message) from None
        appid = appid_of(data)
        await subscribe.store_template(state, appid, template_id, title, keywords, "control")
        return json_response(
            {"appid": appid, "template_id": template_id, "title": title, "keywords": keywords, "source": "control"},
            status=201,
            dumps=dumps,
        )

    @route("/subscribe-templates", ["GET"])
    async def subscribe_templates_list(request: Request) -> HTTPResponse:
        appid = request.args.get("appid")
        if appid is not None:
            appid_of({"appid": appid})
            rows = await state.fetchall(
                "SELECT * FROM subscribe_templates WHERE appid = ? ORDER BY appid, template_id", (appid,)
            )
        else:
            rows = await state.fetchall("SELECT * FROM subscribe_templates ORDER BY appid, template_id")
        return json_response({"templates": [subscribe.template_row(r) for r in rows]}, dumps=dumps)

    @route("/pages", ["GET"])
    async def pages_get(request: Request) -> HTTPResponse:
        return json_response(await subscribe.get_pages(state), dumps=dumps)

    @route("/pages", ["POST"])
    async def pages_set(request: Request) -> HTTPResponse:
        try:
            pages = subscribe.validate_pages(body_of(request))
        except subscribe.RequestError as exc:
            raise bad(exc.field, exc.message) from None
        return json_response(await subscribe.store_pages(state, pages, "control"), dumps=dumps)

    @route("/pages", ["DELETE"])
    async def pages_reset(request: Request) -> HTTPResponse:
        return json_response(await subscribe.store_pages(state, list(config.pages), "config"), dumps=dumps)

    @route("/signature-image", ["POST"])
    async def signature_image(request: Request) -> HTTPResponse:
        data = body_of(request)
        unknown = set(data) - {"text"}
        if unknown:
            raise bad(min(unknown), "unknown field")
        text = data.get("text", "沙箱用户")
        if not isinstance(text, str) or not text.strip() or len(text) > 32:
            raise bad("text", "text must be a non-empty string of at most 32 characters")
        image = await asyncio.to_thread(signature.draw_signature, text.strip())
        return raw(image, content_type="image/png")

    # -- message push (sandbox.push) -------------------------------------------------------------

    @route("/push", ["POST"])
    async def push_message(request: Request) -> HTTPResponse:
        try:
            params = push.validate_push(body_of(request), config.default_appid)
        except push.RequestError as exc:
            raise bad(exc.field, exc.message) from None
        return json_response(await push.push(params), dumps=dumps)

    @route("/push/verify", ["POST"])
    async def push_verify(request: Request) -> HTTPResponse:
        try:
            url, token = push.validate_verify(body_of(request))
        except push.RequestError as exc:
            raise bad(exc.field, exc.message) from None
        return json_response(await push.verify(url, token), dumps=dumps)

    with open(OPENAPI_PATH, "rb") as fh:
        openapi_document = fh.read()

    @route("/openapi.json", ["GET"])
    async def openapi_json(request: Request) -> HTTPResponse:
        return raw(openapi_document, content_type="application/json")

    settings_defaults = {
        "stable_token_refresh_interval_s": config.stable_token_refresh_interval_s,
        "stable_token_daily_force_limit": config.stable_token_daily_force_limit,
    }

    async def current_settings() -> dict[str, int]:
        return {k: await state.get_setting(k, v) for k, v in settings_defaults.items()}

    @route("/settings", ["GET"])
    async def settings_get(request: Request) -> HTTPResponse:
        return json_response(await current_settings())

    @route("/settings", ["POST"])
    async def settings_set(request: Request) -> HTTPResponse:
        data = body_of(request)
        unknown = set(data) - set(settings_defaults)
        if unknown:
            raise bad(sorted(unknown)[0], "unknown setting")
        for key in settings_defaults:
            value = opt_int(data, key, None, 0, 10**6)
            if value is not None:
                await state.set_setting(key, value)
        return json_response(await current_settings())

    return bp
