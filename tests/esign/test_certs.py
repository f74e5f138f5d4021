import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import ConfigError
from services.esign.certs import (
    DEV_ORG,
    DEV_ROOT_CN,
    EKU_DOCUMENT_SIGNING,
    BankSigningIdentity,
    ensure_dev_identity,
    load_bank_identity,
)

REPO = Path(__file__).resolve().parents[2]


def load_cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def test_dev_identity_is_a_root_and_a_signing_certificate(dev_paths):
    root, cert = load_cert(dev_paths.ca_cert), load_cert(dev_paths.signing_cert)
    assert root.subject == root.issuer
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEV_ROOT_CN
    assert "NOT FOR PRODUCTION" in DEV_ROOT_CN
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == root.subject
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == DEV_ORG == "沙箱银行 (dev)"
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not ku.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert EKU_DOCUMENT_SIGNING in eku and ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    root.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )


def test_dev_keys_are_private(dev_paths):
    for key in (dev_paths.ca_key, dev_paths.signing_key):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dev_paths.directory).st_mode) == 0o700


def test_dev_identity_is_generated_once_and_reused(tmp_path):
    first = ensure_dev_identity(tmp_path)
    before = {p: p.read_bytes() for p in (first.ca_cert, first.signing_cert, first.signing_key)}
    again = ensure_dev_identity(tmp_path)
    assert again == first
    assert {p: p.read_bytes() for p in before} == before
    assert first.directory == tmp_path / "esign" / "dev-identity"
    # No temporary directories are left behind.
    assert [p.name for p in (tmp_path / "esign").iterdir()] == ["dev-identity"]


def test_concurrent_processes_agree_on_one_identity(tmp_path):
    code = (
        "import sys\n"
        "from services.esign.certs import BankSigningIdentity\n"
        "print(BankSigningIdentity.dev(sys.argv[1]).fingerprint_sha256)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    fingerprints = {o.strip() for o, _ in outs}
    assert len(fingerprints) == 1
    assert BankSigningIdentity.dev(tmp_path).fingerprint_sha256 in fingerprints
    assert [p.name for p in (tmp_path / "esign").iterdir()] == ["dev-identity"]


def test_an_incomplete_identity_directory_is_not_silently_replaced(tmp_path):
    paths = ensure_dev_identity(tmp_path)
    paths.signing_key.unlink()
    with pytest.raises(ConfigError):
        ensure_dev_identity(tmp_path)


def test_identity_from_files(identity, dev_paths):
    assert identity.is_dev
    assert identity.organization == "沙箱银行 (dev)"
    assert [c.subject for c in identity.trust_roots] == [load_cert(dev_paths.ca_cert).subject]
    assert identity.make_signer().signing_cert.subject.native["organization_name"] == "沙箱银行 (dev)"


def test_key_that_does_not_match_the_certificate_is_refused(tmp_path, dev_paths):
    with pytest.raises(ConfigError):
        BankSigningIdentity.from_files(dev_paths.ca_key, dev_paths.signing_cert)
    with pytest.raises(ConfigError):
        BankSigningIdentity.from_files(tmp_path / "missing.pem", dev_paths.signing_cert)


def test_load_bank_identity_rules(tmp_path, dev_paths):
    assert load_bank_identity(sandbox=True, var_dir=tmp_path).is_dev
    configured = load_bank_identity(
        sandbox=True, key_path=str(dev_paths.signing_key), cert_path=str(dev_paths.signing_cert),
        chain_path=str(dev_paths.ca_cert),
    )
    var_dir = dev_paths.directory.parent.parent
    assert configured.fingerprint_sha256 == BankSigningIdentity.dev(var_dir).fingerprint_sha256
    with pytest.raises(ConfigError):  # production never generates keys
        load_bank_identity(sandbox=False, var_dir=tmp_path / "prod")
    assert not (tmp_path / "prod").exists()
    with pytest.raises(ConfigError):  # nor accepts the dev certificate
        load_bank_identity(
            sandbox=False, key_path=str(dev_paths.signing_key), cert_path=str(dev_paths.signing_cert)
        )
    with pytest.raises(ConfigError):
        load_bank_identity(sandbox=True, key_path=str(dev_paths.signing_key))


def test_concurrent_threads_agree_on_one_identity(tmp_path, caplog):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(8)

    def create():
        barrier.wait()
        return ensure_dev_identity(tmp_path).signing_cert.read_bytes()

    with ThreadPoolExecutor(8) as pool:
        certs = set(pool.map(lambda _: create(), range(8)))
    assert len(certs) == 1
    assert sum("generated a sandbox e-signing identity" in r.getMessage() for r in caplog.records) == 1
    assert [p.name for p in (tmp_path / "esign").iterdir()] == ["dev-identity"]
