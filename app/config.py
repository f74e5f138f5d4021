"""Settings from the environment (12-factor), with an optional ``.env`` file.

With nothing set the server runs in sandbox mode: SQLite under ``./var/``, the emulators mounted on the
same server, and dev keys generated once into ``./var/dev-keys.json``. ``APP_ENV=production`` refuses
anything that only makes sense locally and says which setting is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from core.errors import ConfigError
from core.settings import Settings

SANDBOX_APPID = "wxsandbox0000dev1"
SANDBOX_SECRET = "dev-only-sandbox-wechat-secret"
SANDBOX_CARDNET_KEY = "dev-only-sandbox-cardnet-key"
DEV_MARK = "dev-only"


class _Environment(EnvSettingsSource):
    """pydantic-settings' reading of environment variables, over the mapping given rather than ``os.environ``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


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

# What sandbox mode gives a setting left unset (production leaves it at its declared default).
SANDBOX_VALUES: dict[str, object] = {
    "wechat_appid": SANDBOX_APPID,
    "wechat_secret": SANDBOX_SECRET,
    "cardnet_api_key": SANDBOX_CARDNET_KEY,
    "bank_account_prefix": "623099",  # a made-up one
    "account_opened_template_id": "fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE",  # the sandbox's templates
    "debit_template_id": "OyU4C0AHaaok3lDZsIiyqB5mApgyNRFSCeGjwkNclY0",
    "arrears_template_id": "o5P84JR1UN1RUg2Pvklo4Cnv6R8CLDwYtrwvLINqKgk",
    "loss_reported_template_id": "MoGCd-tAGbTaoi68ckIliO6I2qfiUzvbhIhJTThW1Qw",
    "id_expiry_template_id": "utQ-DAmesEIiAWoMh7FNh0f-S5d1A1vfIRG_PBQmJXU",
    "account_closed_template_id": "G59kAsodnJGDk1l4UdWAFkINByntvi08ZVry8IYa0Yc",
    "wechatpay_mchid": SANDBOX_MCHID,
    "wechat_push_token": SANDBOX_PUSH_TOKEN,  # WeChat: 3-32 letters or digits
    "sandbox_routes": True,
    "worker_in_server": True,
}
# The settings sandbox mode gives a development value when they are unset, each unfit for production
# (check-config names them). WORKER_IN_SERVER is a sandbox value too, but fine in production.
DEV_DEFAULTED = (
    "DATABASE_URL", "SANDBOX_ROUTES", "JWT_KEYS", "PII_KEYS", "PII_INDEX_KEY", "WECHAT_APPID", "WECHAT_SECRET",
    "CARDNET_API_KEY", "BANK_ACCOUNT_PREFIX", "ACCOUNT_OPENED_TEMPLATE_ID", "WECHATPAY_MCHID",
    "WECHATPAY_PRIVATE_KEY_PATH", "WECHATPAY_MERCHANT_SERIAL", "WECHATPAY_APIV3_KEY", "WECHAT_PUSH_TOKEN",
    "WECHAT_PUSH_AES_KEY", "DEBIT_TEMPLATE_ID", "ARREARS_TEMPLATE_ID", "LOSS_REPORTED_TEMPLATE_ID", "ID_EXPIRY_TEMPLATE_ID", "ACCOUNT_CLOSED_TEMPLATE_ID",
)
# An empty value that means something ("" for no baseline rule set) rather than "unset".
EMPTY_IS_A_VALUE = ("RISK_BASELINE_FILE",)


def _validated(values: dict) -> Settings:
    """``Settings(**values)``, a bad value a ConfigError naming its environment variable."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            field = Settings.model_fields.get(name)
            about = f" — {field.description}" if field is not None and field.description else ""
            lines.append(f"{name.upper()}: {message}{about}")
        raise ConfigError("invalid settings:\n  - " + "\n  - ".join(lines)) from None


def _from_environment(env: Mapping[str, str]) -> dict:
    """The settings given in ``env``, by field name, as pydantic-settings reads them (empty is unset)."""
    try:
        values = _Environment(env)()
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    derived = set(Settings.model_fields) - set(Settings.env_names().values())
    values = {name: value for name, value in values.items() if name not in derived}
    for name in EMPTY_IS_A_VALUE:
        if env.get(name) == "":
            values[name.lower()] = ""
    if isinstance(values.get("rate_limits"), str):
        values["rate_limits"] = _rate_limits(values["rate_limits"])
    return values


def _rate_limits(raw: str) -> dict[str, tuple[int, int]]:
    """``RATE_LIMITS``: parsed over the defaults (``services.ratelimit.DEFAULTS``)."""
    from services.ratelimit import parse

    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _sandbox_values(given: Settings, unset: set[str]) -> dict:
    """What sandbox mode fills in: the constant dev values, generated dev keys (once, into ``var/``), a dev
    merchant key the mounted emulator is told about, and push and APIv3 keys derived from the dev keys."""
    values: dict = {name: value for name, value in SANDBOX_VALUES.items() if name in unset}
    var_dir = Path(given.var_dir)
    jwt_keys, pii_keys, pii_index = given.jwt_keys, given.pii_keys, given.pii_index_key
    if not (jwt_keys and pii_keys and pii_index):
        generated = _dev_keys(var_dir)
        values["dev_keys"] = True
        values["jwt_keys"] = jwt_keys or {"dev1": generated["jwt"].encode()}
        values["pii_keys"] = pii_keys or {"dev1": base64.b64decode(generated["pii"])}
        values["pii_index_key"] = pii_index = pii_index or base64.b64decode(generated["pii_index"])
    if not given.wechatpay_private_key_path:
        from integrations.wechatpay import dev_merchant_key

        path, serial = dev_merchant_key(var_dir)
        values["wechatpay_private_key_path"] = str(path)
        values["wechatpay_merchant_serial"] = given.wechatpay_merchant_serial or serial
    if not given.wechat_push_aes_key:
        values["wechat_push_aes_key"] = base64.b64encode(
            hashlib.sha256(b"dev-only push key " + pii_index).digest()).decode()[:43]
    if not given.wechatpay_apiv3_key:
        values["wechatpay_apiv3_key"] = hashlib.sha256(b"dev-only wechatpay apiv3 " + pii_index).hexdigest()[:32]
    return values


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """The settings from ``env`` (default: the environment, after ``.env`` when ``dotenv``), checked."""
    if env is None:
        if dotenv:
            from dotenv import load_dotenv

            load_dotenv(override=False)
        env = os.environ
    given = _validated(_from_environment(env))
    if given.is_production:
        settings = given
    else:
        unset = {name for name in Settings.env_names() if not env.get(name)}
        dev_defaults = tuple(name for name in DEV_DEFAULTED if name in unset)
        fills = _sandbox_values(given, {name.lower() for name in unset})
        settings = given.replace(**fills, dev_defaults=dev_defaults)
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
        ("DEBIT_TEMPLATE_ID", s.debit_template_id),
        ("ARREARS_TEMPLATE_ID", s.arrears_template_id),
        ("LOSS_REPORTED_TEMPLATE_ID", s.loss_reported_template_id),
        ("ID_EXPIRY_TEMPLATE_ID", s.id_expiry_template_id),
        ("ACCOUNT_CLOSED_TEMPLATE_ID", s.account_closed_template_id),
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
    problem = admin_transport_problem(s)
    if problem:
        problems.append(problem)
    if not s.cjk_font_path:
        problems.append("CJK_FONT_PATH is missing: signed contracts must embed a CJK font")
    else:
        from services.esign.render import font_problem

        problem = font_problem(s.cjk_font_path, search_paths=())  # that file, no fallback
        if problem:
            problems.append(problem)
    return list(dict.fromkeys(problems))  # each once (both key rings may use the id "dev1")


def admin_transport_problem(s: Settings) -> str | None:
    """Why production may not serve the staff console as configured, or None. Its session cookies are
    ``Secure`` there: without TLS here (TLS_CERT_PATH, TLS_KEY_PATH) or a trusted proxy terminating it
    (PROXIES_COUNT), a staff login would travel in clear, or the client IP in its audit would be a proxy's."""
    if not (s.is_production and s.admin_enabled):
        return None
    if s.tls_cert_path and s.tls_key_path:
        return None
    if s.proxies_count > 0:
        return None
    return ("ADMIN_ENABLED is on without TLS: set TLS_CERT_PATH and TLS_KEY_PATH, or PROXIES_COUNT for the "
            "trusted reverse proxy that terminates TLS in front of the server")


def check(s: Settings) -> None:
    if s.is_production:
        problems = production_problems(s)
        if problems:
            raise ConfigError("refusing to start in production:\n  - " + "\n  - ".join(problems))
    # the bounds of single settings (ACCESS_TTL_S at most 900, IDEMPOTENCY_TTL_S at least 86400, ...) are
    # declared with them in core.settings and refused when the environment is read
