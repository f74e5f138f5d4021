"""Database wiring: the Tortoise config built from ``DATABASE_URL``, and the migration gate.

Migrations are Aerich files under ``migrations/models/``. Each file carries the SQL for both dialects
we run (MySQL and SQLite) and picks by the connection's dialect, so one history serves both. The server
refuses to start when the database has not applied every migration file (sandbox mode applies them).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url

from app.mysql_engine import DEFAULT_READ_TIMEOUT_S

from core.errors import ConfigError
from models import MODEL_MODULES

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
APP_LABEL = "models"


def db_url(url: str) -> str:
    """Normalise a DATABASE_URL: MySQL gets utf8mb4 and a pool bigger than Tortoise's default of 5;
    SQLite (WAL, Tortoise's default) gets a busy timeout, so a CLI command run beside the server (``audit
    verify``, ``migrate``) waits for a write lock instead of failing at once."""
    if url.startswith("sqlite://"):
        path, _, query = url[len("sqlite://") :].partition("?")
        if path not in (":memory:",) and not path.startswith("/"):
            path = str(Path(path).resolve())
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        params = dict(parse_qsl(query))
        params.setdefault("busy_timeout", "5000")
        return "sqlite://" + path + "?" + urlencode(params)
    if url.startswith("mysql://"):
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query.setdefault("charset", "utf8mb4")
        query.setdefault("maxsize", "20")
        query.setdefault("minsize", "1")
        query.setdefault("connect_timeout", "5")  # a database that does not answer is a 503, not a hang
        # a link cut silently under a pooled connection, too (app/mysql_engine.py)
        query.setdefault("read_timeout", str(int(DEFAULT_READ_TIMEOUT_S)))
        return urlunsplit(parts._replace(query=urlencode(query)))
    raise ConfigError(f"DATABASE_URL must start with mysql:// or sqlite://, got {url.split(':', 1)[0]!r}")


def connection_config(url: str) -> str | dict:
    """Tortoise's connection entry: MySQL through our engine (reads with a deadline, Galera detected)."""
    url = db_url(url)
    if not url.startswith("mysql://"):
        return url
    config = expand_db_url(url)
    config["engine"] = "app.mysql_engine"
    return config


def tortoise_config(url: str) -> dict:
    return {
        "connections": {"default": connection_config(url)},
        "apps": {
            APP_LABEL: {
                "models": [*MODEL_MODULES, "aerich.models"],
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def migration_files() -> list[str]:
    folder = MIGRATIONS_DIR / APP_LABEL
    return sorted(
        (p.name for p in folder.glob("*.py") if p.stem.split("_", 1)[0].isdigit()),
        key=lambda n: int(n.split("_", 1)[0]),
    )


async def pending_migrations() -> list[str]:
    """Migration files the connected database has not applied (needs Tortoise initialised)."""
    conn = Tortoise.get_connection("default")
    try:
        _, rows = await conn.execute_query("SELECT version FROM aerich WHERE app = %s" % _quote(APP_LABEL))  # nosec B608
        applied = {r["version"] for r in rows}
    except Exception:  # no aerich table: nothing applied yet
        applied = set()
    return [f for f in migration_files() if f not in applied]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def _apply_pending(url: str) -> list[str]:
    from aerich import Command

    # Aerich reuses the Tortoise we initialised (it only initialises when nothing is).
    cmd = Command(tortoise_config=tortoise_config(url), app=APP_LABEL, location=str(MIGRATIONS_DIR))
    await cmd.init()
    return await cmd.upgrade(run_in_transaction=True)


async def migrate(url: str) -> list[str]:
    """Apply every pending migration (``python -m app migrate``). Returns the files applied."""
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    try:
        return await _apply_pending(url)
    finally:
        await Tortoise.close_connections()


def _where(url: str) -> str:
    """The database's location for messages, without credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{parts.path}"


async def init_db(url: str, *, auto_migrate: bool) -> None:
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
    except Exception as exc:
        await Tortoise.close_connections()
        raise ConfigError(f"cannot reach the database at {_where(url)}: {type(exc).__name__}") from exc
    pending = await pending_migrations()
    if pending and auto_migrate:
        await _apply_pending(url)
        pending = await pending_migrations()
    if pending:
        await Tortoise.close_connections()
        raise ConfigError(
            f"the database has {len(pending)} unapplied migration(s) ({', '.join(pending)}): "
            "run `python -m app migrate` first"
        )


async def close_db() -> None:
    await Tortoise.close_connections()


async def first_start(settings) -> None:
    """Data a fresh install starts with, and what production refuses to start without: a risk rule set
    in force (the baseline at first start; an operator may load an empty one, never leave none)."""
    from services.risk import rules

    loaded = await rules.first_start(settings.risk_baseline_file)
    if loaded is not None:
        print(f"  risk control: first start, rule set version {loaded.version} from {settings.risk_baseline_file} "
              "put in force", flush=True)
    if settings.is_production and not await rules.RiskRuleSet.all().exists():
        raise ConfigError("refusing to start in production: no risk rule set in force. Load one with "
                          "'python -m app risk rules load FILE' (an empty one, {\"version\": 1, \"rules\": []}, "
                          "to run without rules), or set RISK_BASELINE_FILE")
