"""Assembly of the sandbox emulators into one Sanic blueprint group under ``/sandbox``.

- ``/sandbox/wechat/...``  WeChat mini-program server API (:mod:`sandbox.wechat_api`, :mod:`sandbox.ocr`,
  :mod:`sandbox.face`), standing for ``https://api.weixin.qq.com``
- ``/sandbox/cardnet/...`` bank-card network: element check and transfers to/from a card (:mod:`sandbox.cardnet`)
- ``/sandbox/partner/...`` a partner's callback server: receives and checks the bank's signed
  notifications (:mod:`sandbox.partner`)
- ``/sandbox/wechatpay/...`` WeChat Pay API v3 (:mod:`sandbox.wechatpay`), standing for
  ``https://api.mch.weixin.qq.com``; its notifications are delivered by a dispatcher each worker
  process runs (started after the server starts, stopped before it stops)
- ``/sandbox/control/...`` control API for tests and local development (:mod:`sandbox.control`)

State lives in the SQLite file ``SandboxConfig.state_path`` (see :mod:`sandbox.state`), opened per
worker process by a ``before_server_start`` listener on the blueprint (and lazily on first use);
opening it creates the partner emulator's tables (:func:`sandbox.partner.with_schema`), the WeChat Pay
tables, platform key pair and configured merchants (:func:`sandbox.wechatpay.with_schema`) and writes
the configured subscribe templates and pages (:func:`sandbox.subscribe.make_seed`).
"""

from __future__ import annotations

from sanic import Blueprint, Sanic
from sanic.blueprint_group import BlueprintGroup
from sanic.config import Config

from sandbox.cardnet import create_cardnet_blueprint
from sandbox.config import SandboxConfig
from sandbox.control import create_control_blueprint
from sandbox.partner import create_partner_blueprint, with_schema
from sandbox.state import State
from sandbox.subscribe import make_seed
from sandbox.wechat_api import create_wechat_blueprint
from sandbox import wechatpay


def create_blueprint(config: SandboxConfig | None = None) -> BlueprintGroup:
    """All sandbox routes, under ``/sandbox``; mount with ``app.blueprint(create_blueprint(cfg))``."""
    config = config or SandboxConfig()
    state = State(config.state_path, seed=wechatpay.with_schema(config, with_schema(make_seed(config))))
    pay = wechatpay.WeChatPay(config, state)
    dispatcher = wechatpay.Dispatcher(pay)
    wechat = create_wechat_blueprint(config, state)
    cardnet = create_cardnet_blueprint(config, state)
    partner = create_partner_blueprint(config, state)
    wechatpay_bp = wechatpay.create_wechatpay_blueprint(pay, dispatcher)
    control = create_control_blueprint(config, state, pay, dispatcher)

    async def open_state(app) -> None:
        await state.open()

    async def close_state(app) -> None:
        await state.close()

    control.before_server_start(open_state)
    control.after_server_stop(close_state)
    group = Blueprint.group(wechat, cardnet, partner, wechatpay_bp, control, url_prefix="/sandbox")
    return group


def create_app(config: SandboxConfig | None = None) -> Sanic:
    """A standalone Sanic app (name "sandbox") serving only the sandbox blueprint."""
    app_config = Config()
    app_config.AUTO_EXTEND = False  # no sanic-ext (OpenAPI etc.) on the emulator
    app_config.FALLBACK_ERROR_FORMAT = "json"
    app = Sanic("sandbox", config=app_config)
    app.blueprint(create_blueprint(config or SandboxConfig.from_env()))
    return app
