"""The signing scheme of ``docs/open-api.md``, usable on its own (any HTTP library, any framework).

A request (and a notification) is signed over six lines joined by ``\\n``, no trailing newline::

    METHOD \\n PATH \\n CANONICAL_QUERY \\n TIMESTAMP \\n NONCE \\n BODY_SHA256

a response over ``RESPONSE \\n STATUS \\n REQUEST_NONCE \\n TIMESTAMP \\n NONCE \\n BODY_SHA256``; the
signature is the lowercase hex HMAC-SHA256 of that string (UTF-8), keyed with the secret (UTF-8).

Where a function takes ``secret`` to *verify*, it also takes a list of secrets, tried in turn: during a
secret rotation keep the new and the old one until the grace period is over.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence
from urllib.parse import quote, unquote_plus, urlsplit

from .errors import SignatureError

__all__ = [
    "NONCE_RE",
    "TOLERANCE_S",
    "body_sha256",
    "canonical_query",
    "new_nonce",
    "request_string",
    "response_string",
    "sign",
    "sign_request",
    "split_target",
    "verify_notification",
    "verify_response",
]

#: The bank refuses (and the SDK refuses, for notifications) a timestamp further than this from now.
TOLERANCE_S = 300
#: 16-64 characters of ``A-Z a-z 0-9 _ -``.
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")

Headers = Mapping[str, str]


def body_sha256(body: bytes) -> str:
    """Lowercase hex SHA-256 of the body bytes as sent (``e3b0c442...`` for no body)."""
    return hashlib.sha256(body).hexdigest()


def canonical_query(query: str) -> str:
    """The ``CANONICAL_QUERY`` line for a raw query string (what follows ``?``, percent-encoding included).

    Split on ``&``, each part on its first ``=`` (a part without ``=`` is a name with an empty value;
    empty parts, as in ``a=1&&b=2``, are skipped); percent-decode names and values as UTF-8 with ``+``
    as a space (undecodable bytes become U+FFFD, as in :func:`urllib.parse.unquote_plus`); sort by name,
    then value, by code point; percent-encode again escaping every byte but ``A-Z a-z 0-9 - _ . ~``
    (upper-case hex, so a space is ``%20``); join ``name=value`` pairs with ``&``.
    """
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value)))
    pairs.sort()
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)


def split_target(target: str) -> tuple[str, str]:
    """Split a request target (``/path?query``, or a full ``http(s)://`` URL) into raw path and raw query."""
    if target[:8].lower().startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return path, query


def request_string(method: str, path: str, query: str, timestamp: int | str, nonce: str, body: bytes) -> str:
    """The string signed for a request or a notification. ``query`` is the raw query string (no ``?``)."""
    if "?" in path:
        raise ValueError("path must not contain the query: pass it as `query`")
    return "\n".join([method.upper(), path, canonical_query(query), str(timestamp), nonce, body_sha256(body)])


def response_string(status: int, request_nonce: str, timestamp: int | str, nonce: str, body: bytes) -> str:
    """The string signed for a response of the bank."""
    return "\n".join(["RESPONSE", f"{int(status):03d}", request_nonce, str(timestamp), nonce, body_sha256(body)])


def sign(secret: str, string: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``string`` (UTF-8) keyed with ``secret`` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), string.encode("utf-8"), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """A fresh random nonce: 32 characters of ``A-Z a-z 0-9 _ -`` (192 bits)."""
    return _secrets.token_urlsafe(24)


def sign_request(
    secret: str,
    app_id: str,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four signing headers for a request to ``target`` (``/path?query`` exactly as on the request
    line). Timestamp and nonce default to now and a fresh random nonce: never reuse a nonce."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = new_nonce() if nonce is None else nonce
    if not NONCE_RE.fullmatch(nonce):
        raise ValueError("a nonce is 16-64 characters of A-Z a-z 0-9 _ -")
    path, query = split_target(target)
    signature = sign(secret, request_string(method, path, query, timestamp, nonce, body))
    return {"X-App-Id": app_id, "X-Timestamp": str(timestamp), "X-Nonce": nonce, "X-Signature": signature}


def verify_response(
    secret: str | Sequence[str], status: int, request_nonce: str, headers: Headers, body: bytes
) -> None:
    """Check that a response came from the bank and answers the request sent with ``request_nonce``.

    Raises :class:`SignatureError` when the response is unsigned or the signature does not match.
    """
    timestamp, nonce, signature = (_header(headers, h) for h in ("X-Timestamp", "X-Nonce", "X-Signature"))
    if timestamp is None or nonce is None or signature is None:
        raise SignatureError(f"the {status} response is not signed (X-Timestamp, X-Nonce, X-Signature)")
    if not _matches(secret, response_string(status, request_nonce, timestamp, nonce, body), signature):
        raise SignatureError(f"the {status} response's signature does not match (wrong secret, or altered)")


def verify_notification(
    secret: str | Sequence[str],
    method: str,
    url_or_path_and_query: str,
    headers: Headers,
    body: bytes,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
    *,
    app_id: str | None = None,
) -> None:
    """Check a notification the bank POSTed to the partner's callback URL.

    ``url_or_path_and_query`` is the callback URL registered with the bank (or the path and query of the
    request line as received, percent-encoding included). Checks the four headers' presence and form,
    ``X-App-Id`` when ``app_id`` is given, the timestamp (±``tolerance_s`` from ``now``), then the
    signature. Raises :class:`SignatureError` on the first failure. Deduplicate events on ``event_id``.
    """
    values = {h: _header(headers, h) for h in ("X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature")}
    for name, value in values.items():
        if value is None:
            raise SignatureError(f"notification header {name} is missing")
    timestamp, nonce, signature = values["X-Timestamp"], values["X-Nonce"], values["X-Signature"]
    if app_id is not None and values["X-App-Id"] != app_id:
        raise SignatureError("notification X-App-Id is not this partner's app id")
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        raise SignatureError("notification X-Timestamp is not Unix seconds")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance_s:
        raise SignatureError(f"notification X-Timestamp is more than {tolerance_s} s away from now")
    if not NONCE_RE.fullmatch(nonce):
        raise SignatureError("notification X-Nonce is malformed")
    path, query = split_target(url_or_path_and_query)
    if not _matches(secret, request_string(method, path, query, timestamp, nonce, body), signature):
        raise SignatureError("notification signature does not match (wrong secret, URL, or altered body)")


def _matches(secret: str | Sequence[str], string: str, signature: str) -> bool:
    """Whether ``signature`` is the HMAC of ``string`` under any of the secrets (constant time)."""
    given = signature.encode("utf-8", "surrogatepass")
    ok = False
    for key in [secret] if isinstance(secret, str) else list(secret):
        ok |= hmac.compare_digest(sign(key, string).encode("ascii"), given)
    return ok and bool(_SIGNATURE_RE.fullmatch(signature))


def _header(headers: Headers, name: str) -> str | None:
    """Case-insensitive header lookup on any mapping (a dict, httpx/Starlette/Werkzeug headers)."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value
