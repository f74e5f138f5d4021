"""SandboxConfig parsing and mounting the blueprint into another Sanic app (no server started)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from sanic import Sanic
from sanic.exceptions import NotFound
from sanic.response import json as json_response

from sandbox import SandboxConfig, create_blueprint
from sandbox.config import SubscribeTemplate

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
    assert {"sandbox/wechatpay/v3/pay/transactions/jsapi", "sandbox/control/pay/platform-key",
            "sandbox/control/push"} <= paths
    assert set(app.blueprints) == {"sandbox_wechat", "sandbox_cardnet", "sandbox_partner", "sandbox_wechatpay",
                                   "sandbox_control"}


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


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # sanic-testing imports websockets.legacy
async def test_unknown_wechat_paths_inside_a_host_app_with_its_own_404(tmp_path):
    """Mounted in the backend, an unknown WeChat path must still get WeChat's body, not the host's 404."""
    app = Sanic("sandbox_mount_404_host")

    @app.exception(NotFound)
    async def host_not_found(request, exc):
        return json_response({"error": {"code": "NOT_FOUND"}}, status=404)

    @app.get("/api/ping")
    async def ping(request):
        return json_response({"pong": True})

    app.blueprint(create_blueprint(SandboxConfig(state_path=str(tmp_path / "s.sqlite3"), pages=[])))
    client = app.asgi_client
    _, r = await client.get("/api/nothing-here")
    assert r.status == 404 and r.json == {"error": {"code": "NOT_FOUND"}}
    for method in ("get", "post", "delete"):
        _, r = await getattr(client, method)("/sandbox/wechat/cgi-bin/not_an_api")
        assert r.status == 200 and r.json["errcode"] == 48001 and " rid: " in r.json["errmsg"]
    _, r = await client.get("/sandbox/wechat/cgi-bin/token", params={"grant_type": "x"})
    assert r.status == 200 and r.json["errcode"] == 40002
    _, r = await client.put("/sandbox/wechat/cgi-bin/token")
    assert r.status == 200 and r.json["errcode"] == 43001
    _, r = await client.get("/api/ping")
    assert r.json == {"pong": True}


def test_pages_config(tmp_path, monkeypatch):
    app_json = tmp_path / "mp" / "app.json"
    app_json.parent.mkdir()
    app_json.write_text(json.dumps({
        "pages": ["pages/home/home", "pages/me/me"],
        "subPackages": [{"root": "packageA/", "pages": ["pages/bill/bill"]}],
    }), encoding="utf-8")
    cfg = SandboxConfig.from_env({"SANDBOX_APP_JSON": str(app_json)})
    assert cfg.pages == ["pages/home/home", "pages/me/me", "packageA/pages/bill/bill"]
    assert SandboxConfig.from_env({"SANDBOX_PAGES": " pages/a/a, /pages/b/b ,"}).pages == ["pages/a/a", "pages/b/b"]
    with pytest.raises(ValueError):
        SandboxConfig.from_env({"SANDBOX_PAGES": "pages/a/a", "SANDBOX_APP_JSON": str(app_json)})
    with pytest.raises(OSError):
        SandboxConfig.from_env({"SANDBOX_APP_JSON": str(tmp_path / "missing.json")})
    # default: miniprogram_stub/app.json of the current directory, else no page at all
    monkeypatch.chdir(tmp_path)
    assert SandboxConfig().pages == []
    (tmp_path / "miniprogram_stub").mkdir()
    (tmp_path / "miniprogram_stub" / "app.json").write_text('{"pages": ["pages/x/x"]}', encoding="utf-8")
    assert SandboxConfig().pages == ["pages/x/x"]
    monkeypatch.chdir(SANDBOX_DIR.parent)
    assert SandboxConfig().pages == json.loads((SANDBOX_DIR.parent / "miniprogram_stub" / "app.json").read_text())["pages"]


def test_default_subscribe_templates_are_valid():
    cfg = SandboxConfig()
    assert len(cfg.subscribe_templates) >= 3
    for t in cfg.subscribe_templates:
        assert len(t.template_id) == 43 and t.title and t.keywords
    with pytest.raises(ValueError):
        SandboxConfig(subscribe_templates=[SubscribeTemplate("T", "t", {"keyword1": "x"})])
