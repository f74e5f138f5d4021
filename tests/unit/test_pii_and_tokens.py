"""PII encryption, blind indexes and masking; JWT primitives."""

from __future__ import annotations

import secrets

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from core.pii import PiiCipher, mask_card, mask_id_number, mask_name, mask_phone, redact
from core.tokens import JWTCodec, TokenInvalid


def cipher(keys=None):
    return PiiCipher(keys or {"k1": secrets.token_bytes(32)}, secrets.token_bytes(32))


def test_encrypt_round_trip_and_purpose_binding():
    c = cipher()
    stored = c.encrypt("13812345678", purpose="user.phone")
    assert stored.startswith("v1.k1.") and "13812345678" not in stored
    assert c.decrypt(stored, purpose="user.phone") == "13812345678"
    assert c.encrypt("13812345678", purpose="user.phone") != stored  # random nonce
    with pytest.raises(InvalidTag):
        c.decrypt(stored, purpose="identity.id_number")  # moved to another column


def test_key_rotation_keeps_old_values_readable():
    old_key, new_key, index = secrets.token_bytes(32), secrets.token_bytes(32), secrets.token_bytes(32)
    old = PiiCipher({"k1": old_key}, index)
    stored = old.encrypt("张三", purpose="p")
    rotated = PiiCipher({"k2": new_key, "k1": old_key}, index)
    assert rotated.decrypt(stored, purpose="p") == "张三"
    assert rotated.needs_rotation(stored)
    assert rotated.encrypt("张三", purpose="p").startswith("v1.k2.")
    assert rotated.blind_index("x", purpose="p") == old.blind_index("x", purpose="p")


def test_blind_index_is_keyed_and_normalised():
    c = cipher()
    assert c.blind_index("11010519491231002x", purpose="id") == c.blind_index("11010519491231002X ", purpose="id")
    assert c.blind_index("a", purpose="id") != c.blind_index("a", purpose="phone")
    assert c.blind_index("a", purpose="id") != cipher().blind_index("a", purpose="id")


def test_masks():
    assert mask_id_number("11010519491231002X") == "1101**********002X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_card("6222021234561234") == "622202******1234"
    assert mask_name("张三丰") == "张*丰"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧**娜"


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_phone_mask_hides_the_middle(phone):
    masked = mask_phone(phone)
    assert masked[:3] == phone[:3] and masked[-4:] == phone[-4:] and masked[3:7] == "****"


@given(st.from_regex(r"[0-9]{12,19}", fullmatch=True))
def test_card_mask_shows_only_6_and_4(card):
    masked = mask_card(card)
    assert len(masked) == len(card)
    assert masked[:6] == card[:6] and masked[-4:] == card[-4:]
    assert set(masked[6:-4]) == {"*"}


def test_redact_masks_ids_cards_and_phones_in_text():
    text = "id 11010519491231002X card 6222021234567890123 phone 13812345678 amount 100"
    out = redact(text)
    for secret in ["11010519491231002X", "6222021234567890123", "13812345678"]:
        assert secret not in out
    assert "1101**********002X" in out and "138****5678" in out and "622202*********0123" in out
    assert out.endswith("amount 100")


def test_jwt_round_trip_and_kid_rotation():
    k1, k2 = b"a" * 40, b"b" * 40
    old = JWTCodec({"k1": k1}, issuer="i", audience="a", ttl_s=60)
    token = old.issue("42", family="f")
    new = JWTCodec({"k2": k2, "k1": k1}, issuer="i", audience="a", ttl_s=60)
    assert new.verify(token).sub == "42"  # old tokens still verify during rotation
    assert JWTCodec({"k2": k2}, issuer="i", audience="a", ttl_s=60).verify(new.issue("7", family="f")).sub == "7"
    with pytest.raises(TokenInvalid):
        JWTCodec({"k2": k2}, issuer="i", audience="a", ttl_s=60).verify(token)  # k1 retired
