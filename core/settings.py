"""The settings type: one declaration per setting (type, default, bound, description).

The environment name of a setting is its field name in upper case (``access_ttl_s`` is ``ACCESS_TTL_S``).
The defaults here are what a setting is with nothing set outside sandbox mode; what sandbox mode fills in
when a setting is unset (the sandbox app id, generated dev keys, ...) and the reading of the environment
live in ``app.config``. Constructing ``Settings(...)`` reads nothing but its arguments (tests do).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

DAY = 24 * 3600
BASELINE_RULES = Path(__file__).resolve().parents[1] / "risk" / "baseline.json"


def derived(default: Any = None, *, description: str, **kwargs: Any) -> Any:
    """A field the loader computes: not read from the environment (and not in ``.env.example``)."""
    return Field(default, description=description, json_schema_extra={"from_env": False}, **kwargs)


def parse_keyring(raw: str, *, b64: bool) -> dict[str, bytes]:
    """Parse ``kid:value,kid:value``; the first entry is the active key."""
    ring: dict[str, bytes] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        kid, sep, value = part.partition(":")
        if not sep or not kid or not value:
            raise ValueError("expected 'kid:value[,kid:value]', got an entry without ':'")
        if b64:
            try:
                key = base64.b64decode(value, validate=True)
            except ValueError:
                raise ValueError(f"key {kid!r} is not base64") from None
            if len(key) != 32:
                raise ValueError(f"key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
            ring[kid] = key
        else:
            ring[kid] = value.encode()
    return ring


Seconds = Annotated[int, Field(gt=0)]
Keyring = Annotated[dict[str, bytes], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_ignore_empty=True, case_sensitive=False)

    app_env: Literal["sandbox", "production"] = Field(
        "sandbox", description="'sandbox' (everything local) or 'production' (refuses anything local)")
    database_url: str = Field(
        "", description="mysql://user:password@host:3306/db or sqlite://path; unset: SQLite under VAR_DIR")
    var_dir: str = Field("./var", description="where generated dev keys, the SQLite file and sandbox state live")
    self_base_url: str = Field(
        "http://127.0.0.1:8000", description="where this server is reached; the emulators' default URLs derive from it")
    log_level: str = Field("INFO", description="logging level")

    # WeChat mini-program. Base URLs of None mean "the emulator mounted on this server".
    wechat_appid: str = Field("", description="the mini-program's app id")
    wechat_secret: str = Field("", description="the mini-program's app secret")
    wechat_api_base: str | None = Field(None, description="WeChat's API (https://api.weixin.qq.com)")
    http_timeout_s: float = Field(5.0, gt=0, description="timeout of a call to WeChat or the card network, seconds")
    upstream_retries: int = Field(2, ge=0, description="retries after the first try, for -1 / 5xx / timeouts")

    # Bank-card element check (the card network).
    cardnet_api_base: str | None = Field(None, description="the card network's API")
    cardnet_api_key: str = Field("", description="the card network's API key")

    # Auth.
    jwt_keys: Keyring = Field(
        default_factory=dict, description="access JWT keys, kid:secret[,kid:secret]: the first signs, all verify")
    jwt_issuer: str = Field("openbank-mp", description="the access JWT's iss")
    jwt_audience: str = Field("openbank-miniprogram", description="the access JWT's aud")
    access_ttl_s: int = Field(900, gt=0, le=900, description="access JWT lifetime, seconds (at most 15 minutes)")
    revocation_poll_s: float = Field(
        2.0, gt=0, description="how soon a revoked login's access tokens stop working on every worker, seconds")
    refresh_ttl_s: Seconds = Field(30 * DAY, description="refresh token lifetime, seconds")

    # Personal data.
    pii_keys: Keyring = Field(
        default_factory=dict,
        description="personal-data keys, kid:base64(32 bytes)[,...]: the first encrypts, all decrypt")
    pii_index_key: bytes = Field(b"", description="the blind indexes' HMAC key, base64 of 32 bytes")

    # What the loader found (check-config and production refuse both).
    dev_keys: bool = derived(False, description="keys came from the generated dev-key file")
    dev_defaults: tuple[str, ...] = derived(
        (), description="the settings left unset that sandbox mode filled with a development value")
    validate_responses: bool = derived(
        False, description="tests: check every response of a documented operation against the OpenAPI document")

    risk_baseline_file: str = Field(
        str(BASELINE_RULES), description="the rule set put in force at a fresh install's first start ('' for none: "
        "then production refuses to start until an operator loads one, an empty one included)")
    sandbox_routes: bool = Field(False, description="mount the emulators under /sandbox (sandbox mode: on)")

    # Identity rules (bank settings; the minimum age is the account rules table's, services/accounts/rules.py).
    daily_attempt_limit: int = Field(5, ge=1, description="identity attempts a user may make a day")
    face_valid_s: Seconds = Field(30 * 60, description="how long a face verification stays valid, seconds")
    face_intent_s: Seconds = Field(5 * 60, description="how fresh a face verification a signature needs, seconds")
    upload_max_bytes: int = Field(4 * 1024 * 1024, gt=0, description="the largest uploaded image, bytes")
    rate_limits: Annotated[dict[str, tuple[int, int]] | None, NoDecode] = Field(
        None, description="abuse limits, name=count/seconds over the defaults; None: the defaults; {} ('off'): off")

    # E-signing.
    esign_key_path: str | None = Field(None, description="the bank's signing key, PEM (sandbox: a generated dev CA)")
    esign_cert_path: str | None = Field(None, description="the bank's signing certificate, PEM")
    esign_chain_path: str | None = Field(None, description="the certificate's chain, PEM")
    esign_tsa_url: str | None = Field(None, description="an RFC 3161 timestamp authority (PAdES B-T)")
    contract_draft_ttl_s: Seconds = Field(DAY, description="how long a contract draft can be signed, seconds")
    cjk_font_path: str | None = Field(
        None, description="a TrueType CJK font embedded in every contract (required in production)")
    esign_processes: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=0,
        description="processes that render and sign contracts per server worker (0: a thread in the worker)")

    # Stored files nothing refers to (a crash, or a lost race between writing a file and committing its row).
    storage_sweep_age_s: Seconds = Field(DAY, description="stored files nothing refers to are deleted this old, s")
    storage_sweep_every_s: Seconds = Field(3600, description="how often unreferenced files are looked for, seconds")

    # Accounts.
    bank_account_prefix: str = Field("", pattern=r"^[0-9]*$", description="the bank's account-number prefix")
    application_ttl_s: Seconds = Field(7 * DAY, description="how long an account application stays open, seconds")
    idempotency_ttl_s: int = Field(
        2 * DAY, ge=DAY, description="how long an Idempotency-Key's answer is kept, seconds: at least 86400, since "
        "a client may retry a money request for a day and a key forgotten sooner could move money twice")
    idempotency_lease_s: Seconds = Field(
        60, description="how long a request's claim on its key holds when it never says how it ended, seconds")
    outbox_max_attempts: int = Field(8, ge=1, description="deliveries the outbox tries before giving up")
    account_opened_template_id: str = Field(
        "", description="the subscribe-message template for 'account opened' ('': no message)")
    debit_template_id: str = Field(
        "", description="the subscribe-message template for a partner debit booked ('': no message)")
    arrears_template_id: str = Field(
        "", description="the subscribe-message template for a debit left in arrears ('': no message)")
    loss_reported_template_id: str = Field(
        "", description="the subscribe-message template for a loss report ('': no message)")
    id_expiry_template_id: str = Field(
        "", description="the subscribe-message template for the ID card about to expire ('': no message)")
    account_closed_template_id: str = Field(
        "", description="the subscribe-message template for an account closed ('': no message)")
    outbox_poll_s: float = Field(1.0, gt=0, description="how often the outbox looks for due messages, seconds")
    reconcile_every_s: float = Field(60.0, gt=0, description="how often pending card transfers are asked about, s")
    worker_in_server: bool = Field(
        False, description="run the background work inside the server (sandbox mode: on); else `python -m app worker`")
    worker_lease_s: float = Field(
        30.0, gt=0, description="how long a worker's claim on a job or outbox message holds without renewal, seconds")

    # WeChat Pay v3, public-key mode. In sandbox mode, unset values mean the emulator mounted on this
    # server, a dev merchant key generated into var/, and the emulator's platform key fetched from it.
    wechatpay_mchid: str = Field("", description="the merchant id")
    wechatpay_api_base: str | None = Field(None, description="the gateway (https://api.mch.weixin.qq.com)")
    wechatpay_private_key_path: str | None = Field(None, description="the merchant's API private key, PEM")
    wechatpay_merchant_serial: str = Field("", description="the merchant certificate's serial")
    wechatpay_apiv3_key: str = Field("", description="the 32-character APIv3 key")
    wechatpay_public_key_id: str = Field("", description="the platform public key's id (PUB_KEY_ID_...)")
    wechatpay_public_key_path: str | None = Field(None, description="the platform public key, PEM")
    wechatpay_notify_url: str | None = Field(None, description="the https URL WeChat Pay notifies")
    payment_ttl_s: Seconds = Field(30 * 60, description="an unpaid order is closed after this (its time_expire), s")
    bill_reconcile_hour: int = Field(
        10, ge=0, le=23, description="the hour (China Standard Time, 0-23) from which yesterday's trade bill is checked")
    wechat_push_token: str = Field("", description="message push: the console's Token (3-32 letters or digits)")
    wechat_push_aes_key: str = Field("", description="message push: the console's EncodingAESKey (43 characters)")

    # The staff console (/admin/): off unless enabled; production serves it only over TLS or behind a
    # trusted proxy (app.config.production_problems), since its cookies carry staff sessions.
    admin_enabled: bool = Field(False, description="serve the staff console under /admin/ (off: every /admin/ route is 404)")
    admin_idle_timeout_s: Seconds = Field(15 * 60, description="a staff session unused this long is refused, seconds")
    admin_session_lifetime_s: Seconds = Field(
        8 * 3600, description="a staff session ends this long after login however active, seconds")
    admin_lockout_after: int = Field(5, ge=1, description="failed staff logins in a row before the account locks")
    admin_lockout_base_s: Seconds = Field(
        60, description="the first lockout's length, seconds; each further failure doubles it")
    admin_lockout_max_s: Seconds = Field(3600, description="the longest lockout, seconds")
    admin_proposal_ttl_s: Seconds = Field(
        24 * 3600, description="a maker-checker proposal not approved within this expires, seconds")
    admin_four_eyes_above_fen: int = Field(
        500_000, ge=0, le=10**12, description="a refund, or a held transfer's approval, above this amount (fen) "
        "needs a second staff member's approval; at or below it one member's decision applies")
    admin_reveal_daily_allowance: int = Field(
        20, ge=0, description="full personal values a staff member may reveal per China Standard Time day "
        "(counted in the database, shared by every worker)")
    tls_cert_path: str | None = Field(None, description="the server's TLS certificate, PEM (serve terminates TLS)")
    tls_key_path: str | None = Field(None, description="the server's TLS private key, PEM")
    proxies_count: int = Field(
        0, ge=0, description="trusted reverse proxies in front of the server (they terminate TLS and set "
        "X-Forwarded-For/-Proto); 0: none")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   **_: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the arguments only: app.config reads the environment it is given

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Environment name -> field name, for every setting read from the environment."""
        return {name.upper(): name for name, f in cls.model_fields.items()
                if (f.json_schema_extra or {}).get("from_env", True)}

    @field_validator("jwt_keys", mode="before")
    @classmethod
    def _jwt_keyring(cls, value: Any) -> Any:
        return parse_keyring(value, b64=False) if isinstance(value, str) else value

    @field_validator("pii_keys", mode="before")
    @classmethod
    def _pii_keyring(cls, value: Any) -> Any:
        return parse_keyring(value, b64=True) if isinstance(value, str) else value

    @field_validator("pii_index_key", mode="before")
    @classmethod
    def _base64_key(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                raise ValueError("not base64") from None
        return value

    @field_validator("app_env", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return (value.strip().lower() or "sandbox") if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("self_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="before")
    @classmethod
    def _database_under_var_dir(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("database_url"):
            data = {**data, "database_url": f"sqlite://{Path(data.get('var_dir') or './var') / 'app.sqlite3'}"}
        return data

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated like the original (what ``dataclasses.replace`` was)."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})

    @property
    def wechat_base(self) -> str:
        return self.wechat_api_base or f"{self.self_base_url}/sandbox/wechat"

    @property
    def cardnet_base(self) -> str:
        return self.cardnet_api_base or f"{self.self_base_url}/sandbox/cardnet"

    @property
    def wechatpay_base(self) -> str:
        return self.wechatpay_api_base or f"{self.self_base_url}/sandbox/wechatpay"

    @property
    def wechatpay_notify(self) -> str:
        return self.wechatpay_notify_url or f"{self.self_base_url}/callbacks/wechatpay"

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def jwt_active_kid(self) -> str:
        return next(iter(self.jwt_keys))

    @property
    def pii_active_kid(self) -> str:
        return next(iter(self.pii_keys))
