"""JSON-lines logging with personal data redacted.

Every record goes through ``RedactFilter`` (the access line has its own writer, ``app.access_log``, and
carries only safe values): values of fields that hold personal data by their name
(``id_number``, ``phone``, ``card_number``, ``address``... see ``core.pii.FIELD_MASKS``) are masked
whatever they look like, nested dicts included, and every other string is scrubbed by pattern, whole
tokens only, so request ids and hashes stay searchable. Handlers never log bodies, tokens or query
strings.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from core.pii import redact, redact_field

_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# Extras that are our own identifiers, never personal data: left as they are so support can search them.
SAFE_FIELDS = frozenset({"request_id"})


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        for key, value in list(vars(record).items()):
            if key in _STD or key in SAFE_FIELDS or key.startswith("_"):
                continue
            if isinstance(value, (str, dict, list, tuple)):
                setattr(record, key, redact_field(key, value))
        return True


def _jsonable(value):
    if isinstance(value, (int, float, bool, str, type(None))):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD and not key.startswith("_"):
                entry[key] = _jsonable(value)  # RedactFilter already masked strings and containers
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict:
    """A dictConfig for Sanic's ``log_config``: every logger to stderr as JSON, redacted."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["redact"],
        "stream": sys.stderr,
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {
            "sanic.root": {"level": level, "handlers": ["json"], "propagate": False},
            "sanic.error": {"level": level, "handlers": ["json"], "propagate": False},
            "sanic.server": {"level": level, "handlers": ["json"], "propagate": False},
            # Our own access line (app.middleware) replaces Sanic's, which would log raw URLs.
            "sanic.access": {"level": "WARNING", "handlers": ["json"], "propagate": False},
            "tortoise": {"level": "WARNING"},
            "aiosqlite": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            # pyHanko logs tracebacks when a user-supplied PDF fails validation: an expected answer
            # of /contracts/verify, not a server error. Signing failures surface as exceptions.
            "pyhanko": {"level": "CRITICAL"},
            "pyhanko_certvalidator": {"level": "CRITICAL"},
        },
    }
