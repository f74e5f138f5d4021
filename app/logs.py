"""JSON-lines logging with personal data redacted.

Every record goes through ``RedactFilter``, which masks anything that looks like an ID number, card
number or phone in the message and in string extras. Handlers never log bodies, tokens or query strings.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from core.pii import redact

_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# Loggers whose records carry only fields we build from known-safe values (the access line: request
# id, method, route *template*, status, duration). Skipping the regexes there halves the per-request
# logging cost; everything else is scrubbed.
SAFE_LOGGERS = frozenset({"app.access"})


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in SAFE_LOGGERS:
            return True
        record.msg = redact(record.getMessage())
        record.args = ()
        for key, value in list(vars(record).items()):
            if key not in _STD and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


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
                # strings were scrubbed by RedactFilter; other objects are rendered (and scrubbed) here
                entry[key] = value if isinstance(value, (int, float, bool, str, type(None))) else redact(str(value))
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
