"""Sandbox control API, mounted at ``/sandbox/control`` (sandbox only; no WeChat counterpart).

It plays the parts WeChat's servers and the user's phone play in reality (wx.login codes, phone
codes, ID-card photos, a handwritten signature, finishing face verification), seeds the card network
(cards, balances, blocked cards), the partners whose callbacks are emulated, and the app's subscribe
templates and pages, injects faults and lets tests inspect what the emulators saw (calls, messages,
transfers, notifications). Guide with curl examples: ``docs/sandbox.md``; machine-readable description (OpenAPI
3.1): ``sandbox/control_openapi.json``, served at ``GET /sandbox/control/openapi.json``.

JSON in and out; errors are HTTP 400/404 ``{"code","message","field"?}``, bodies checked by pydantic
models (:mod:`sandbox.control_kit`). Each emulator's control routes live beside it (the module named
after each group below); this module assembles them into the one blueprint.

- ``GET  health`` → ``{"ok": true}``; ``GET openapi.json`` → the OpenAPI document (here)
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
- ``POST subscriptions {openid, template_ids, appid?}`` (the user accepted, in
  ``wx.requestSubscribeMessage``) → ``{"subscriptions": [{appid, openid, template_id, remaining,
  accepted_at, spent_at}]}`` (that user's); ``GET subscriptions?openid=`` (semantics:
  :mod:`sandbox.subscribe`)
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

import os

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from sandbox import cardnet, face, faults, ocr, partner, push, signature, subscribe, wechat_api, wechatpay
from sandbox.config import SandboxConfig
from sandbox.control_kit import ControlRoutes, answer
from sandbox.state import State

OPENAPI_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "control_openapi.json")


def create_control_blueprint(
    config: SandboxConfig, state: State, pay: wechatpay.WeChatPay, dispatcher: wechatpay.Dispatcher
) -> Blueprint:
    """The ``/control`` blueprint: every emulator's control routes, the health check and the document."""
    bp = Blueprint("sandbox_control", url_prefix="/control")
    routes = ControlRoutes(bp)
    wechat_api.add_control_routes(routes, config, state)  # login and phone codes, tokens, settings
    ocr.add_control_routes(routes, state)  # ID-card photos
    signature.add_control_routes(routes)  # a handwritten signature
    face.add_control_routes(routes, state)  # finishing face verification
    subscribe.add_control_routes(routes, config, state)  # templates, pages, messages sent
    push.add_control_routes(routes, config)  # message push to the backend
    cardnet.add_control_routes(routes, state)  # bank cards, transfers
    partner.add_control_routes(routes, state)  # partners' callback servers
    wechatpay.add_control_routes(routes, pay, dispatcher)  # pay/...
    faults.add_control_routes(routes, state)  # faults and the call log, for every emulator

    @routes.route("/health", ["GET"])
    async def health(request: Request) -> HTTPResponse:
        await state.fetchone("SELECT 1")
        return answer({"ok": True})

    with open(OPENAPI_PATH, "rb") as fh:
        openapi_document = fh.read()

    @routes.route("/openapi.json", ["GET"])
    async def openapi_json(request: Request) -> HTTPResponse:
        return raw(openapi_document, content_type="application/json")

    return bp
