"""``create_app()``: the one place the application is assembled."""

from __future__ import annotations

import asyncio
import gc
import itertools
from pathlib import Path

import orjson

from sanic import Request, Sanic
from sanic.config import Config

from app import middleware
from app.config import admin_transport_problem, load_settings
from app.db import close_db, first_start, init_db
from app.errors import error_response
from app.logs import logging_config
from app.openapi import build_openapi, docs_blueprint, install_response_check
from app.providers import build_http, build_services
from core.clock import utcnow
from core.errors import ConfigError
from core.settings import Settings
from handlers import admin, callbacks, miniprogram, ops
from handlers import open as open_api
from services import worker

_names = itertools.count()

API_TITLE = "Open-banking mini-program API"
API_VERSION = "1.0.0"
API_DESCRIPTION = (
    "The `/api/v1` surface of the bank's WeChat mini-program, and the ops endpoints. Authenticate with "
    "`Authorization: Bearer <access_token>` from `POST /api/v1/auth/login`. Every error is "
    '`{"error": {"code", "message", "field"?}}`: each operation lists its error statuses and their codes; '
    "codes are the contract, messages are Simplified Chinese for display. Request bodies are strict: "
    "JSON types are not coerced, unknown fields and duplicate keys are refused. A 503 means the outcome is "
    "unknown: the request may have taken effect or not; repeat it unchanged (the same `Idempotency-Key`, the "
    "same `out_trade_no` or `out_refund_no`) after `Retry-After`, and the first result is answered if there was one."
)


def contract_font_warning(settings: Settings) -> str | None:
    """The line ``python -m app serve`` prints, once, before any worker starts, when contracts would not
    carry their font (sandbox only: production refuses to start). Not said again by each worker, nor by
    the renderer (``font_problem`` resolves the font quietly)."""
    from services.esign.render import font_problem

    problem = font_problem(settings.cjk_font_path)
    return f"WARNING: contract font: {problem}" if problem else None


def create_app(settings: Settings | None = None, *, name: str | None = None) -> Sanic:
    settings = settings or load_settings()
    problem = admin_transport_problem(settings)
    if problem:  # load_settings refuses it too; this is for a launcher that builds Settings itself
        raise ConfigError(f"refusing to start in production: {problem}")
    if name is None:
        # Sanic keeps a registry of apps by name; tests build several apps in one process.
        n = next(_names)
        name = "openbank" if n == 0 else f"openbank_{n}"
    config = Config()
    # No sanic-ext: the contract and its OpenAPI document come from handlers.spec, and sanic-ext would
    # attach itself to every request (about 20% on a trivial route) for features we do not use.
    config.AUTO_EXTEND = False
    config.update(
        {
            "REQUEST_MAX_SIZE": settings.upload_max_bytes + 256 * 1024,
            "FALLBACK_ERROR_FORMAT": "json",
            "KEEP_ALIVE_TIMEOUT": 30,
            "ACCESS_LOG": False,
        }
    )
    if settings.proxies_count:  # request.remote_addr: the client as the trusted proxies saw it
        config.PROXIES_COUNT = settings.proxies_count
    # orjson: UTF-8 Chinese messages as they are (no \u escapes), several times faster than ujson.
    app = Sanic(name, config=config, log_config=logging_config(settings.log_level), dumps=orjson.dumps)
    app.ctx.settings = settings

    # Errors raised by an API handler are rendered by its contract wrapper (handlers.spec), which then
    # finishes the request; this catches everything else (no route, 405, a body or head too large).
    app.ctx.render_error = error_response

    @app.exception(Exception)
    async def on_error(request: Request, exc: Exception):
        return middleware.finish(app, request, error_response(request, exc), None)

    middleware.install(app)
    app.blueprint(ops.bp)
    app.blueprint(miniprogram.blueprint())
    app.blueprint(open_api.blueprint())
    app.blueprint(callbacks.bp)
    app.blueprint(docs_blueprint(API_TITLE))
    if settings.admin_enabled:  # the staff console; off, nothing of it exists (every /admin/ path is 404)
        app.blueprint(admin.blueprint())
    if settings.validate_responses:
        install_response_check(app)

    if settings.sandbox_routes:
        from sandbox import SandboxConfig, create_blueprint
        from integrations.wechatpay import merchant_public_pem
        from sandbox.config import PayMerchant, pages_from_app_json

        # The emulated WeChat knows the mini-program's pages as the real one knows the published package.
        app_json = Path(__file__).resolve().parent.parent / "miniprogram_stub" / "app.json"
        emulators = create_blueprint(
            SandboxConfig(
                apps={settings.wechat_appid: settings.wechat_secret},
                cardnet_keys=[settings.cardnet_api_key],
                state_path=f"{settings.var_dir}/sandbox.sqlite3",
                pages=pages_from_app_json(str(app_json)) if app_json.is_file() else [],
                # the emulated WeChat Pay knows our merchant: its app, APIv3 key and the public half of its key
                pay_merchants={settings.wechatpay_mchid: PayMerchant(
                    appid=settings.wechat_appid, apiv3_key=settings.wechatpay_apiv3_key,
                    merchant_serial=settings.wechatpay_merchant_serial,
                    merchant_public_key_pem=merchant_public_pem(settings.wechatpay_private_key_path))},
            )
        )
        app.blueprint(emulators)  # not part of the product's API: app.openapi leaves /sandbox out

    @app.after_server_start
    async def freeze_startup_objects(app: Sanic) -> None:
        # Everything loaded so far (pyHanko, reportlab, the routes...) lives as long as the process: out
        # of the collector's sight, a full collection no longer walks 100k objects (35 ms) under load.
        gc.collect()
        gc.freeze()

    @app.before_server_start
    async def start(app: Sanic) -> None:
        app.ctx.openapi = build_openapi(app, title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION)
        await init_db(settings.database_url, auto_migrate=not settings.is_production)
        await first_start(settings)  # `serve` did it before the workers; here for any other launcher
        app.ctx.http = build_http(settings)
        app.ctx.services = build_services(settings, app.ctx.http)
        if settings.is_production:  # the first contract should not wait for processes to start
            await app.ctx.services.contract_workers.warm_up()
        app.ctx.started_at = utcnow()  # a job that never succeeded is overdue counted from here (handlers.ops)
        app.ctx.worker_stop = asyncio.Event()
        app.ctx.worker_task = None
        await app.ctx.services.revocations.load()  # serving starts knowing which logins are revoked
        app.ctx.revocation_task = asyncio.get_running_loop().create_task(
            app.ctx.services.revocations.run(app.ctx.worker_stop), name="revocations")
        if settings.worker_in_server:  # sandbox: no second process to run (services.worker)
            app.ctx.worker_task = asyncio.get_running_loop().create_task(
                worker.run(app.ctx.services, settings, app.ctx.worker_stop, poll_s=min(30.0, settings.reconcile_every_s)),
                name="background-worker",
            )

    @app.before_server_stop
    async def stop_worker(app: Sanic) -> None:
        app.ctx.worker_stop.set()
        await asyncio.wait([app.ctx.revocation_task], timeout=5)
        if app.ctx.worker_task is not None:
            try:
                await asyncio.wait_for(app.ctx.worker_task, timeout=10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
            except Exception:  # noqa: BLE001 - shutting down; it has logged what went wrong
                pass

    @app.after_server_stop
    async def stop(app: Sanic) -> None:
        app.ctx.services.contract_workers.close()
        await app.ctx.http.aclose()
        await close_db()

    return app
