"""Configuration of the sandbox emulators (WeChat mini-program server API and card-check network).

Environment variables read by :meth:`SandboxConfig.from_env`:

- ``SANDBOX_APPS``: ``appid:secret,appid:secret`` (the mini-programs the emulated WeChat knows)
- ``SANDBOX_CARDNET_KEYS``: comma-separated bearer keys accepted by the card network
- ``SANDBOX_STATE_PATH``: path of the SQLite state file shared by every worker process
- ``SANDBOX_PAGES``: comma-separated pages of the mini-program (``pages/index/index,...``), or
- ``SANDBOX_APP_JSON``: path of the mini-program's ``app.json``, whose ``pages`` (and subpackage
  pages) are read. Giving both is an error.
- ``SANDBOX_PAY_MERCHANTS``: path of a JSON file naming the WeChat Pay merchants the emulated
  ``api.mch.weixin.qq.com`` knows: ``{"<mchid>": {"appid", "apiv3_key", "merchant_serial",
  "merchant_public_key_pem" | "merchant_public_key_path"}}`` (a relative key path is read relative to
  the JSON file); see :class:`PayMerchant`
- ``SANDBOX_PAY_RETRY_SCHEDULE_S``: the pauses between the deliveries of a payment notification that
  was not acknowledged: comma-separated seconds (``0.2,0.2,0.5,1,2,5``), ``wechat`` (WeChat's own
  15 s/15 s/30 s/3 m/... schedule) or ``wechat/N`` (that schedule divided by N)
- ``SANDBOX_PAY_REFUND_DELAY_S``: seconds a refund stays PROCESSING before it succeeds (0: at once)
- ``SANDBOX_PAY_NOTIFY_TIMEOUT_S``: how long a notification delivery waits for the answer (WeChat: 5)

Pages: WeChat's subscribeMessage.send refuses a ``page`` that is not a page of the released
mini-program with 41030 ("page 路径不正确,需要保证在现网版本小程序中存在,与 app.json 保持一致").
The emulator can only know the pages it is told about, so by default it reads
``miniprogram_stub/app.json`` relative to the current directory (the stub of this repository); when
that file does not exist the list is empty, which means **no page is registered and every message
that names a page is refused with 41030** (a message without ``page`` is always fine). That is the
strict choice: a wrong page fails here as it would in production, instead of passing silently.

Subscribe-message templates: WeChat knows the templates an app picked in its console; the emulator
knows ``SandboxConfig.subscribe_templates`` (by default :data:`DEFAULT_SUBSCRIBE_TEMPLATES`, seeded
for every configured appid) plus those registered at run time with
``POST /sandbox/control/subscribe-templates``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

DEFAULT_APPS = {"wxsandbox0000dev1": "dev-only-sandbox-wechat-secret"}
DEFAULT_CARDNET_KEYS = ["dev-only-sandbox-cardnet-key"]
DEFAULT_STATE_PATH = "./var/sandbox.sqlite3"
DEFAULT_APP_JSON = "miniprogram_stub/app.json"

# The keyword types of subscribe-message templates (WeChat's "订阅消息参数值内容限制说明"; ``enum`` is
# left out: its values come from WeChat's console and the sandbox has no list of them).
KEYWORD_TYPES = (
    "thing", "number", "letter", "symbol", "character_string", "time", "date",
    "amount", "phone_number", "car_number", "name", "phrase",
)
KEYWORD_KEY_RE = re.compile(rf"^({'|'.join(KEYWORD_TYPES)})(\d{{1,2}})$")

# WeChat Pay: the pauses between notification deliveries WeChat documents (15s/15s/30s/3m/10m/20m/30m/
# 30m/30m/60m/3h/3h/3h/6h/6h, about 24 h 4 m in all), and the sandbox's compressed default.
WECHAT_PAY_RETRY_SCHEDULE_S: tuple[float, ...] = (
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
)
DEFAULT_PAY_RETRY_SCHEDULE_S: tuple[float, ...] = (0.2, 0.2, 0.5, 1, 2, 5)
DEFAULT_PAY_REFUND_DELAY_S = 1.0
DEFAULT_PAY_NOTIFY_TIMEOUT_S = 5.0
MAX_RETRY_ENTRIES = 30
MAX_RETRY_PAUSE_S = 86400.0
MCHID_RE = re.compile(r"^[0-9]{1,32}$")
PAY_APPID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MERCHANT_SERIAL_RE = re.compile(r"^[0-9A-Za-z]{1,64}$")
APIV3_KEY_RE = re.compile(r"^[\x21-\x7e]{32}$")  # 32 printable ASCII characters (32 bytes: AES-256)


def load_rsa_public_key(pem: str) -> RSAPublicKey:
    """The RSA public key of a ``-----BEGIN PUBLIC KEY-----`` PEM, or ValueError."""
    try:
        key = load_pem_public_key(pem.strip().encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, RSAPublicKey) or key.key_size < 2048:
        raise ValueError("the merchant key must be an RSA public key of at least 2048 bits")
    return key


@dataclass(frozen=True)
class PayMerchant:
    """A WeChat Pay merchant (直连商户) as the emulated ``api.mch.weixin.qq.com`` knows it.

    ``appid``: the mini-program bound to the merchant (jsapi orders must name it); ``apiv3_key``: the
    APIv3 key (32 ASCII characters: the AES-256-GCM key of notifications); ``merchant_serial``: the
    serial number of the merchant's API certificate (``serial_no`` of the Authorization header);
    ``merchant_public_key_pem``: the public half of the merchant's API key, which verifies its
    requests (the private half stays with the backend)."""

    appid: str
    apiv3_key: str
    merchant_serial: str
    merchant_public_key_pem: str

    def __post_init__(self) -> None:
        check_pay_merchant(self.appid, self.apiv3_key, self.merchant_serial, self.merchant_public_key_pem)


def check_pay_merchant(appid: object, apiv3_key: object, merchant_serial: object, pem: object) -> None:
    """ValueError(field, message) naming the first field of a merchant that does not fit."""
    if not isinstance(appid, str) or not PAY_APPID_RE.fullmatch(appid):
        raise ValueError("appid", "appid must be 1-32 characters of A-Z a-z 0-9 _ -")
    if not isinstance(apiv3_key, str) or not APIV3_KEY_RE.fullmatch(apiv3_key):
        raise ValueError("apiv3_key", "apiv3_key must be exactly 32 printable ASCII characters")
    if not isinstance(merchant_serial, str) or not MERCHANT_SERIAL_RE.fullmatch(merchant_serial):
        raise ValueError("merchant_serial", "merchant_serial must be 1-64 letters or digits (the certificate serial)")
    if not isinstance(pem, str):
        raise ValueError("merchant_public_key_pem", "merchant_public_key_pem must be a PEM string")
    try:
        load_rsa_public_key(pem)
    except ValueError as exc:
        raise ValueError("merchant_public_key_pem", str(exc)) from None


def pay_merchants_from_file(path: str) -> dict[str, PayMerchant]:
    """The merchants of a ``SANDBOX_PAY_MERCHANTS`` JSON file (see the module docstring)."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{mchid: merchant}}")
    merchants: dict[str, PayMerchant] = {}
    for mchid, entry in data.items():
        if not MCHID_RE.fullmatch(mchid) or not isinstance(entry, dict):
            raise ValueError(f"{path}: {mchid!r} is not a mchid (digits) with an object")
        entry = dict(entry)
        key_path = entry.pop("merchant_public_key_path", None)
        if key_path is not None and "merchant_public_key_pem" not in entry:
            if not os.path.isabs(key_path):
                key_path = os.path.join(os.path.dirname(os.path.abspath(path)), key_path)
            with open(key_path, encoding="ascii") as kf:
                entry["merchant_public_key_pem"] = kf.read()
        unknown = set(entry) - {"appid", "apiv3_key", "merchant_serial", "merchant_public_key_pem"}
        if unknown:
            raise ValueError(f"{path}: merchant {mchid}: unknown fields {sorted(unknown)}")
        try:
            merchants[mchid] = PayMerchant(
                entry.get("appid"), entry.get("apiv3_key"), entry.get("merchant_serial"),
                entry.get("merchant_public_key_pem"),
            )
        except ValueError as exc:
            raise ValueError(f"{path}: merchant {mchid}: {exc.args[-1]}") from None
    return merchants


def parse_retry_schedule(raw: str) -> list[float]:
    """``0.2,0.2,0.5`` / ``wechat`` / ``wechat/N`` (see the module docstring)."""
    raw = raw.strip()
    if raw.startswith("wechat"):
        rest = raw[len("wechat"):].strip()
        factor = 1.0
        if rest:
            if not rest.startswith("/"):
                raise ValueError(f"retry schedule {raw!r}: expected 'wechat' or 'wechat/N'")
            factor = float(rest[1:])
            if not factor > 0:
                raise ValueError(f"retry schedule {raw!r}: N must be positive")
        return [round(s / factor, 6) for s in WECHAT_PAY_RETRY_SCHEDULE_S]
    values = [float(x) for x in raw.split(",") if x.strip()]
    check_retry_schedule(values)
    return values


def check_retry_schedule(values: list[float]) -> None:
    if len(values) > MAX_RETRY_ENTRIES or any(not 0 <= v <= MAX_RETRY_PAUSE_S for v in values):
        raise ValueError(f"a retry schedule has at most {MAX_RETRY_ENTRIES} pauses of 0-{MAX_RETRY_PAUSE_S:g} s")


@dataclass(frozen=True)
class SubscribeTemplate:
    """A subscribe-message template as the app's WeChat console shows it.

    ``keywords`` maps each data key (keyword type + number, e.g. ``thing1``, ``amount2``) to its
    label; the type prefix decides which values WeChat accepts (see :mod:`sandbox.subscribe`)."""

    template_id: str
    title: str
    keywords: dict[str, str]


# Template ids are shaped like WeChat's (43 URL-safe base64 characters); they mean nothing elsewhere.
DEFAULT_SUBSCRIBE_TEMPLATES: tuple[SubscribeTemplate, ...] = (
    SubscribeTemplate(
        "fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE",
        "开户成功通知",
        {"thing1": "账户类型", "character_string2": "账号", "time3": "开户时间", "thing4": "温馨提示"},
    ),
    SubscribeTemplate(
        "OyU4C0AHaaok3lDZsIiyqB5mApgyNRFSCeGjwkNclY0",
        "扣款成功通知",
        {"amount1": "扣款金额", "thing2": "扣款项目", "time3": "扣款时间", "character_string4": "账户尾号"},
    ),
    SubscribeTemplate(
        "o5P84JR1UN1RUg2Pvklo4Cnv6R8CLDwYtrwvLINqKgk",
        "欠费提醒",
        {"amount1": "欠费金额", "thing2": "欠费项目", "date3": "欠费日期", "thing4": "备注"},
    ),
    SubscribeTemplate(
        "MoGCd-tAGbTaoi68ckIliO6I2qfiUzvbhIhJTThW1Qw",
        "账户挂失通知",
        {"thing1": "账户类型", "character_string2": "账号", "time3": "挂失时间", "thing4": "温馨提示"},
    ),
    SubscribeTemplate(
        "utQ-DAmesEIiAWoMh7FNh0f-S5d1A1vfIRG_PBQmJXU",
        "证件到期提醒",
        {"thing1": "证件类型", "date2": "到期日期", "thing3": "温馨提示"},
    ),
    SubscribeTemplate(
        "G59kAsodnJGDk1l4UdWAFkINByntvi08ZVry8IYa0Yc",
        "销户成功通知",
        {"character_string1": "账号", "amount2": "转出金额", "time3": "销户时间", "thing4": "备注"},
    ),
)


def pages_from_app_json(path: str) -> list[str]:
    """The pages of a mini-program ``app.json``: ``pages`` plus each subpackage's ``root/page``."""
    with open(path, encoding="utf-8") as fh:
        app = json.load(fh)
    listed = app.get("pages") if isinstance(app, dict) else None
    if not isinstance(listed, list):
        raise ValueError(f"{path} has no 'pages' array")
    pages = [p for p in listed if isinstance(p, str) and p]
    for key in ("subpackages", "subPackages"):
        for sub in app.get(key) or []:
            if not isinstance(sub, dict) or not isinstance(sub.get("root"), str):
                continue
            root = sub["root"].strip("/")
            pages += [f"{root}/{p.lstrip('/')}" for p in sub.get("pages") or [] if isinstance(p, str) and p]
    return list(dict.fromkeys(pages))


def default_pages() -> list[str]:
    """``miniprogram_stub/app.json`` of the current directory if it exists, else no page at all."""
    if os.path.isfile(DEFAULT_APP_JSON):
        try:
            return pages_from_app_json(DEFAULT_APP_JSON)
        except (OSError, ValueError):
            return []
    return []


@dataclass
class SandboxConfig:
    apps: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_APPS))
    cardnet_keys: list[str] = field(default_factory=lambda: list(DEFAULT_CARDNET_KEYS))
    state_path: str = DEFAULT_STATE_PATH
    # stable_token force_refresh limits (WeChat: 20 per day, at least 30 s apart). Both can also be
    # changed at run time through POST /sandbox/control/settings (stored in the state DB).
    stable_token_refresh_interval_s: int = 30
    stable_token_daily_force_limit: int = 20
    # The mini-program's pages (subscribe messages may only link to these; see the module docstring).
    # Replaceable at run time with POST /sandbox/control/pages.
    pages: list[str] = field(default_factory=default_pages)
    # Subscribe-message templates known to every configured appid from the start.
    subscribe_templates: list[SubscribeTemplate] = field(default_factory=lambda: list(DEFAULT_SUBSCRIBE_TEMPLATES))
    # WeChat Pay (sandbox.wechatpay): the merchants known from the start (more can be registered with
    # POST /sandbox/control/pay/merchants), the pauses between notification deliveries, how long a
    # refund stays PROCESSING and how long a delivery waits for the merchant's answer. The last three
    # can be changed at run time with POST /sandbox/control/pay/settings.
    pay_merchants: dict[str, PayMerchant] = field(default_factory=dict)
    pay_retry_schedule_s: list[float] = field(default_factory=lambda: list(DEFAULT_PAY_RETRY_SCHEDULE_S))
    pay_refund_delay_s: float = DEFAULT_PAY_REFUND_DELAY_S
    pay_notify_timeout_s: float = DEFAULT_PAY_NOTIFY_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.apps:
            raise ValueError("SandboxConfig.apps must name at least one appid")
        if self.state_path.strip() in ("", ":memory:"):
            raise ValueError("SandboxConfig.state_path must be a file path (':memory:' is not supported)")
        self.pages = [p.strip().lstrip("/") for p in self.pages if p and p.strip()]
        for template in self.subscribe_templates:
            bad = [k for k in template.keywords if not KEYWORD_KEY_RE.fullmatch(k)]
            if not template.template_id or not template.keywords or bad:
                raise ValueError(f"subscribe template {template.template_id!r}: bad keywords {bad}")
        for mchid, merchant in self.pay_merchants.items():
            if not MCHID_RE.fullmatch(mchid) or not isinstance(merchant, PayMerchant):
                raise ValueError(f"pay_merchants: {mchid!r} must be a mchid (digits) mapped to a PayMerchant")
        self.pay_retry_schedule_s = [float(v) for v in self.pay_retry_schedule_s]
        check_retry_schedule(self.pay_retry_schedule_s)
        if not 0 <= self.pay_refund_delay_s <= 3600:
            raise ValueError("pay_refund_delay_s must be within 0-3600 s")
        if not 0 < self.pay_notify_timeout_s <= 60:
            raise ValueError("pay_notify_timeout_s must be within (0, 60] s")

    @property
    def default_appid(self) -> str:
        return next(iter(self.apps))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "SandboxConfig":
        env = os.environ if environ is None else environ
        kwargs: dict = {}
        raw_apps = env.get("SANDBOX_APPS", "").strip()
        if raw_apps:
            apps: dict[str, str] = {}
            for item in raw_apps.split(","):
                item = item.strip()
                if not item:
                    continue
                appid, sep, secret = item.partition(":")
                if not sep or not appid.strip() or not secret.strip():
                    raise ValueError(f"SANDBOX_APPS entry {item!r} is not 'appid:secret'")
                apps[appid.strip()] = secret.strip()
            kwargs["apps"] = apps
        raw_keys = env.get("SANDBOX_CARDNET_KEYS", "").strip()
        if raw_keys:
            kwargs["cardnet_keys"] = [k.strip() for k in raw_keys.split(",") if k.strip()]
        state_path = env.get("SANDBOX_STATE_PATH", "").strip()
        if state_path:
            kwargs["state_path"] = state_path
        raw_pages = env.get("SANDBOX_PAGES", "").strip()
        app_json = env.get("SANDBOX_APP_JSON", "").strip()
        if raw_pages and app_json:
            raise ValueError("give SANDBOX_PAGES or SANDBOX_APP_JSON, not both")
        if raw_pages:
            kwargs["pages"] = [p.strip() for p in raw_pages.split(",") if p.strip()]
        elif app_json:
            kwargs["pages"] = pages_from_app_json(app_json)
        merchants_file = env.get("SANDBOX_PAY_MERCHANTS", "").strip()
        if merchants_file:
            kwargs["pay_merchants"] = pay_merchants_from_file(merchants_file)
        schedule = env.get("SANDBOX_PAY_RETRY_SCHEDULE_S", "").strip()
        if schedule:
            kwargs["pay_retry_schedule_s"] = parse_retry_schedule(schedule)
        for name, key in (("SANDBOX_PAY_REFUND_DELAY_S", "pay_refund_delay_s"),
                          ("SANDBOX_PAY_NOTIFY_TIMEOUT_S", "pay_notify_timeout_s")):
            raw = env.get(name, "").strip()
            if raw:
                kwargs[key] = float(raw)
        return cls(**kwargs)
