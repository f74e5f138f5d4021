"""The emulated WeChat Pay's tables in the state file, and the seed that creates them, the platform
key pair (once per state file) and the configured merchants."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.config import SandboxConfig
from sandbox.state import Tx
from sandbox.wechatpay.core import new_public_key_id

SCHEMA_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS pay_platform (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        public_key_id TEXT NOT NULL,          -- PUB_KEY_ID_ + 28 digits
        private_key_pem TEXT NOT NULL,
        public_key_pem TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS pay_merchants (
        mchid TEXT PRIMARY KEY,
        appid TEXT NOT NULL,
        apiv3_key TEXT NOT NULL,
        merchant_serial TEXT NOT NULL,
        merchant_public_key_pem TEXT NOT NULL,
        source TEXT NOT NULL,                 -- 'config' | 'control'
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS pay_orders (
        mchid TEXT NOT NULL,
        out_trade_no TEXT NOT NULL,
        appid TEXT NOT NULL,
        prepay_id TEXT NOT NULL UNIQUE,
        request_json TEXT NOT NULL,           -- the jsapi body, canonical: a repeat must be identical
        description TEXT NOT NULL,
        attach TEXT,
        notify_url TEXT NOT NULL,
        time_expire TEXT,
        expire_at REAL,
        total INTEGER NOT NULL,
        currency TEXT NOT NULL,
        openid TEXT NOT NULL,
        trade_state TEXT NOT NULL,            -- NOTPAY | SUCCESS | CLOSED | PAYERROR (REFUND, expiry: derived)
        transaction_id TEXT UNIQUE,
        bank_type TEXT,
        success_time TEXT,
        success_at REAL,
        closed_at REAL,
        created_at REAL NOT NULL,
        PRIMARY KEY (mchid, out_trade_no)
    )""",
    """CREATE TABLE IF NOT EXISTS pay_refunds (
        refund_id TEXT PRIMARY KEY,
        mchid TEXT NOT NULL,
        out_refund_no TEXT NOT NULL,
        out_trade_no TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        request_json TEXT NOT NULL,
        reason TEXT,
        notify_url TEXT,
        funds_account TEXT,
        refund INTEGER NOT NULL,
        total INTEGER NOT NULL,
        currency TEXT NOT NULL,
        created_at REAL NOT NULL,
        success_at REAL NOT NULL,             -- PROCESSING before, SUCCESS from then on
        UNIQUE (mchid, out_refund_no)
    )""",
    "CREATE INDEX IF NOT EXISTS pay_refunds_by_order ON pay_refunds (mchid, out_trade_no)",
    """CREATE TABLE IF NOT EXISTS pay_notifications (
        id TEXT PRIMARY KEY,                  -- EV-...
        mchid TEXT NOT NULL,
        event_type TEXT NOT NULL,
        summary TEXT NOT NULL,
        out_trade_no TEXT,
        out_refund_no TEXT,
        notify_url TEXT NOT NULL,
        body TEXT NOT NULL,                   -- sent as is by every delivery (signed afresh each time)
        resource_json TEXT NOT NULL,          -- the plaintext of resource (for the control API)
        created_at REAL NOT NULL,
        status TEXT NOT NULL,                 -- pending | delivered | failed | dropped
        next_at REAL,                         -- when the next scheduled delivery is due (pending)
        lease_until REAL,                     -- a process is delivering it until then
        attempts INTEGER NOT NULL DEFAULT 0,  -- scheduled deliveries made
        delivered_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS pay_notifications_due ON pay_notifications (status, next_at)",
    """CREATE TABLE IF NOT EXISTS pay_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        notification_id TEXT NOT NULL,
        kind TEXT NOT NULL,                   -- scheduled | redeliver
        tamper TEXT,
        at REAL NOT NULL,
        http_status INTEGER,                  -- NULL: no answer (error says why)
        error TEXT,
        reply TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS pay_attempts_by_notification ON pay_attempts (notification_id, id)",
    """CREATE TABLE IF NOT EXISTS pay_bills (
        token TEXT PRIMARY KEY,
        mchid TEXT NOT NULL,
        content BLOB NOT NULL,
        gzipped INTEGER NOT NULL,
        expires_at REAL NOT NULL
    )""",
)


def generate_platform_key() -> tuple[str, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return new_public_key_id(), private_pem, public_pem


def with_schema(config: SandboxConfig, seed: Callable[[Tx], Awaitable[None]] | None) -> Callable[[Tx], Awaitable[None]]:
    """A :class:`State` seed creating the WeChat Pay tables, the platform key pair (once per state
    file: the seed runs in ``BEGIN IMMEDIATE``, so concurrent workers cannot both create one) and the
    configured merchants (a merchant registered through the control API is left alone); then ``seed``."""

    async def seeded(tx: Tx) -> None:
        for statement in SCHEMA_STATEMENTS:
            await tx.execute(statement)
        if await tx.fetchone("SELECT 1 FROM pay_platform WHERE id = 1") is None:
            key_id, private_pem, public_pem = generate_platform_key()
            await tx.execute(
                "INSERT INTO pay_platform (id, public_key_id, private_key_pem, public_key_pem, created_at) "
                "VALUES (1, ?, ?, ?, ?)",
                (key_id, private_pem, public_pem, time.time()),
            )
        for mchid, m in config.pay_merchants.items():
            await tx.execute(
                "INSERT INTO pay_merchants (mchid, appid, apiv3_key, merchant_serial, merchant_public_key_pem, source, "
                "updated_at) VALUES (?, ?, ?, ?, ?, 'config', ?) ON CONFLICT (mchid) DO UPDATE SET "
                "appid = excluded.appid, apiv3_key = excluded.apiv3_key, merchant_serial = excluded.merchant_serial, "
                "merchant_public_key_pem = excluded.merchant_public_key_pem, updated_at = excluded.updated_at "
                "WHERE pay_merchants.source = 'config'",
                (mchid, m.appid, m.apiv3_key, m.merchant_serial, m.merchant_public_key_pem, time.time()),
            )
        if seed is not None:
            await seed(tx)

    return seeded
