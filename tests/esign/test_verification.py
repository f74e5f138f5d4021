import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.esign.certs import BankSigningIdentity
from services.esign.templates import TEMPLATES
from services.esign.verification import verify_pdf, verify_pdf_async

from . import tamper


def test_signed_contract_says_which_contract_it_is(signed_pdf, identity):
    r = verify_pdf(signed_pdf, trust_roots=identity.trust_roots)
    assert r.ok
    assert (r.contract_ref, r.template, r.version, r.variant) == (
        "C-20261120-0001", "account_agreement", TEMPLATES["account_agreement"].version, "II",
    )
    assert r.signatures == 1
    assert r.signed_at is not None and r.signed_at.tzinfo is not None


@pytest.mark.parametrize(
    "data",
    [
        b"", b"hello", os.urandom(4096), b"%PDF-1.7\n" + os.urandom(2048), b"%PDF-1.4\n%%EOF",
        "not bytes", None,
    ],
    ids=["empty", "text", "random", "pdf-header-then-noise", "header-only", "str", "none"],
)
def test_garbage_is_reported_not_raised(data, identity):
    r = verify_pdf(data, trust_roots=identity.trust_roots)
    assert not r.signed and not r.valid and not r.ok
    assert r.problems


def test_unsigned_pdf(unsigned_pdf, identity):
    r = verify_pdf(unsigned_pdf, trust_roots=identity.trust_roots)
    assert not r.signed and not r.valid and not r.ok
    assert r.problems == ["文件未签名"]
    assert r.contract_ref == "C-20261120-0001"  # still tells which contract it is


def test_one_byte_in_the_page_content_breaks_the_signature(signed_pdf, identity):
    r = verify_pdf(tamper.flip_in_page_content(signed_pdf), trust_roots=identity.trust_roots)
    assert r.signed and not r.intact and not r.valid and not r.ok
    assert any("篡改" in p for p in r.problems)


def test_one_byte_in_the_metadata_breaks_the_signature(signed_pdf, identity):
    index = signed_pdf.index(b"/ContractRef (C-20261120-0001)") + len(b"/ContractRef (C-2026")
    r = verify_pdf(tamper.flip(signed_pdf, index), trust_roots=identity.trust_roots)
    assert not r.intact and not r.ok


def test_one_byte_of_the_signature_value(signed_pdf, identity):
    r = verify_pdf(tamper.flip_in_signature_value(signed_pdf), trust_roots=identity.trust_roots)
    assert not r.valid and not r.ok and r.problems


def test_truncated_file(signed_pdf, identity):
    for cut in (len(signed_pdf) // 2, len(signed_pdf) - 200, 100):
        r = verify_pdf(signed_pdf[:cut], trust_roots=identity.trust_roots)
        assert not r.ok and r.problems


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_any_flipped_byte_in_the_signed_range_is_detected(signed_pdf, identity, position, mask):
    a, b, c, d = tamper.byte_range(signed_pdf)
    covered = b + d
    offset = int(position * covered)
    index = offset if offset < b else c + (offset - b)
    r = verify_pdf(tamper.flip(signed_pdf, index, mask), trust_roots=identity.trust_roots)
    assert not r.ok


def test_update_appended_after_signing(signed_pdf, identity):
    r = verify_pdf(tamper.append_update(signed_pdf), trust_roots=identity.trust_roots)
    assert r.signed and r.intact and r.modified_after_signing
    assert not r.valid and not r.ok  # a content change is beyond what any signature permits
    assert any("追加修改" in p for p in r.problems)


def test_relabelling_after_signing_does_not_change_the_reported_contract(signed_pdf, identity):
    r = verify_pdf(tamper.relabel(signed_pdf, "C-FORGED"), trust_roots=identity.trust_roots)
    assert r.modified_after_signing and not r.ok
    assert r.contract_ref == "C-20261120-0001"


def test_trust_comes_only_from_the_given_roots(signed_pdf, tmp_path):
    r = verify_pdf(signed_pdf, trust_roots=[])
    assert r.intact and r.valid and not r.trusted and not r.ok
    other = BankSigningIdentity.dev(tmp_path)  # another sandbox's root
    r = verify_pdf(signed_pdf, trust_roots=other.trust_roots)
    assert r.valid and not r.trusted


def test_roots_may_be_given_as_pem_bytes(signed_pdf, dev_paths):
    assert verify_pdf(signed_pdf, trust_roots=[dev_paths.ca_cert.read_bytes()]).ok


async def test_async_wrapper_and_the_sync_guard(signed_pdf, identity):
    assert (await verify_pdf_async(signed_pdf, trust_roots=identity.trust_roots)).ok
    with pytest.raises(RuntimeError, match="verify_pdf_async"):
        verify_pdf(signed_pdf, trust_roots=identity.trust_roots)
