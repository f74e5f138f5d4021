"""Settings from the environment (12-factor), with an optional ``.env`` file.

With nothing set the server runs in sandbox mode: SQLite under ``./var/``, the emulators mounted on the
same server, and dev keys generated once into ``./var/dev-keys.json``. ``APP_ENV=production`` refuses
anything that only makes sense locally and says which setting is wrong.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings

SANDBOX_APPID = "wxsandbox0000dev1"
SANDBOX_SECRET = "dev-only-sandbox-wechat-secret"
SANDBOX_CARDNET_KEY = "dev-only-sandbox-cardnet-key"
DEV_MARK = "dev-only"


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _rate_limits(raw: str | None) -> dict[str, tuple[int, int]] | None:
    """``RATE_LIMITS``: unset means the defaults (``services.ratelimit.DEFAULTS``)."""
    from services.ratelimit import parse

    if raw is None or raw.strip() == "":
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _parse_keyring(raw: str, name: str, *, b64: bool) -> dict[str, bytes]:
    """Parse ``kid:value,kid:value``; the first entry is the active key."""
    ring: dict[str, bytes] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        kid, sep, value = part.partition(":")
        if not sep or not kid or not value:
            raise ConfigError(f"{name}: expected 'kid:value[,kid:value]', got an entry without ':'")
        if b64:
            try:
                key = base64.b64decode(value, validate=True)
            except ValueError as exc:
                raise ConfigError(f"{name}: key {kid!r} is not base64") from exc
            if len(key) != 32:
                raise ConfigError(f"{name}: key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
            ring[kid] = key
        else:
            ring[kid] = value.encode()
    return ring


def _dev_keys(var_dir: Path) -> dict:
    """Generate the sandbox's keys once and keep them, so restarts keep sessions and data readable.

    Several processes may start at once on one ``var`` folder: the file is written aside and linked
    into place, so every process ends up reading the same complete keys."""
    path = var_dir / "dev-keys.json"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        keys = {
            "jwt": f"{DEV_MARK}-{secrets.token_urlsafe(32)}",
            "pii": base64.b64encode(secrets.token_bytes(32)).decode(),
            "pii_index": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
        tmp = var_dir / f".dev-keys.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(keys, fh)
        try:
            os.link(tmp, path)  # fails if another process got there first; theirs wins
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return json.loads(path.read_text())


SANDBOX_MCHID = "1900000001"
SANDBOX_PUSH_TOKEN = "devonlysandboxpushtoken"


# The settings sandbox mode gives a development value when they are unset (production leaves them empty).
DEV_DEFAULTED = (
    "DATABASE_URL", "SANDBOX_ROUTES", "JWT_KEYS", "PII_KEYS", "PII_INDEX_KEY", "WECHAT_APPID", "WECHAT_SECRET",
    "CARDNET_API_KEY", "BANK_ACCOUNT_PREFIX", "ACCOUNT_OPENED_TEMPLATE_ID", "WECHATPAY_MCHID",
    "WECHATPAY_PRIVATE_KEY_PATH", "WECHATPAY_MERCHANT_SERIAL", "WECHATPAY_APIV3_KEY", "WECHAT_PUSH_TOKEN",
    "WECHAT_PUSH_AES_KEY",
)
BASELINE_RULES = Path(__file__).resolve().parents[1] / "risk" / "baseline.json"


def _wechatpay(get, var_dir: Path, production: bool, pii_index: bytes) -> dict:
    """WeChat Pay settings; in sandbox mode a dev merchant (key generated once into ``var/``, APIv3 key
    derived from the dev keys) that the mounted emulator is told about."""
    values = {
        "wechatpay_mchid": get("WECHATPAY_MCHID"),
        "wechatpay_api_base": get("WECHATPAY_API_BASE") or None,
        "wechatpay_private_key_path": get("WECHATPAY_PRIVATE_KEY_PATH") or None,
        "wechatpay_merchant_serial": get("WECHATPAY_MERCHANT_SERIAL"),
        "wechatpay_apiv3_key": get("WECHATPAY_APIV3_KEY"),
        "wechatpay_public_key_id": get("WECHATPAY_PUBLIC_KEY_ID"),
        "wechatpay_public_key_path": get("WECHATPAY_PUBLIC_KEY_PATH") or None,
        "wechatpay_notify_url": get("WECHATPAY_NOTIFY_URL") or None,
        "payment_ttl_s": int(get("PAYMENT_TTL_S", "1800")),
        "bill_reconcile_hour": int(get("BILL_RECONCILE_HOUR", "10")),
        "wechat_push_token": get("WECHAT_PUSH_TOKEN"),
        "wechat_push_aes_key": get("WECHAT_PUSH_AES_KEY"),
    }
    if production:
        return values
    if not values["wechatpay_private_key_path"]:
        from integrations.wechatpay import dev_merchant_key

        path, serial = dev_merchant_key(var_dir)
        values["wechatpay_private_key_path"] = str(path)
        values["wechatpay_merchant_serial"] = values["wechatpay_merchant_serial"] or serial
    values["wechatpay_mchid"] = values["wechatpay_mchid"] or SANDBOX_MCHID
    values["wechat_push_token"] = values["wechat_push_token"] or SANDBOX_PUSH_TOKEN  # WeChat: 3-32 letters or digits
    if not values["wechat_push_aes_key"]:
        import hashlib

        values["wechat_push_aes_key"] = base64.b64encode(
            hashlib.sha256(b"dev-only push key " + pii_index).digest()).decode()[:43]
    if not values["wechatpay_apiv3_key"]:
        import hashlib

        values["wechatpay_apiv3_key"] = hashlib.sha256(b"dev-only wechatpay apiv3 " + pii_index).hexdigest()[:32]
    return values


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    if env is None:
        if dotenv:
            from dotenv import load_dotenv

            load_dotenv(override=False)
        env = os.environ
    get = lambda k, d="": env.get(k, d)  # noqa: E731

    app_env = get("APP_ENV", "sandbox").strip().lower() or "sandbox"
    if app_env not in {"sandbox", "production"}:
        raise ConfigError(f"APP_ENV must be 'sandbox' or 'production', got {app_env!r}")
    production = app_env == "production"
    var_dir = Path(get("VAR_DIR", "./var"))

    jwt_keys = _parse_keyring(get("JWT_KEYS"), "JWT_KEYS", b64=False)
    pii_keys = _parse_keyring(get("PII_KEYS"), "PII_KEYS", b64=True)
    pii_index_raw = get("PII_INDEX_KEY")
    pii_index = base64.b64decode(pii_index_raw) if pii_index_raw else b""

    dev = False
    if not production and not (jwt_keys and pii_keys and pii_index):
        generated = _dev_keys(var_dir)
        dev = True
        jwt_keys = jwt_keys or {"dev1": generated["jwt"].encode()}
        pii_keys = pii_keys or {"dev1": base64.b64decode(generated["pii"])}
        pii_index = pii_index or base64.b64decode(generated["pii_index"])

    # what sandbox mode fills in when these are unset: development values, every one unfit for production
    dev_defaults = () if production else tuple(name for name in DEV_DEFAULTED if not get(name))
    settings = Settings(
        app_env=app_env,
        dev_defaults=dev_defaults,
        risk_baseline_file=get("RISK_BASELINE_FILE", str(BASELINE_RULES)),
        database_url=get("DATABASE_URL") or f"sqlite://{var_dir / 'app.sqlite3'}",
        var_dir=str(var_dir),
        self_base_url=get("SELF_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
        log_level=get("LOG_LEVEL", "INFO").upper(),
        wechat_appid=get("WECHAT_APPID") or ("" if production else SANDBOX_APPID),
        wechat_secret=get("WECHAT_SECRET") or ("" if production else SANDBOX_SECRET),
        wechat_api_base=get("WECHAT_API_BASE") or None,
        http_timeout_s=float(get("HTTP_TIMEOUT_S", "5")),
        upstream_retries=int(get("UPSTREAM_RETRIES", "2")),
        cardnet_api_base=get("CARDNET_API_BASE") or None,
        cardnet_api_key=get("CARDNET_API_KEY") or ("" if production else SANDBOX_CARDNET_KEY),
        jwt_keys=jwt_keys,
        jwt_issuer=get("JWT_ISSUER", "openbank-mp"),
        jwt_audience=get("JWT_AUDIENCE", "openbank-miniprogram"),
        access_ttl_s=int(get("ACCESS_TTL_S", "900")),
        revocation_poll_s=float(get("REVOCATION_POLL_S", "2")),
        refresh_ttl_s=int(get("REFRESH_TTL_S", str(30 * 24 * 3600))),
        pii_keys=pii_keys,
        pii_index_key=pii_index,
        dev_keys=dev,
        sandbox_routes=_truthy(get("SANDBOX_ROUTES"), default=not production),
        min_age_years=int(get("MIN_AGE_YEARS", "16")),
        daily_attempt_limit=int(get("DAILY_ATTEMPT_LIMIT", "5")),
        face_valid_s=int(get("FACE_VALID_S", str(30 * 60))),
        upload_max_bytes=int(get("UPLOAD_MAX_BYTES", str(4 * 1024 * 1024))),
        rate_limits=_rate_limits(get("RATE_LIMITS")),
        esign_key_path=get("ESIGN_KEY_PATH") or None,
        esign_cert_path=get("ESIGN_CERT_PATH") or None,
        esign_chain_path=get("ESIGN_CHAIN_PATH") or None,
        esign_tsa_url=get("ESIGN_TSA_URL") or None,
        contract_draft_ttl_s=int(get("CONTRACT_DRAFT_TTL_S", str(24 * 3600))),
        cjk_font_path=get("CJK_FONT_PATH") or None,
        esign_processes=int(get("ESIGN_PROCESSES", str(os.cpu_count() or 1))),
        bank_account_prefix=get("BANK_ACCOUNT_PREFIX") or ("" if production else "623099"),
        application_ttl_s=int(get("APPLICATION_TTL_S", str(7 * 24 * 3600))),
        idempotency_ttl_s=int(get("IDEMPOTENCY_TTL_S", str(48 * 3600))),
        idempotency_lease_s=int(get("IDEMPOTENCY_LEASE_S", "60")),
        outbox_max_attempts=int(get("OUTBOX_MAX_ATTEMPTS", "8")),
        account_opened_template_id=get("ACCOUNT_OPENED_TEMPLATE_ID")
        or ("" if production else "fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE"),
        worker_in_server=_truthy(get("WORKER_IN_SERVER"), default=not production),
        worker_lease_s=float(get("WORKER_LEASE_S", "30")),
        outbox_poll_s=float(get("OUTBOX_POLL_S", "1")),
        reconcile_every_s=float(get("RECONCILE_EVERY_S", "60")),
        storage_sweep_age_s=int(get("STORAGE_SWEEP_AGE_S", str(24 * 3600))),
        storage_sweep_every_s=int(get("STORAGE_SWEEP_EVERY_S", "3600")),
        **_wechatpay(get, var_dir, production, pii_index),
    )
    check(settings)
    return settings


def production_problems(s: Settings) -> list[str]:
    """Everything that makes this configuration unfit for production, one sentence each."""
    problems: list[str] = [f"{name} is unset: sandbox mode gives it a development value" for name in s.dev_defaults]
    if s.sandbox_routes:
        problems.append("SANDBOX_ROUTES is on: the emulators must not be mounted in production")
    if s.dev_keys:
        problems.append("dev keys from var/dev-keys.json are in use: set JWT_KEYS, PII_KEYS and PII_INDEX_KEY")
    if s.is_sqlite:
        problems.append("DATABASE_URL is SQLite: production needs MySQL (mysql://...)")
    if s.rate_limits == {}:
        problems.append("RATE_LIMITS is off: production keeps the abuse limits (set them, or leave it unset)")
    for name, value in [
        ("WECHAT_APPID", s.wechat_appid),
        ("WECHAT_SECRET", s.wechat_secret),
        ("WECHAT_API_BASE", s.wechat_api_base),
        ("CARDNET_API_BASE", s.cardnet_api_base),
        ("CARDNET_API_KEY", s.cardnet_api_key),
        ("JWT_KEYS", s.jwt_keys),
        ("PII_KEYS", s.pii_keys),
        ("PII_INDEX_KEY", s.pii_index_key),
        ("ESIGN_KEY_PATH", s.esign_key_path),
        ("ESIGN_CERT_PATH", s.esign_cert_path),
        ("BANK_ACCOUNT_PREFIX", s.bank_account_prefix),
        ("ACCOUNT_OPENED_TEMPLATE_ID", s.account_opened_template_id),
        ("WECHATPAY_MCHID", s.wechatpay_mchid),
        ("WECHATPAY_API_BASE", s.wechatpay_api_base),
        ("WECHATPAY_PRIVATE_KEY_PATH", s.wechatpay_private_key_path),
        ("WECHATPAY_MERCHANT_SERIAL", s.wechatpay_merchant_serial),
        ("WECHATPAY_APIV3_KEY", s.wechatpay_apiv3_key),
        ("WECHATPAY_PUBLIC_KEY_ID", s.wechatpay_public_key_id),
        ("WECHATPAY_PUBLIC_KEY_PATH", s.wechatpay_public_key_path),
        ("WECHATPAY_NOTIFY_URL", s.wechatpay_notify_url),
        ("WECHAT_PUSH_TOKEN", s.wechat_push_token),
        ("WECHAT_PUSH_AES_KEY", s.wechat_push_aes_key),
    ]:
        if not value:
            problems.append(f"{name} is missing")
    for name, value in [
        ("WECHAT_SECRET", s.wechat_secret),
        ("CARDNET_API_KEY", s.cardnet_api_key),
        *((f"JWT_KEYS[{k}]", v.decode(errors="replace")) for k, v in s.jwt_keys.items()),
    ]:
        if value and DEV_MARK in value:
            problems.append(f"{name} is a dev-only value")
    for kid in [*s.jwt_keys, *s.pii_keys]:
        if kid.startswith("dev"):
            problems.append(f"key id {kid!r} is a dev key id")
    if s.wechat_push_aes_key and len(s.wechat_push_aes_key) != 43:
        problems.append("WECHAT_PUSH_AES_KEY must be the 43-character EncodingAESKey")
    if s.wechat_push_token == SANDBOX_PUSH_TOKEN:
        problems.append("WECHAT_PUSH_TOKEN is a dev-only value")
    if s.wechatpay_apiv3_key and len(s.wechatpay_apiv3_key.encode()) != 32:
        problems.append("WECHATPAY_APIV3_KEY must be 32 characters")
    if s.wechatpay_notify_url and not s.wechatpay_notify_url.startswith("https://"):
        problems.append("WECHATPAY_NOTIFY_URL must be https")
    for name, url in [("WECHAT_API_BASE", s.wechat_api_base), ("CARDNET_API_BASE", s.cardnet_api_base),
                      ("WECHATPAY_API_BASE", s.wechatpay_api_base)]:
        if url and ("/sandbox" in url or "127.0.0.1" in url or "localhost" in url):
            problems.append(f"{name} points at a sandbox or local emulator ({url})")
    if s.wechat_appid == SANDBOX_APPID:
        problems.append("WECHAT_APPID is the sandbox app id")
    for kid, secret in s.jwt_keys.items():
        if len(secret) < 32:
            problems.append(f"JWT_KEYS[{kid}] is shorter than 32 bytes")
    if len(s.pii_index_key) not in (0, 32):
        problems.append("PII_INDEX_KEY must be 32 bytes, base64")
    if not s.cjk_font_path:
        problems.append("CJK_FONT_PATH is missing: signed contracts must embed a CJK font")
    else:
        from services.esign.render import font_problem

        problem = font_problem(s.cjk_font_path, search_paths=())  # that file, no fallback
        if problem:
            problems.append(problem)
    return list(dict.fromkeys(problems))  # each once (both key rings may use the id "dev1")


def check(s: Settings) -> None:
    if s.is_production:
        problems = production_problems(s)
        if problems:
            raise ConfigError("refusing to start in production:\n  - " + "\n  - ".join(problems))
    if s.access_ttl_s > 900:
        raise ConfigError("ACCESS_TTL_S must be at most 900 seconds (15 minutes)")
    if s.idempotency_ttl_s < 24 * 3600:
        # a client may retry a money request for a day; a key forgotten sooner could move money twice
        raise ConfigError("IDEMPOTENCY_TTL_S must be at least 86400 seconds (24 hours)")
    if not 0 <= s.bill_reconcile_hour <= 23:
        raise ConfigError("BILL_RECONCILE_HOUR must be an hour of the day, 0 to 23")
