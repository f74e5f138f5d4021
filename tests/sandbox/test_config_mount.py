"""SandboxConfig parsing and mounting the blueprint into another Sanic app (no server started)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sanic import Sanic

from sandbox import SandboxConfig, create_blueprint

SANDBOX_DIR = Path(__file__).resolve().parents[2] / "sandbox"


def test_defaults():
    cfg = SandboxConfig()
    assert cfg.apps == {"wxsandbox0000dev1": "dev-only-sandbox-wechat-secret"}
    assert cfg.cardnet_keys == ["dev-only-sandbox-cardnet-key"]
    assert cfg.state_path == "./var/sandbox.sqlite3"
    assert SandboxConfig().apps is not cfg.apps


def test_from_env():
    cfg = SandboxConfig.from_env({
        "SANDBOX_APPS": "wxa:sa, wxb:s:b ,",
        "SANDBOX_CARDNET_KEYS": "k1, k2",
        "SANDBOX_STATE_PATH": "/tmp/x.sqlite3",
    })
    assert cfg.apps == {"wxa": "sa", "wxb": "s:b"}
    assert cfg.default_appid == "wxa"
    assert cfg.cardnet_keys == ["k1", "k2"]
    assert cfg.state_path == "/tmp/x.sqlite3"
    assert SandboxConfig.from_env({}) == SandboxConfig()
    with pytest.raises(ValueError):
        SandboxConfig.from_env({"SANDBOX_APPS": "no-secret"})


def test_blueprint_mounts_under_sandbox_prefix(tmp_path):
    app = Sanic("sandbox_mount_test_host")
    app.blueprint(create_blueprint(SandboxConfig(state_path=str(tmp_path / "s.sqlite3"))))
    paths = {r.path for r in app.router.routes}
    assert paths and all(p.startswith("sandbox/") for p in paths)
    assert {"sandbox/wechat/sns/jscode2session", "sandbox/cardnet/v1/verify-elements",
            "sandbox/control/login-code"} <= paths
    assert set(app.blueprints) == {"sandbox_wechat", "sandbox_cardnet", "sandbox_control"}


def test_sandbox_imports_nothing_of_the_project():
    forbidden = {"app", "core", "services", "integrations", "models", "handlers"}
    for path in SANDBOX_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]} if node.level == 0 else set()
            else:
                continue
            assert not roots & forbidden, f"{path.name} imports {roots & forbidden}"
