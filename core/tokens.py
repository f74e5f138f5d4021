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
from jwt.algorithms import HMACAlgorithm

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


class _CheckedKeyHMAC(HMACAlgorithm):
    """pyjwt's HS256, checking each key once: ``prepare_key`` scans the key for PEM and SSH markers on
    every call (about a sixth of a token check); our keys are fixed at start, so a checked key is
    remembered."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._checked: set[bytes] = set()

    def prepare_key(self, key):
        if isinstance(key, bytes) and key in self._checked:
            return key
        prepared = super().prepare_key(key)
        if isinstance(key, bytes) and len(self._checked) < 64:
            self._checked.add(key)
        return prepared


class JWTCodec:
    def __init__(self, keys: dict[str, bytes], *, issuer: str, audience: str, ttl_s: int) -> None:
        if not keys:
            raise ValueError("at least one JWT key is required")
        self._keys = dict(keys)
        self._active = next(iter(keys))
        self._kids: dict[str, str] = {}  # header segment -> kid
        # Our own pyjwt instance (its PyJWS is its own) with the key-checking HS256 above.
        self._jwt = jwt.PyJWT()
        self._jwt._jws.unregister_algorithm(ALGORITHM)
        self._jwt._jws.register_algorithm(ALGORITHM, _CheckedKeyHMAC())
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

    def _key_for(self, token: str) -> bytes:
        """The key named by the token's header. Every token of one key has the same header, so the
        header segment is parsed once per distinct value (a handful) and remembered; pyjwt then decodes
        the token once."""
        segment = token.split(".", 1)[0]
        kid = self._kids.get(segment)
        if kid is None:
            try:
                header = jwt.get_unverified_header(token)
            except jwt.PyJWTError as exc:
                raise TokenInvalid(f"malformed: {exc}") from exc
            if header.get("alg") != ALGORITHM:
                raise TokenInvalid(f"algorithm {header.get('alg')!r} not allowed")
            kid = header.get("kid", "")
            if kid not in self._keys:
                raise TokenInvalid("unknown kid")
            if len(self._kids) < 64:  # only headers we issue are worth remembering; bounded anyway
                self._kids[segment] = kid
        return self._keys[kid]

    def verify(self, token: str) -> AccessClaims:
        key = self._key_for(token)
        try:
            claims = self._jwt.decode(
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
        if not (isinstance(sub, str) and _SUB_RE.fullmatch(sub) and int(sub) <= MAX_USER_ID):
            raise TokenInvalid("sub is not a user id")
        if not all(isinstance(v, str) and _OPAQUE_RE.fullmatch(v) for v in (jti, sid)):
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
