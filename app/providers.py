"""Builds every outside-facing client once per worker, from settings. Swapping the sandbox for real
WeChat is a URL change here, nowhere else."""

from __future__ import annotations

from pathlib import Path

import httpx

from core.pii import PiiCipher
from core.settings import Settings
from core.tokens import JWTCodec
from integrations.cardnet import CardNetworkClient
from integrations.storage import LocalEncryptedStorage
from integrations.webhooks import WebhookSender
from integrations.wechatpay import WeChatPayClient
from integrations.wechat import MiniProgramClient
from services.auth.revocation import Revocations
from services.cache import DbTokenStore
from services.esign.pool import ContractWorkers, IdentitySource
from services.context import ServiceContext


def build_services(settings: Settings, http: httpx.AsyncClient) -> ServiceContext:
    pii = PiiCipher(settings.pii_keys, settings.pii_index_key)
    identity_source = IdentitySource(
        sandbox=not settings.is_production,
        var_dir=settings.var_dir,
        key_path=settings.esign_key_path,
        cert_path=settings.esign_cert_path,
        chain_path=settings.esign_chain_path,
    )
    signer = identity_source.load()
    return ServiceContext(
        settings=settings,
        revocations=Revocations(window_s=settings.access_ttl_s, poll_s=settings.revocation_poll_s),
        pii=pii,
        jwt=JWTCodec(
            settings.jwt_keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_ttl_s,
        ),
        wechat=MiniProgramClient(
            base_url=settings.wechat_base,
            appid=settings.wechat_appid,
            secret=settings.wechat_secret,
            http=http,
            token_store=DbTokenStore(),
            retries=settings.upstream_retries,
        ),
        cardnet=CardNetworkClient(
            base_url=settings.cardnet_base,
            api_key=settings.cardnet_api_key,
            http=http,
            retries=settings.upstream_retries,
        ),
        storage=LocalEncryptedStorage(Path(settings.var_dir) / "uploads", pii),
        signer=signer,
        contract_workers=ContractWorkers(
            processes=settings.esign_processes, identity=signer, source=identity_source,
            font_path=settings.cjk_font_path,
        ),
        webhooks=WebhookSender(http, allow_loopback=not settings.is_production),
        wechatpay=WeChatPayClient(
            mchid=settings.wechatpay_mchid, appid=settings.wechat_appid, api_base=settings.wechatpay_base,
            private_key_path=settings.wechatpay_private_key_path or "", merchant_serial=settings.wechatpay_merchant_serial,
            apiv3_key=settings.wechatpay_apiv3_key, public_key_id=settings.wechatpay_public_key_id,
            public_key_path=settings.wechatpay_public_key_path, notify_url=settings.wechatpay_notify,
            timeout_s=settings.http_timeout_s,
            platform_key_url=None if settings.is_production else f"{settings.self_base_url}/sandbox/control/pay/platform-key",
        ),
    )


def build_http(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_s, connect=min(2.0, settings.http_timeout_s)),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        trust_env=False,
    )
