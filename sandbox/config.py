"""Configuration of the sandbox emulators (WeChat mini-program server API and card-check network).

Environment variables read by :meth:`SandboxConfig.from_env`:

- ``SANDBOX_APPS``: ``appid:secret,appid:secret`` (the mini-programs the emulated WeChat knows)
- ``SANDBOX_CARDNET_KEYS``: comma-separated bearer keys accepted by the card network
- ``SANDBOX_STATE_PATH``: path of the SQLite state file shared by every worker process
- ``SANDBOX_PAGES``: comma-separated pages of the mini-program (``pages/index/index,...``), or
- ``SANDBOX_APP_JSON``: path of the mini-program's ``app.json``, whose ``pages`` (and subpackage
  pages) are read. Giving both is an error.

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
        {"amount1": "欠费金额", "thing2": "欠费项目", "date3": "最后缴费日期", "thing4": "备注"},
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
        return cls(**kwargs)
