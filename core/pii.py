"""Personal data at rest and on display (JR/T 0171 C2 data).

* ``PiiCipher.encrypt/decrypt``: AES-256-GCM field encryption. The stored form is
  ``v1.<kid>.<base64(nonce || ciphertext || tag)>`` so keys can rotate: the first key of the ring
  encrypts, any key in the ring decrypts. The field's purpose (``"user.phone"``) is bound as associated
  data, so a ciphertext copied into another column does not decrypt.
* ``PiiCipher.blind_index``: HMAC-SHA256 with a separate key, for equality lookups (by ID number, phone)
  without storing the value.
* ``mask_*``: how values appear in responses and logs.
* ``redact``: scrubs anything that looks like an ID number, card number or phone from free text (logs);
  ``redact_field`` masks a value by what its field is (a name, an address), which no pattern can spot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "v1"


class PiiCipher:
    def __init__(self, keys: dict[str, bytes], index_key: bytes) -> None:
        if not keys:
            raise ValueError("at least one PII key is required")
        for kid, key in keys.items():
            if len(key) != 32 or "." in kid:
                raise ValueError(f"PII key {kid!r} must be 32 bytes and its id must not contain '.'")
        if len(index_key) < 32:
            raise ValueError("the blind-index key must be at least 32 bytes")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active = next(iter(keys))
        self._index_key = index_key

    def encrypt(self, plaintext: str | bytes, *, purpose: str) -> str:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(12)
        ct = self._keys[self._active].encrypt(nonce, data, purpose.encode())
        return f"{_PREFIX}.{self._active}.{base64.b64encode(nonce + ct).decode()}"

    def decrypt_bytes(self, stored: str, *, purpose: str) -> bytes:
        prefix, kid, blob = stored.split(".", 2)
        if prefix != _PREFIX or kid not in self._keys:
            raise ValueError("unknown ciphertext format or key id")
        raw = base64.b64decode(blob)
        return self._keys[kid].decrypt(raw[:12], raw[12:], purpose.encode())

    def decrypt(self, stored: str, *, purpose: str) -> str:
        return self.decrypt_bytes(stored, purpose=purpose).decode()

    def seal(self, data: bytes, *, purpose: str) -> bytes:
        """Binary form of ``encrypt`` for files (uploads): ``v1.<kid>.`` + nonce + ciphertext."""
        nonce = os.urandom(12)
        ct = self._keys[self._active].encrypt(nonce, data, purpose.encode())
        return f"{_PREFIX}.{self._active}.".encode() + nonce + ct

    def open(self, blob: bytes, *, purpose: str) -> bytes:
        prefix, kid, raw = blob.split(b".", 2)
        if prefix.decode() != _PREFIX or kid.decode() not in self._keys:
            raise ValueError("unknown ciphertext format or key id")
        return self._keys[kid.decode()].decrypt(raw[:12], raw[12:], purpose.encode())

    def needs_rotation(self, stored: str) -> bool:
        return stored.split(".", 2)[1] != self._active

    def blind_index(self, value: str, *, purpose: str) -> str:
        msg = purpose.encode() + b"\x00" + value.strip().upper().encode()
        return hmac.new(self._index_key, msg, hashlib.sha256).hexdigest()


def mask_id_number(value: str) -> str:
    """``11010519491231002X`` -> ``1101**********002X``."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    """``13812345678`` -> ``138****5678`` (a leading +86 is dropped)."""
    digits = value.strip()
    if digits.startswith(("86", "+86")) and len(digits) > 11:
        digits = digits[digits.index("86") + 2 :]
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_card(value: str) -> str:
    """First 6 and last 4: ``6222021234561234`` -> ``622202******1234``."""
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_name(value: str) -> str:
    """``张三丰`` -> ``张*丰``; ``张三`` -> ``张*``; one character -> ``*``."""
    n = len(value)
    if n <= 1:
        return "*" * n
    if n == 2:
        return value[0] + "*"
    return value[0] + "*" * (n - 2) + value[-1]


# Each pattern matches a whole token: it may not start or end inside a run of letters and digits, so
# the digits inside a request id (``dcc3672aa93945829098083a1e937811``), a hash or a UUID segment stay
# searchable. Longest first: an 18-character ID number contains 11-digit runs that look like phones,
# and a +86 phone is 13 digits, which would otherwise read as a card.
_EDGE_L, _EDGE_R = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
_ID_RE = re.compile(_EDGE_L + r"\d{17}[\dXx]" + _EDGE_R)
_PHONE_RE = re.compile(r"(?<![0-9A-Za-z+])(?:\+?86[- ]?)?1[3-9]\d{9}" + _EDGE_R)
_CARD_RE = re.compile(_EDGE_L + r"\d{13,19}" + _EDGE_R)


def redact(text: str) -> str:
    """Mask anything in free text that looks like an ID number, bank card number or mobile number."""
    text = _ID_RE.sub(lambda m: mask_id_number(m.group()), text)
    text = _PHONE_RE.sub(lambda m: mask_phone(m.group().replace(" ", "").replace("-", "")), text)
    text = _CARD_RE.sub(lambda m: mask_card(m.group()), text)
    return text


def mask_address(value: str) -> str:
    """Keep the first 6 characters (province and city), mask the rest: ``北京市朝阳区建国路1号`` ->
    ``北京市朝阳区*****``."""
    return value[:6] + "*" * max(len(value) - 6, 0)


# Field names whose values are personal data whatever they look like (JR/T 0171 C2), and their masks.
FIELD_MASKS = {
    "name": mask_name,
    "person_name": mask_name,
    "cert_name": mask_name,
    "id_number": mask_id_number,
    "cert_no": mask_id_number,
    "phone": mask_phone,
    "mobile": mask_phone,
    "reserved_phone": mask_phone,
    "card_number": mask_card,
    "card_no": mask_card,
    "bound_card": mask_card,
    "address": mask_address,
    "addr": mask_address,
}


def redact_field(key: str, value):
    """``value`` masked as what field ``key`` holds, recursing into dicts and lists; any other string is
    scrubbed by pattern (``redact``)."""
    if isinstance(value, dict):
        return {k: redact_field(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_field(key, v) for v in value]
    if isinstance(value, str):
        masker = FIELD_MASKS.get(key.lower())
        if masker is not None and "*" not in value:  # masks are idempotent; skip already-masked values
            return masker(value)
        return redact(value)
    return value
