"""The signed contract checked by an independent implementation: poppler's ``pdfsig`` (NSS).

``-nocert`` skips certificate-path validation (the dev root is not in any NSS database), so what is
checked is the signature itself over the byte ranges. pdfsig exits 0 whatever the verdict, so the tests
read its report, which for each signature looks like::

    Signature #1:
      - Signature Field Name: BankSignature
      - Signer Certificate Common Name: ...
      - Signature Type: ETSI.CAdES.detached
      - Signed Ranges: [0 - 127093], [132129 - 133850]
      - Total document signed                      (or "Not total document signed")
      - Signature Validation: Signature is Valid.  (or "Digest Mismatch.", "Signature is Invalid.")
"""

import os
import shutil
import subprocess

import pytest

from . import tamper

PDFSIG = shutil.which("pdfsig")
needs_pdfsig = pytest.mark.skipif(
    PDFSIG is None, reason="pdfsig not installed (apt-get install poppler-utils)"
)


def test_pdfsig_is_installed_in_ci():
    """CI must not skip the pdfsig checks silently."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false") and PDFSIG is None:
        pytest.fail("CI is set but pdfsig is missing: apt-get install -y poppler-utils")


def pdfsig(tmp_path, data: bytes, name="c.pdf") -> list[str]:
    path = tmp_path / name
    path.write_bytes(data)
    run = subprocess.run([PDFSIG, "-nocert", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


@needs_pdfsig
def test_signed_contract_is_valid_for_pdfsig(tmp_path, signed_pdf):
    lines = pdfsig(tmp_path, signed_pdf)
    assert "Signature #1:" in lines and "Signature #2:" not in lines
    assert "  - Signature Field Name: BankSignature" in lines
    assert "  - Signer Certificate Common Name: Sandbox Bank E-Contract Signing (dev)" in lines
    assert "  - Signing Hash Algorithm: SHA-256" in lines
    assert "  - Signature Type: ETSI.CAdES.detached" in lines
    assert "  - Total document signed" in lines
    assert "  - Signature Validation: Signature is Valid." in lines
    a, b, c, d = tamper.byte_range(signed_pdf)
    assert f"  - Signed Ranges: [{a} - {b}], [{c} - {c + d}]" in lines


@needs_pdfsig
def test_one_flipped_byte_is_a_digest_mismatch_for_pdfsig(tmp_path, signed_pdf):
    lines = pdfsig(tmp_path, tamper.flip_in_page_content(signed_pdf))
    assert "  - Signature Validation: Digest Mismatch." in lines
    assert "  - Signature Validation: Signature is Valid." not in lines


@needs_pdfsig
def test_flipped_signature_value_is_invalid_for_pdfsig(tmp_path, signed_pdf):
    lines = pdfsig(tmp_path, tamper.flip_in_signature_value(signed_pdf))
    assert "  - Signature Validation: Signature is Invalid." in lines


@needs_pdfsig
def test_update_after_signing_is_not_total_document_signed(tmp_path, signed_pdf):
    lines = pdfsig(tmp_path, tamper.append_update(signed_pdf))
    # The signed revision is still intact, but the signature no longer covers the whole file.
    assert "  - Not total document signed" in lines
    assert "  - Total document signed" not in lines


@needs_pdfsig
def test_b_t_contract_is_valid_for_pdfsig(tmp_path, signed_bt_pdf):
    lines = pdfsig(tmp_path, signed_bt_pdf)
    assert "  - Signature Type: ETSI.CAdES.detached" in lines
    assert "  - Total document signed" in lines
    assert "  - Signature Validation: Signature is Valid." in lines
