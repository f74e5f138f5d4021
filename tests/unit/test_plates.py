"""Vehicle plates per GA 36-2018: properties over generated plates, and real examples both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.validators import PLATE_COLORS, PROVINCES, plate_color_fits, plate_ok

LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, no O
DIGITS = "0123456789"
provinces = st.sampled_from(PROVINCES)
letters = st.sampled_from(LETTERS)
alnum = st.sampled_from(LETTERS + DIGITS)
digits = st.text(DIGITS, min_size=4, max_size=4)


@st.composite
def ordinary(draw) -> str:
    tail = draw(st.sampled_from(LETTERS + DIGITS + "挂学警港澳领"))
    return draw(provinces) + draw(letters) + "".join(draw(alnum) for _ in range(4)) + tail


@st.composite
def new_energy_small(draw) -> str:
    return draw(provinces) + draw(letters) + draw(st.sampled_from("DF")) + draw(alnum) + draw(digits)


@st.composite
def new_energy_large(draw) -> str:
    return draw(provinces) + draw(letters) + draw(st.text(DIGITS, min_size=5, max_size=5)) + draw(st.sampled_from("DF"))


@given(st.one_of(ordinary(), new_energy_small(), new_energy_large()))
def test_every_well_formed_plate_is_valid(plate):
    assert plate_ok(plate)


@given(st.one_of(ordinary(), new_energy_small(), new_energy_large()), st.integers(min_value=1, max_value=7),
       st.sampled_from("IO"))
def test_an_i_or_an_o_anywhere_after_the_province_makes_it_invalid(plate, at, letter):
    at = min(at, len(plate) - 1)
    assert not plate_ok(plate[:at] + letter + plate[at + 1:])


@given(st.one_of(ordinary(), new_energy_small(), new_energy_large()),
       st.characters(codec="utf-8").filter(lambda c: c not in PROVINCES and c != "使"))
def test_a_plate_must_start_with_a_province(plate, first):
    assert not plate_ok(first + plate[1:])


@given(st.one_of(ordinary(), new_energy_small(), new_energy_large()), st.sampled_from([" ", "·", "-"]))
def test_spaces_dots_and_lowercase_are_not_plates(plate, sep):
    assert not plate_ok(plate[:2] + sep + plate[2:])
    if any(c.isalpha() and c.isascii() for c in plate[1:]):
        assert not plate_ok(plate[0] + plate[1:].lower())


@given(new_energy_small())
def test_a_small_new_energy_plate_is_gradient_green_only(plate):
    assert [c for c in PLATE_COLORS if plate_color_fits(plate, c)] == ["gradient_green"]


@given(new_energy_large())
def test_a_large_new_energy_plate_is_yellow_green_only(plate):
    assert [c for c in PLATE_COLORS if plate_color_fits(plate, c)] == ["yellow_green"]


@given(ordinary())
def test_no_other_plate_is_green(plate):
    assert [c for c in PLATE_COLORS if plate_color_fits(plate, c)] == ["blue", "yellow", "black", "white"]


@pytest.mark.parametrize("plate", ["京A12345", "粤BD12345", "沪AD12345", "粤Z1234港", "粤B12345D", "京AF0236",
                                   "川A1234学", "苏E1234挂", "使014578", "京A0001警"])
def test_real_plates_are_valid(plate):
    assert plate_ok(plate)


@pytest.mark.parametrize("plate", [
    "京AI2345",  # I
    "京O12345",  # O as the authority letter
    "京A1O345",  # O in the number
    "台A12345",  # not a province of the list
    "A京12345",  # province not first
    "粤B D12345",  # a space
    "京A·12345",  # a dot
    "京a12345",  # lowercase
    "京A1234",  # too short
    "京A123456",  # 8 characters but not new energy
    "粤BD1234D",  # new energy with a letter at both ends
    "京A12345挂学",  # too long
    "",
])
def test_malformed_plates_are_invalid(plate):
    assert not plate_ok(plate)


@pytest.mark.parametrize("value", ["京A12345\n", "使014578\n"])
def test_a_trailing_newline_is_not_part_of_a_plate(value):
    assert not plate_ok(value)


def test_other_validators_refuse_a_trailing_newline_too():
    from core.validators import card_number_ok, mobile_ok, name_ok
    from tests.identity_data import make_card_number

    assert mobile_ok("13812345678") and not mobile_ok("13812345678\n")
    assert name_ok("张三") and not name_ok("张三\n")
    card = make_card_number()
    assert card_number_ok(card) and not card_number_ok(card + "\n")
