"""Token primitives: access JWTs (HS256 pinned, kid-rotated) and opaque refresh tokens.

Access tokens are short-lived (<= 15 min) and checked for signature, ``alg``, ``kid``, ``iss``, ``aud``,
``exp``, ``iat`` and ``sub``. Refresh tokens are random strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
MAX_USER_ID = 2**63 - 1  # users.id is a BIGINT
_SUB_RE = re.compile(r"^[1-9][0-9]{0,18}$")
_OPAQUE_RE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class TokenInvalid(Exception):
    """Any reason an access token is not acceptable; the reason is for logs, not for the caller."""


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    jti: str
    iat: int
    exp: int
    sid: str  # the refresh-token family this access token came from

    @property
    def user_id(self) -> int:
        return int(self.sub)


class JWTCodec:
    def __init__(self, keys: dict[str, bytes], *, issuer: str, audience: str, ttl_s: int) -> None:
        if not keys:
            raise ValueError("at least one JWT key is required")
        self._keys = dict(keys)
        self._active = next(iter(keys))
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    def issue(self, subject: str, *, family: str, now: float | None = None) -> str:
        iat = int(now if now is not None else time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": iat,
            "exp": iat + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "sid": family,
        }
        return jwt.encode(claims, self._keys[self._active], algorithm=ALGORITHM, headers={"kid": self._active})

    def verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"malformed: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenInvalid(f"algorithm {header.get('alg')!r} not allowed")
        key = self._keys.get(header.get("kid", ""))
        if key is None:
            raise TokenInvalid("unknown kid")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "sid"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from exc
        # A correctly signed token still carries only what we issue: a user id that fits the column,
        # and short opaque ids. Anything else (a key leaked to someone minting odd tokens, a bug) is
        # refused here rather than failing deeper down.
        sub, jti, sid = claims["sub"], claims["jti"], claims["sid"]
        if not (isinstance(sub, str) and _SUB_RE.match(sub) and int(sub) <= MAX_USER_ID):
            raise TokenInvalid("sub is not a user id")
        if not all(isinstance(v, str) and _OPAQUE_RE.match(v) for v in (jti, sid)):
            raise TokenInvalid("jti or sid malformed")
        if not all(type(claims[k]) is int for k in ("iat", "exp")):
            raise TokenInvalid("iat or exp not an integer")
        return AccessClaims(
            sub=str(claims["sub"]), jti=claims["jti"], iat=claims["iat"], exp=claims["exp"], sid=claims["sid"]
        )


def new_refresh_token() -> str:
    return "rt_" + secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # The token carries 256 bits of randomness, so a plain SHA-256 is not brute-forceable.
    return hashlib.sha256(token.encode()).hexdigest()
