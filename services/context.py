"""What services need from the outside world, built once by ``app.providers`` and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from core.pii import PiiCipher
from core.settings import Settings
from core.tokens import JWTCodec
from integrations.cardnet import CardNetworkClient
from integrations.storage import ObjectStorage
from integrations.webhooks import WebhookSender
from integrations.wechatpay import WeChatPayClient
from integrations.wechat import MiniProgramClient
from services.auth.revocation import Revocations
from services.esign.certs import BankSigningIdentity
from services.esign.pool import ContractWorkers


@dataclass
class ServiceContext:
    settings: Settings
    pii: PiiCipher
    jwt: JWTCodec
    wechat: MiniProgramClient
    cardnet: CardNetworkClient
    storage: ObjectStorage
    signer: BankSigningIdentity  # the bank's e-signing key and certificate
    contract_workers: ContractWorkers  # render and sign contracts in worker processes
    webhooks: WebhookSender  # partners' callback URLs (never the bank's own network)
    wechatpay: WeChatPayClient  # WeChat Pay v3 (the mounted emulator in sandbox mode)
    revocations: Revocations  # revoked logins, reloaded every few seconds (services.auth.revocation)
