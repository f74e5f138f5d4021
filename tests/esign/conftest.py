"""Shared fixtures for the e-signing tests: one dev identity and one signed contract per session."""

from __future__ import annotations

import pytest

from services.esign.certs import BankSigningIdentity, ensure_dev_identity
from services.esign.render import render_contract
from services.esign.signing import sign_contract

from .helpers import CONTEXT, SIGNED_AT, SIGNER_LINES, signature_png
from .tsa import TsaServer, make_tsa


@pytest.fixture(scope="session")
def dev_paths(tmp_path_factory):
    return ensure_dev_identity(tmp_path_factory.mktemp("var"))


@pytest.fixture(scope="session")
def identity(dev_paths) -> BankSigningIdentity:
    return BankSigningIdentity.from_files(dev_paths.signing_key, dev_paths.signing_cert, [dev_paths.ca_cert])


@pytest.fixture(scope="session")
def unsigned_pdf() -> bytes:
    return render_contract("account_agreement", CONTEXT, contract_ref="C-20261120-0001").pdf


@pytest.fixture(scope="session")
def signed_pdf(identity, unsigned_pdf) -> bytes:
    return sign_contract(
        unsigned_pdf,
        identity=identity,
        signature_png=signature_png(),
        signer_lines=SIGNER_LINES,
        signed_at=SIGNED_AT,
    )


@pytest.fixture(scope="session")
def tsa(dev_paths):
    """A loopback RFC 3161 TSA whose certificate the dev root issued."""
    with TsaServer(make_tsa(dev_paths.ca_cert, dev_paths.ca_key)) as server:
        yield server


@pytest.fixture(scope="session")
def signed_bt_pdf(identity, unsigned_pdf, tsa) -> bytes:
    """PAdES B-T: the same contract with a signature timestamp."""
    return sign_contract(
        unsigned_pdf,
        identity=identity,
        signature_png=signature_png(),
        signer_lines=SIGNER_LINES,
        signed_at=SIGNED_AT,
        tsa_url=tsa.url,
    )


@pytest.fixture(scope="session")
def signed_pdf_file(signed_pdf, tmp_path_factory):
    path = tmp_path_factory.mktemp("signed") / "contract.pdf"
    path.write_bytes(signed_pdf)
    return path
