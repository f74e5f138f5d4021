"""Parsing the daily statement CSV."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from openbank_partner import STATEMENT_COLUMNS, ProtocolError, StatementRow, china_today, parse_statement

HEADER = ("type,out_trade_no,out_refund_no,category,status,amount_fen,occurred_at,booked_at,card_number_masked,"
          "plate_number,plate_color,merchant")


def test_header_is_the_documented_one() -> None:
    assert ",".join(STATEMENT_COLUMNS) == HEADER


def test_rows() -> None:
    csv_text = "\r\n".join([
        HEADER,
        ("debit,ETC20261130000001,,toll,succeeded,3500,2026-11-30T08:00:00+08:00,2026-11-30T08:00:01+08:00,"
         "3201****2345,,,G2 Beijing-Shanghai Expwy"),
        ('refund,ETC20261130000001,RF20261130000001,toll,succeeded,1000,2026-11-30T09:00:00+08:00,'
         '2026-11-30T09:00:00+08:00,3201****2345,,,"Car wash, ""deluxe"""'),
        ("debit,PARK-0001,,parking,arrears,800,2026-11-30T10:00:00+08:00,2026-11-30T10:00:00+08:00,,京A12345,blue,"
         "停车场"),
    ]) + "\r\n"
    debit, refund, parking = parse_statement(csv_text.encode("utf-8"))
    assert debit == StatementRow(
        type="debit", out_trade_no="ETC20261130000001", out_refund_no=None, category="toll", status="succeeded",
        amount_fen=3500, occurred_at="2026-11-30T08:00:00+08:00", booked_at="2026-11-30T08:00:01+08:00",
        card_number_masked="3201****2345", plate_number=None, plate_color=None, merchant="G2 Beijing-Shanghai Expwy")
    assert (refund.type, refund.out_refund_no, refund.amount_fen, refund.merchant) == (
        "refund", "RF20261130000001", 1000, 'Car wash, "deluxe"')
    assert isinstance(refund.amount_fen, int)
    assert (parking.card_number_masked, parking.plate_number, parking.plate_color, parking.merchant) == (
        None, "京A12345", "blue", "停车场")


def test_header_only_is_an_empty_day() -> None:
    assert parse_statement(HEADER + "\n") == []
    assert parse_statement(HEADER) == []


def test_byte_order_mark_and_lf_endings() -> None:
    rows = parse_statement(b"\xef\xbb\xbf" + (HEADER + "\ndebit,A123456,,fuel,succeeded,1,o,b,,,,m\n").encode())
    assert rows[0].amount_fen == 1 and rows[0].type == "debit"


def test_extra_columns_are_ignored() -> None:
    rows = parse_statement(HEADER + ",note\ndebit,A123456,,fuel,succeeded,1,o,b,,,,m,hello\n")
    assert rows[0].merchant == "m"


@pytest.mark.parametrize("text", [
    "type,out_trade_no\ndebit,A123456\n",                            # columns missing
    "",                                                               # nothing at all
    HEADER + "\ndebit,A123456,,fuel,succeeded,1.5,o,b,,,,m\n",        # amount not an integer
    HEADER + "\ndebit,A123456,,fuel,succeeded,,o,b,,,,m\n",
])
def test_malformed(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_statement(text)


def test_short_row_is_malformed() -> None:
    with pytest.raises(ProtocolError):
        parse_statement(HEADER + "\ndebit,A123456,,fuel\n")


def test_china_today_cuts_days_at_utc_16() -> None:
    assert china_today(datetime(2026, 11, 30, 15, 59, tzinfo=timezone.utc)) == date(2026, 11, 30)
    assert china_today(datetime(2026, 11, 30, 16, 0, tzinfo=timezone.utc)) == date(2026, 12, 1)
