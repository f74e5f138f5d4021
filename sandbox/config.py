"""Configuration of the sandbox emulators (WeChat mini-program server API and card-check network).

Environment variables read by :meth:`SandboxConfig.from_env`:

- ``SANDBOX_APPS``: ``appid:secret,appid:secret`` (the mini-programs the emulated WeChat knows)
- ``SANDBOX_CARDNET_KEYS``: comma-separated bearer keys accepted by the card network
- ``SANDBOX_STATE_PATH``: path of the SQLite state file shared by every worker process
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_APPS = {"wxsandbox0000dev1": "dev-only-sandbox-wechat-secret"}
DEFAULT_CARDNET_KEYS = ["dev-only-sandbox-cardnet-key"]
DEFAULT_STATE_PATH = "./var/sandbox.sqlite3"


@dataclass
class SandboxConfig:
    apps: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_APPS))
    cardnet_keys: list[str] = field(default_factory=lambda: list(DEFAULT_CARDNET_KEYS))
    state_path: str = DEFAULT_STATE_PATH
    # stable_token force_refresh limits (WeChat: 20 per day, at least 30 s apart). Both can also be
    # changed at run time through POST /sandbox/control/settings (stored in the state DB).
    stable_token_refresh_interval_s: int = 30
    stable_token_daily_force_limit: int = 20

    def __post_init__(self) -> None:
        if not self.apps:
            raise ValueError("SandboxConfig.apps must name at least one appid")
        if self.state_path.strip() in ("", ":memory:"):
            raise ValueError("SandboxConfig.state_path must be a file path (':memory:' is not supported)")

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
        return cls(**kwargs)
