"""Reading WeChat Pay's trade bill (our parser, against bills made by the emulator's independent
renderer and by hand) and checking the downloaded file's hash."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from integrations.wechatpay import BillUnusable, checked_bill
from sandbox.wechatpay import bill as emulator
from services.payments.bills import BillMalformed, fen, parse

PAYMENT = emulator.Payment("wxapp", "1900000001", "4200000001", "PO1", "openid", "OTHERS", "CNY", 9_900,
                           "ETC车载设备费, 一台", None, 1_764_460_800.0)
OTHER = emulator.Payment("wxapp", "1900000001", "4200000002", "PO2", "openid", "CMB_DEBIT", "CNY", 1_234,
                         "ETC欠费补缴", "a,b", 1_764_460_900.0)
REFUND = emulator.Refund(PAYMENT, "5030000001", "RF1", 2_000, 1_764_461_000.0, 1_764_461_060.0)


def test_payments_and_refunds_are_read_with_their_amounts_in_fen():
    bill = parse(emulator.render("ALL", [PAYMENT, OTHER], [REFUND]))
    assert [(x.out_trade_no, x.transaction_id, x.amount_fen) for x in bill.payments] == [
        ("PO1", "4200000001", 9_900), ("PO2", "4200000002", 1_234)]
    assert [(x.out_trade_no, x.out_refund_no, x.refund_id, x.amount_fen) for x in bill.refunds] == [
        ("PO1", "RF1", "5030000001", 2_000)]


def test_a_bill_without_records_but_its_summary_is_empty():
    assert parse(emulator.render("ALL", [], [])).lines == []


@pytest.mark.parametrize("change", [
    lambda t: t.replace("`3,", "`4,", 1),  # the count of the summary
    lambda t: t.replace("`111.34,", "`111.35,", 1),  # the settled total
    lambda t: t[::-1].replace(",00.0`,00.02`", ",00.0`,10.02`", 1)[::-1],  # the summary's refunded total
    lambda t: "\r\n".join(t.split("\r\n")[:-3] + t.split("\r\n")[-2:]),  # a line lost
    lambda t: t.replace("`SUCCESS", "`PAID", 1),  # an unknown 交易状态
    lambda t: t.replace("`99.00", "`99.001", 1),  # not an amount in fen
    lambda t: t.split("总交易单数")[0],  # no summary
    lambda t: t.replace("商户订单号", "订单号", 1),  # not the columns of an ALL bill
])
def test_a_bill_that_does_not_add_up_is_refused(change):
    text = emulator.render("ALL", [PAYMENT, OTHER], [REFUND]).decode()
    assert "`111.34," in text and "`3," in text  # the figures the changes above alter
    with pytest.raises(BillMalformed):
        parse(change(text).encode())


def test_amounts_are_exact():
    assert fen("0.01") == 1 and fen("-0.05") == -5 and fen("12.30") == 1_230
    for bad in ("1.001", "abc", "NaN", "Infinity", ""):
        with pytest.raises(BillMalformed):
            fen(bad)


def test_the_downloaded_file_is_used_only_when_its_hash_matches():
    text = emulator.render("ALL", [PAYMENT], [])
    digest = hashlib.sha1(text).hexdigest()  # noqa: S324 - WeChat Pay's choice
    assert checked_bill(gzip.compress(text), "SHA1", digest) == text  # hashed uncompressed, sent gzipped
    assert checked_bill(text, "SHA1", digest.upper()) == text
    for content, kind, value in ((gzip.compress(text + b" "), "SHA1", digest), (text, "SHA1", "0" * 40),
                                 (text, "MD5", digest), (text, "SHA1", None), (b"\x1f\x8bnot gzip", "SHA1", digest)):
        with pytest.raises(BillUnusable):
            checked_bill(content, kind, value)
