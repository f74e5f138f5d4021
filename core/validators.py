"""Validators for the bank's inputs: resident ID numbers, bank cards, mobile numbers, names, vehicle
plates (GA 36-2018), ETC cards, partners' free text, and request headers that must come once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from collections.abc import Callable

from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumError

from core.clock import china_day

MOBILE_RE = re.compile(r"^1[3-9][0-9]{9}$")
# Chinese names: 2-30 CJK characters, with the middle dot used in minority and transliterated names.
NAME_RE = re.compile(r"^[\u3400-\u9fff\u00b7\u2022]{2,30}$")
CARD_RE = re.compile(r"^[0-9]{12,19}$")


@dataclass(frozen=True)
class ResidentId:
    number: str
    birth_date: date
    male: bool


def parse_id_number(value: str) -> ResidentId | None:
    """GB 11643 ID number via python-stdnum (checksum, region, birth date); None when invalid."""
    candidate = (value or "").strip().upper()
    if len(candidate) != 18:
        return None
    try:
        number = ric.validate(candidate)
        birth = ric.get_birth_date(number)
        ric.get_birth_place(number)  # raises when the region code is unknown
    except (StdnumError, ValueError, KeyError):
        # KeyError: python-stdnum 2.2's region table has prefectures without counties, and looking one
        # up raises instead of saying "invalid" (found by the fuzzer: 374729250401104370)
        return None
    if birth > china_day():
        return None
    return ResidentId(number=number, birth_date=birth, male=int(number[16]) % 2 == 1)


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def card_number_ok(value: str) -> bool:
    """Shape and Luhn, as a pre-filter; the card's bank has the last word."""
    return bool(CARD_RE.fullmatch(value or "")) and luhn.is_valid(value)


def mobile_ok(value: str) -> bool:
    return bool(MOBILE_RE.fullmatch(value or ""))


def name_ok(value: str) -> bool:
    return bool(NAME_RE.fullmatch(value or ""))


# -- vehicles (GA 36-2018) ---------------------------------------------------------------------------

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_L = "A-HJ-NP-Z"  # letters on plates: never I or O (they read as 1 and 0)
# ordinary (7): province, issuing authority, 4 letters/digits, a final letter/digit or 挂学警港澳领;
# new energy (8): small cars D|F + letter/digit + 4 digits, large vehicles 5 digits + D|F; embassy: 使 + 6 digits.
PLATE_RE = re.compile(
    rf"^(?:[{PROVINCES}][{_L}](?:[{_L}0-9]{{4}}[{_L}0-9挂学警港澳领]|[DF][{_L}0-9][0-9]{{4}}|[0-9]{{5}}[DF])|使[0-9]{{6}})$"
)
# One internal colour enum (partners number colours differently and are mapped at their edge).
PLATE_COLORS = ("blue", "yellow", "black", "white", "gradient_green", "yellow_green")
NEW_ENERGY_SMALL, NEW_ENERGY_LARGE = "gradient_green", "yellow_green"


def plate_ok(value: str) -> bool:
    return bool(PLATE_RE.fullmatch(value or ""))


def plate_color_fits(plate: str, color: str) -> bool:
    """A new-energy (8-character) plate is green (gradient for small cars, yellow-green for large vehicles);
    any other plate is not."""
    if len(plate) == 8:
        return color == (NEW_ENERGY_LARGE if plate[-1] in "DF" and plate[2:7].isdigit() else NEW_ENERGY_SMALL)
    return color not in (NEW_ENERGY_SMALL, NEW_ENERGY_LARGE)


# ETC user cards: 4-digit card-network number + 16-digit internal number, no check digit.
ETC_CARD_RE = re.compile(r"^[0-9]{20}$")


# -- partners' free text -----------------------------------------------------------------------------

# Text a partner sends that reaches a statement (a debit's merchant and detail, a refund's reason): no
# control characters; no bidi controls (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069), which make a
# CSV cell or a log line read in another order than it is stored; no full-width lookalikes of ASCII
# letters and digits (U+FF10-U+FF19, U+FF21-U+FF3A, U+FF41-U+FF5A), with which one merchant's name
# passes for another's, nor of the formula starts ＝ ＋ － ＠; and nothing a spreadsheet reads as a
# formula at the start. Chinese punctuation (（）！，：；？、。) is ordinary text in a merchant's name.
_TEXT_REFUSED = (r"\x00-\x1f\x7f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                 r"\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\uff1d\uff0b\uff0d\uff20")
STATEMENT_TEXT_PATTERN = rf"^[^=+\-@{_TEXT_REFUSED}][^{_TEXT_REFUSED}]*$"


# -- request headers ---------------------------------------------------------------------------------


def single_header(headers, name: str, refusal: Callable[..., Exception]) -> str | None:
    """The value of header ``name``, None when absent; sent more than once it is refused (``refusal``,
    naming the header). Proxies and frameworks disagree on which copy counts (the first, the last, both
    joined by a comma), so a signature, nonce or idempotency key checked in one copy must not be spent
    in another."""
    values = headers.getall(name, []) if hasattr(headers, "getall") else (
        [headers[name]] if headers.get(name) is not None else [])
    if len(values) > 1:
        raise refusal(f"请求头 {name} 只能出现一次", field=name)
    return values[0] if values else None
