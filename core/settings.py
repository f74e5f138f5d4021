"""The settings type. Loading it from the environment lives in ``app.config``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    app_env: str = "sandbox"  # "sandbox" (default, everything local) or "production"
    database_url: str = "sqlite://./var/app.sqlite3"
    var_dir: str = "./var"
    # Where this server itself is reached; the mounted emulators' default base URLs derive from it.
    self_base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"

    # WeChat mini-program. Base URLs of None mean "the emulator mounted on this server".
    wechat_appid: str = ""
    wechat_secret: str = ""
    wechat_api_base: str | None = None
    http_timeout_s: float = 5.0
    upstream_retries: int = 2  # retries after the first try, for -1 / 5xx / timeouts

    # Bank-card element check (the card network).
    cardnet_api_base: str | None = None
    cardnet_api_key: str = ""

    # Auth. jwt_keys maps kid -> secret; the first kid signs, all verify (rotation).
    jwt_keys: dict[str, bytes] = field(default_factory=dict)
    jwt_issuer: str = "openbank-mp"
    jwt_audience: str = "openbank-miniprogram"
    access_ttl_s: int = 900
    revocation_poll_s: float = 2.0  # how soon a revoked login's access tokens stop working on every worker
    refresh_ttl_s: int = 30 * 24 * 3600

    # Personal data. pii_keys maps kid -> 32-byte AES key; the first kid encrypts, all decrypt.
    pii_keys: dict[str, bytes] = field(default_factory=dict)
    pii_index_key: bytes = b""

    # Whether keys came from the generated dev-key file (refused in production).
    dev_keys: bool = False
    # The settings left unset that sandbox mode filled with a development default (check-config names them).
    dev_defaults: tuple[str, ...] = ()
    # The rule set put in force at a fresh install's first start (RISK_BASELINE_FILE; "" for none: then
    # production refuses to start until an operator loads one, an empty one included).
    risk_baseline_file: str = ""
    sandbox_routes: bool = True

    # Identity rules (bank settings).
    min_age_years: int = 16
    daily_attempt_limit: int = 5
    face_valid_s: int = 30 * 60
    face_intent_s: int = 5 * 60
    upload_max_bytes: int = 4 * 1024 * 1024
    # Abuse limits (services.ratelimit): name -> (requests, window seconds); None: the defaults; {}: off.
    rate_limits: dict[str, tuple[int, int]] | None = None

    # E-signing: the bank's key and certificate (a generated dev CA in sandbox mode when unset),
    # an optional RFC 3161 timestamp authority (PAdES B-T), and how long a draft can be signed.
    esign_key_path: str | None = None
    esign_cert_path: str | None = None
    esign_chain_path: str | None = None
    esign_tsa_url: str | None = None
    contract_draft_ttl_s: int = 24 * 3600
    # A TrueType CJK font embedded in every contract (required in production; sandbox searches the
    # usual system paths and falls back, loudly, to a non-embedded font).
    cjk_font_path: str | None = None
    # Processes that render and sign contracts for each server worker (0: a thread in the worker).
    esign_processes: int = 2

    # Stored files nothing refers to (a crash or a lost race between writing a file and committing its
    # row) are deleted by the worker once older than this, checked this often.
    storage_sweep_age_s: int = 24 * 3600
    storage_sweep_every_s: int = 3600

    # Accounts. The bank's account-number prefix (sandbox: a made-up one), how long an application stays
    # open, how long an Idempotency-Key's answer is kept, how often the outbox tries a delivery, and the
    # subscribe-message template for "account opened" (empty: no message).
    bank_account_prefix: str = "623099"
    application_ttl_s: int = 7 * 24 * 3600
    idempotency_ttl_s: int = 48 * 3600
    # How long a request's claim on its key holds when it never says how it ended (it died, or the database did).
    idempotency_lease_s: int = 60
    outbox_max_attempts: int = 8
    account_opened_template_id: str = "fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE"  # the sandbox's template
    outbox_poll_s: float = 1.0
    reconcile_every_s: float = 60.0  # how often pending card transfers are asked about
    # Run the background work (services.worker) inside the server (sandbox); otherwise
    # `python -m app worker` does.
    worker_in_server: bool = False
    # How long a worker's claim on a job or an outbox message holds without renewal: how long the work of
    # a worker that died waits before another takes it. Longer than one outbox delivery can take.
    worker_lease_s: float = 30.0

    # WeChat Pay v3, public-key mode. In sandbox mode, unset values mean the emulator mounted on this
    # server, a dev merchant key generated into var/, and the emulator's platform key fetched from it.
    wechatpay_mchid: str = ""
    wechatpay_api_base: str | None = None
    wechatpay_private_key_path: str | None = None
    wechatpay_merchant_serial: str = ""
    wechatpay_apiv3_key: str = ""
    wechatpay_public_key_id: str = ""
    wechatpay_public_key_path: str | None = None
    wechatpay_notify_url: str | None = None
    payment_ttl_s: int = 30 * 60  # an unpaid order is closed after this (its time_expire)
    # The daily trade-bill reconciliation checks yesterday's bill from this hour, China Standard Time
    # (WeChat Pay makes a day's bill from about 10:00 the next day).
    bill_reconcile_hour: int = 10
    # Message push (消息推送) from WeChat to /callbacks/wechat/push: the Token and EncodingAESKey set in
    # the mini-program's console (safe mode); JSON format.
    wechat_push_token: str = ""
    wechat_push_aes_key: str = ""

    # Tests: check every response of a documented operation against the OpenAPI document.
    validate_responses: bool = False

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
