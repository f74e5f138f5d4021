"""Property tests for ID numbers, card numbers and masks; face 2.0 cert_hash against WeChat's example."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.pii import mask_id_number, mask_name
from core.validators import age_on, card_number_ok, parse_id_number
from integrations.wechat.miniprogram import cert_hash
from tests.identity_data import REGIONS, id_check_char, luhn_check_digit

births = st.dates(min_value=date(1950, 1, 1), max_value=date.today() - timedelta(days=1))
regions = st.sampled_from(REGIONS)
seqs = st.integers(min_value=0, max_value=999)


def build(region: str, birth: date, seq: int) -> str:
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + id_check_char(body)


@given(regions, births, seqs)
def test_correct_checksum_is_valid(region, birth, seq):
    number = build(region, birth, seq)
    parsed = parse_id_number(number)
    assert parsed is not None and parsed.birth_date == birth and parsed.male == (seq % 2 == 1)
    assert parse_id_number(number.lower()) == parsed  # a lowercase x is the same number


@given(regions, births, seqs, st.sampled_from("0123456789X"))
def test_any_other_check_character_is_invalid(region, birth, seq, wrong):
    number = build(region, birth, seq)
    if wrong != number[-1]:
        assert parse_id_number(number[:-1] + wrong) is None


@given(regions, births, seqs, st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_a_single_changed_digit_is_caught(region, birth, seq, pos, delta):
    number = build(region, birth, seq)
    changed = number[:pos] + str((int(number[pos]) + delta) % 10) + number[pos + 1 :]
    assert parse_id_number(changed) is None  # MOD 11-2 catches every single-digit error


@given(st.text(min_size=0, max_size=30))
def test_garbage_never_validates_or_crashes(text):
    assert parse_id_number(text) is None or len(text.strip()) == 18


def test_future_birth_and_bad_dates_are_invalid():
    assert parse_id_number(build("110105", date.today() + timedelta(days=400), 1)) is None
    body = "11010519491332002"
    assert parse_id_number(body + id_check_char(body)) is None


@given(regions, births, seqs)
def test_id_mask_keeps_4_and_4(region, birth, seq):
    number = build(region, birth, seq)
    masked = mask_id_number(number)
    assert masked[:4] == number[:4] and masked[-4:] == number[-4:] and masked[4:-4] == "*" * 10
    assert number[4:14] not in masked  # the birth date is hidden


@given(st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=6))
def test_name_mask_never_shows_more_than_first_and_last(name):
    masked = mask_name(name)
    assert len(masked) == len(name)
    shown = [c for c in masked if c != "*"]
    assert len(shown) <= (1 if len(name) <= 2 else 2)


@settings(max_examples=200)
@given(st.from_regex(r"62[0-9]{15,16}", fullmatch=True))
def test_luhn_check_digit(body):
    good = body + luhn_check_digit(body)
    assert card_number_ok(good)
    bad = body + str((int(luhn_check_digit(body)) + 1) % 10)
    assert not card_number_ok(bad)


def test_age():
    assert age_on(date(2000, 6, 1), date(2016, 5, 31)) == 15
    assert age_on(date(2000, 6, 1), date(2016, 6, 1)) == 16


def test_cert_hash_matches_wechat_worked_example():
    # FacialRecognitionVerify doc: cert_type=IDENTITY_CARD, cert_name=张三, cert_no=310101199801011234
    assert cert_hash("IDENTITY_CARD", "张三", "310101199801011234") == (
        "3c241f7ff324977aeb91f173bb2a7b06569e6fd784d5573db34a636d8671108b"
    )


def test_an_id_number_whose_region_stdnum_cannot_look_up_is_invalid_not_an_error():
    # python-stdnum raises KeyError('county') for this region code instead of an InvalidComponent
    assert parse_id_number("374729250401104370") is None


@settings(max_examples=2000, deadline=None)
@given(st.from_regex(r"[1-9][0-9]{5}(19[5-9][0-9]|20[01][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}", fullmatch=True))
def test_parse_id_number_answers_for_any_well_shaped_number(body):
    """Whatever the region, a number with a right check character gets an answer, never an exception."""
    from stdnum.cn import ric

    number = body + ric.calc_check_digit(body)
    result = parse_id_number(number)
    assert result is None or result.number == number
