"""Configuration: sandbox needs nothing; production refuses dev settings and says which."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import load_settings
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
WQY = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
needs_cjk_font = pytest.mark.skipif(
    not Path(WQY).is_file() and not os.environ.get("CI"), reason="fonts-wqy-microhei not installed"
)

PROD = {
    "APP_ENV": "production",
    "DATABASE_URL": "mysql://bank:pw@db:3306/bank",
    "WECHAT_APPID": "wx1234567890abcdef",
    "WECHAT_SECRET": "real-secret-from-vault",
    "WECHAT_API_BASE": "https://api.weixin.qq.com",
    "CARDNET_API_BASE": "https://cardnet.example-bank.cn",
    "CARDNET_API_KEY": "cardnet-key-from-vault",
    "JWT_KEYS": "k2026:" + "s" * 48,
    "PII_KEYS": "p2026:" + base64.b64encode(b"k" * 32).decode(),
    "PII_INDEX_KEY": base64.b64encode(b"i" * 32).decode(),
    "ESIGN_KEY_PATH": "/run/secrets/esign.key",
    "ESIGN_CERT_PATH": "/run/secrets/esign.pem",
    "CJK_FONT_PATH": WQY,
    "BANK_ACCOUNT_PREFIX": "623058",
    "ACCOUNT_OPENED_TEMPLATE_ID": "real-template-id-from-the-console",
    "DEBIT_TEMPLATE_ID": "real-debit-template",
    "ARREARS_TEMPLATE_ID": "real-arrears-template",
    "LOSS_REPORTED_TEMPLATE_ID": "real-loss-reported-template",
    "ID_EXPIRY_TEMPLATE_ID": "real-id-expiry-template",
    "ACCOUNT_CLOSED_TEMPLATE_ID": "real-account-closed-template",
    "WECHATPAY_MCHID": "1230000109",
    "WECHATPAY_API_BASE": "https://api.mch.weixin.qq.com",
    "WECHATPAY_PRIVATE_KEY_PATH": "/run/secrets/wechatpay-merchant.pem",
    "WECHATPAY_MERCHANT_SERIAL": "444F4864EA9B34415A1B2C3D4E5F60718293A4B5",
    "WECHATPAY_APIV3_KEY": "a12d3924fd499edac8a5efc0123456ab",
    "WECHATPAY_PUBLIC_KEY_ID": "PUB_KEY_ID_0114232134912410000000000000",
    "WECHATPAY_PUBLIC_KEY_PATH": "/run/secrets/wechatpay-platform.pem",
    "WECHATPAY_NOTIFY_URL": "https://bank.example.cn/callbacks/wechatpay",
    "WECHAT_PUSH_TOKEN": "pushTokenFromTheConsole",
    "WECHAT_PUSH_AES_KEY": "a" * 43,
}


def test_sandbox_needs_no_configuration(tmp_path):
    s = load_settings({"VAR_DIR": str(tmp_path)}, dotenv=False)
    assert s.app_env == "sandbox" and s.is_sqlite and s.sandbox_routes and s.dev_keys
    assert (tmp_path / "dev-keys.json").exists()
    assert oct((tmp_path / "dev-keys.json").stat().st_mode & 0o777) == "0o600"
    again = load_settings({"VAR_DIR": str(tmp_path)}, dotenv=False)
    assert again.jwt_keys == s.jwt_keys and again.pii_keys == s.pii_keys  # generated once, kept


@needs_cjk_font
def test_production_with_real_settings_starts():
    s = load_settings(PROD, dotenv=False)
    assert s.is_production and not s.sandbox_routes and not s.dev_keys


@pytest.mark.parametrize(
    "change, says",
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL is SQLite"),
        ({"DATABASE_URL": "sqlite://./x.db"}, "DATABASE_URL is SQLite"),
        ({"SANDBOX_ROUTES": "1"}, "SANDBOX_ROUTES is on"),
        ({"WECHAT_SECRET": ""}, "WECHAT_SECRET is missing"),
        ({"WECHAT_SECRET": "dev-only-sandbox-wechat-secret"}, "WECHAT_SECRET is a dev-only value"),
        ({"WECHAT_API_BASE": "http://127.0.0.1:8000/sandbox/wechat"}, "WECHAT_API_BASE points at a sandbox"),
        ({"JWT_KEYS": "dev1:" + "s" * 48}, "key id 'dev1' is a dev key id"),
        ({"JWT_KEYS": "k1:short"}, "shorter than 32 bytes"),
        ({"PII_KEYS": ""}, "PII_KEYS is missing"),
        ({"CARDNET_API_KEY": ""}, "CARDNET_API_KEY is missing"),
        ({"ESIGN_CERT_PATH": ""}, "ESIGN_CERT_PATH is missing"),
        ({"WECHAT_APPID": "wxsandbox0000dev1"}, "sandbox app id"),
        ({"WECHATPAY_APIV3_KEY": ""}, "WECHATPAY_APIV3_KEY is missing"),
        ({"WECHAT_PUSH_TOKEN": "devonlysandboxpushtoken"}, "WECHAT_PUSH_TOKEN is a dev-only value"),
        ({"WECHAT_PUSH_AES_KEY": "short"}, "WECHAT_PUSH_AES_KEY must be the 43-character EncodingAESKey"),
        ({"WECHATPAY_APIV3_KEY": "short"}, "WECHATPAY_APIV3_KEY must be 32 characters"),
        ({"WECHATPAY_NOTIFY_URL": "http://bank.example.cn/callbacks/wechatpay"}, "WECHATPAY_NOTIFY_URL must be https"),
        ({"WECHATPAY_API_BASE": "http://127.0.0.1:8000/sandbox/wechatpay"}, "WECHATPAY_API_BASE points at a sandbox"),
    ],
)
def test_production_refuses_dev_settings(change, says):
    env = {**PROD, **change}
    env = {k: v for k, v in env.items() if v != ""}
    with pytest.raises(ConfigError) as err:
        load_settings(env, dotenv=False)
    assert says in str(err.value)


def test_production_lists_every_problem_at_once():
    with pytest.raises(ConfigError) as err:
        load_settings({"APP_ENV": "production"}, dotenv=False)
    text = str(err.value)
    for name in ["SQLite", "WECHAT_APPID", "JWT_KEYS", "PII_KEYS", "PII_INDEX_KEY"]:
        assert name in text


def test_bad_keyrings_are_config_errors():
    with pytest.raises(ConfigError, match="32 bytes"):
        load_settings({**PROD, "PII_KEYS": "p1:" + base64.b64encode(b"short").decode()}, dotenv=False)
    with pytest.raises(ConfigError, match="kid:value"):
        load_settings({**PROD, "JWT_KEYS": "nocolon"}, dotenv=False)
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_settings({"APP_ENV": "staging"}, dotenv=False)


def _run(args, env, cwd):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DATABASE_", "WECHAT_", "JWT_", "PII_"))}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_serve_refuses_production_with_sandbox_defaults(tmp_path):
    proc = _run(["serve", "--port", "1"], {"APP_ENV": "production", "VAR_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}, tmp_path)
    assert proc.returncode == 2
    assert "refusing to start in production" in proc.stderr
    assert "SQLite" in proc.stderr and "JWT_KEYS is missing" in proc.stderr


def test_unmigrated_database_is_refused_with_what_to_run(tmp_path):
    code = (
        "import asyncio\n"
        "from app.db import init_db, close_db\n"
        "from core.errors import ConfigError\n"
        "async def main():\n"
        f"    await init_db('sqlite://{tmp_path}/empty.sqlite3', auto_migrate=False)\n"
        "    await close_db()\n"
        "try:\n    asyncio.run(main())\n"
        "except ConfigError as e:\n    print('REFUSED', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "REFUSED" in proc.stdout and "python -m app migrate" in proc.stdout, proc.stderr
    # and `migrate` then makes it acceptable
    env = {"VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite://{tmp_path}/empty.sqlite3", "PYTHONPATH": str(ROOT)}
    mig = _run(["migrate"], env, ROOT)
    from app.db import migration_files

    assert mig.returncode == 0 and f"applied {len(migration_files())}" in mig.stdout, mig.stderr
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "REFUSED" not in proc.stdout, proc.stdout


def test_unreachable_database_is_a_clear_refusal_without_the_password(tmp_path):
    env = {"VAR_DIR": str(tmp_path), "DATABASE_URL": "mysql://bank:s3cretpw@127.0.0.1:1/bank", "PYTHONPATH": str(ROOT)}
    proc = _run(["serve", "--port", "1"], env, ROOT)
    assert proc.returncode == 2
    assert "cannot reach the database at mysql://127.0.0.1:1/bank" in proc.stderr
    assert "s3cretpw" not in proc.stderr + proc.stdout


@needs_cjk_font
@pytest.mark.parametrize("font, says", [
    (None, "CJK_FONT_PATH is missing"),
    ("/nonexistent/font.ttc", "no embeddable CJK TrueType font"),
    (__file__, "no embeddable CJK TrueType font"),  # not a font at all
])
def test_production_refuses_contracts_that_would_not_carry_their_font(font, says):
    env = {k: v for k, v in PROD.items() if k != "CJK_FONT_PATH"}
    if font:
        env["CJK_FONT_PATH"] = font
    with pytest.raises(ConfigError, match=says):
        load_settings(env, dotenv=False)


@needs_cjk_font
def test_a_font_that_lacks_characters_of_the_templates_is_refused(monkeypatch):
    from services.esign import templates

    real = templates.fixed_text
    monkeypatch.setattr(templates, "fixed_text", lambda: real() + "\U00020000")  # CJK Ext-B, not in WQY
    with pytest.raises(ConfigError, match="lacks 1 character"):
        load_settings(PROD, dotenv=False)


def test_sandbox_says_loudly_when_contracts_fall_back_to_a_non_embedded_font(monkeypatch, caplog):
    from app.factory import contract_font_warning
    from services.esign import render

    monkeypatch.setattr(render, "FONT_SEARCH_PATHS", ())
    render.reset_font_cache()
    try:
        settings = load_settings({"VAR_DIR": "/tmp/openbank-font-test"}, dotenv=False)
        with caplog.at_level("WARNING"):
            warning = contract_font_warning(settings)
            render.resolve_font(settings.cjk_font_path)  # a contract rendered later in the same process
    finally:
        render.reset_font_cache()
    assert warning and "non-embedded" in warning and "fonts-wqy-microhei" in warning
    # said once, by the caller that prints it: neither the renderer nor a later render says it again
    assert not [r for r in caplog.records if "font" in r.getMessage().lower()]



def test_check_config_names_every_setting_still_at_its_development_default(tmp_path):
    from app.config import DEV_DEFAULTED

    env = {k: v for k, v in os.environ.items() if k not in DEV_DEFAULTED and not k.startswith(("APP_", "WECHAT"))}
    env.update(VAR_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "app", "check-config"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    named = {line.split()[1] for line in done.stdout.splitlines() if "sandbox mode gives it a development value" in line}
    assert named == set(DEV_DEFAULTED)
    assert len(done.stdout.splitlines()) == len(set(done.stdout.splitlines()))  # each problem once
    # a setting given a value of its own is no longer named
    done = subprocess.run([sys.executable, "-m", "app", "check-config"], cwd=tmp_path, capture_output=True, text=True,
                          env={**env, "BANK_ACCOUNT_PREFIX": "621700", "WECHATPAY_MCHID": "1234567890"}, timeout=60)
    named = {line.split()[1] for line in done.stdout.splitlines() if "sandbox mode gives it a development value" in line}
    assert named == set(DEV_DEFAULTED) - {"BANK_ACCOUNT_PREFIX", "WECHATPAY_MCHID"}


@pytest.mark.parametrize("name, value, says", [
    ("ACCESS_TTL_S", "abc", "valid integer"),
    ("ACCESS_TTL_S", "3600", "less than or equal to 900"),
    ("DAILY_ATTEMPT_LIMIT", "0", "greater than or equal to 1"),
    ("IDEMPOTENCY_TTL_S", "3600", "greater than or equal to 86400"),
    ("BILL_RECONCILE_HOUR", "24", "less than or equal to 23"),
    ("SANDBOX_ROUTES", "maybe", "valid boolean"),
    ("HTTP_TIMEOUT_S", "soon", "valid number"),
])
def test_a_bad_value_is_refused_at_start_naming_its_variable(tmp_path, name, value, says):
    with pytest.raises(ConfigError) as err:
        load_settings({"VAR_DIR": str(tmp_path), name: value}, dotenv=False)
    assert f"{name}: " in str(err.value) and says in str(err.value)


def test_env_example_lists_every_setting():
    from core.settings import Settings

    text = (ROOT / ".env.example").read_text()
    listed = {line.lstrip("# ").split("=", 1)[0] for line in text.splitlines() if "=" in line}
    assert set(Settings.env_names()) - listed == set()
    assert "DEV_KEYS" not in Settings.env_names()  # what the loader found is not read from the environment
