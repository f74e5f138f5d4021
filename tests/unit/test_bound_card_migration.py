"""Migration 21 starts the history of bound cards with each existing account's card: run on SQLite over the
schema of migrations 0-20 with an account in it, the account's card is its history's one row, in force."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
from types import SimpleNamespace

from app.db import APP_LABEL, MIGRATIONS_DIR


def _files():
    files = sorted((MIGRATIONS_DIR / APP_LABEL).glob("[0-9]*_*.py"), key=lambda p: int(p.name.split("_", 1)[0]))
    return files


def _sql(path, direction: str = "upgrade") -> str:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fake = SimpleNamespace(schema_generator=SimpleNamespace(DIALECT="sqlite"))
    return asyncio.run(getattr(mod, direction)(fake))


def _insert(db: sqlite3.Connection, table: str, **values) -> int:
    """A row with ``values`` and a placeholder in every other NOT NULL column without a default."""
    row = dict(values)
    for _, name, kind, notnull, default, pk in db.execute(f'PRAGMA table_info("{table}")'):
        if name in row or pk or not notnull or default is not None:
            continue
        kind = kind.upper()
        row[name] = 0 if "INT" in kind else "2026-01-01 00:00:00" if "TIME" in kind or "DATE" in kind else "x"
    cols = ", ".join(f'"{c}"' for c in row)
    return db.execute(f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join("?" for _ in row)})',
                      list(row.values())).lastrowid


def test_migration_21_carries_each_accounts_card_into_the_history(tmp_path):
    files = _files()
    target = next(p for p in files if p.name.startswith("21_") and "bound_cards" in p.name)
    db = sqlite3.connect(tmp_path / "m.sqlite3")
    for path in files[:files.index(target)]:
        db.executescript(_sql(path))
    user = _insert(db, "users", openid="o-migration")
    account = _insert(db, "accounts", number="6230990000000000001", user_id=user, bound_card_enc="v1.k.sealed",
                      bound_card_index="idx", bound_card_masked="622202******1234",
                      opened_at="2026-11-30 08:00:00")
    db.executescript(_sql(target))
    rows = db.execute('SELECT account_id, card_enc, card_index, card_masked, bound_at, replaced_at, '
                      'face_verification_id FROM "account_bound_cards"').fetchall()
    assert rows == [(account, "v1.k.sealed", "idx", "622202******1234", "2026-11-30 08:00:00", None, None)]
    db.executescript(_sql(target, "downgrade"))
    assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'account_bound_cards'").fetchall()
