"""The signed strings of docs/open-api.md: requests (and notifications), and responses.

Keep this and the document in step: partners implement it from the document (the partner SDK in
``partner_sdk/`` does, independently), and the sandbox's partner emulator checks our notifications with
its own implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote, unquote_plus

UNRESERVED = "-_.~"  # with A-Z a-z 0-9, never escaped


def canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&") if query else []:
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name, errors="strict"), unquote_plus(value, errors="strict")))
    pairs.sort()
    return "&".join(f"{quote(n, safe=UNRESERVED)}={quote(v, safe=UNRESERVED)}" for n, v in pairs)


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def request_string(method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join((method.upper(), path, canonical_query(query), timestamp, nonce, body_sha256(body)))


def response_string(status: int, request_nonce: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join(("RESPONSE", f"{status:03d}", request_nonce, timestamp, nonce, body_sha256(body)))


def sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def matches(secret: str, text: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, text), signature)


def new_nonce() -> str:
    return secrets.token_urlsafe(18)  # 24 characters of A-Z a-z 0-9 _ -
