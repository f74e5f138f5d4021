"""The suite's personal-data scan of its logs (``tests/logscan.py``) finds what it must, and only that."""

from __future__ import annotations

from tests.identity_data import luhn_check_digit, make_card_number, make_id_number
from tests.logscan import kinds_in, record
from tests.partner_helpers import etc_card


def test_unmasked_personal_data_is_found():
    id_number, card, etc = make_id_number(), make_card_number(), etc_card()
    assert kinds_in(f'{{"msg": "ocr", "id_number": "{id_number}"}}') == ["ID number"]
    assert kinds_in('{"phone": "13800138000"}') == ["phone number"]
    account = "623099123456789012" + luhn_check_digit("623099123456789012")
    assert kinds_in(f"to {account} now") == ["account number"]
    assert kinds_in(f"card {card}") == ["card number"] and kinds_in(f"etc={etc}") == ["card number"]
    assert kinds_in('{"name": "王小明"}') == ["name"]


def test_masked_values_and_identifiers_are_not():
    for line in ['{"id_number": "110105********1234"}', '{"phone": "138****8000"}', '{"card": "6222 **** **** 1234"}',
                 '{"request_id": "52f3bad34cf5cb53000000000000001a"}', '{"job": "test.fail.1764489600123456789"}',
                 '{"ts": "2026-11-30T08:00:00.123+00:00", "duration_ms": 13800138000.5}',
                 "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                 f"an unrecorded number {'6222' + '0' * 15}"]:
        assert kinds_in(line) == [], line


def test_a_card_number_counts_once_recorded():
    number = "6222021234567890123"
    assert kinds_in(f"card {number}") == []
    record(number)
    assert kinds_in(f"card {number}") == ["card number"]
