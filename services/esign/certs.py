"""The bank's signing identity: a private key and its certificate chain.

Production loads a key and chain from configured PEM files (in time, an HSM/CA signer plugs in behind the
same ``BankSigningIdentity``). Sandbox mode generates a dev root CA and a signing certificate issued by it,
once, under ``<var_dir>/esign/dev-identity/``, and reuses them across calls and processes.

Creation is atomic: everything is written into a fresh temporary directory next to the target and the
directory is renamed into place. ``rename(2)`` refuses to replace a non-empty directory, so when two
workers start at once exactly one set wins and the loser discards its own and loads the winner's.

The dev keys are EC P-256: RSA keys cost ~40 ms to load and validate in ``cryptography``, and pyHanko
would reload the key for every signature; for RSA keys from files we keep the loaded key instead (see
``_PreloadedKeySigner``).
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from pyhanko.sign.signers import SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from core.errors import ConfigError

log = logging.getLogger(__name__)

DEV_ROOT_CN = "Sandbox Bank Dev Root CA — NOT FOR PRODUCTION"
DEV_SIGNER_CN = "Sandbox Bank E-Contract Signing (dev)"
DEV_ORG = "沙箱银行 (dev)"
DEV_DIR_NAME = "dev-identity"

# id-kp-documentSigning (RFC 9336). NSS (pdfsig) checks emailProtection for signers, so we set both.
EKU_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")


@dataclass(frozen=True)
class DevIdentityPaths:
    directory: Path
    ca_cert: Path
    ca_key: Path
    signing_cert: Path
    signing_key: Path

    @classmethod
    def under(cls, directory: Path) -> "DevIdentityPaths":
        return cls(
            directory=directory,
            ca_cert=directory / "root-ca.crt.pem",
            ca_key=directory / "root-ca.key.pem",
            signing_cert=directory / "signing.crt.pem",
            signing_key=directory / "signing.key.pem",
        )

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca_cert, self.ca_key, self.signing_cert, self.signing_key))


def _name(cn: str, org: str = DEV_ORG) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def issue_dev_certificate(
    *,
    subject: x509.Name,
    public_key,
    issuer: x509.Certificate | None,
    issuer_key,
    ca: bool = False,
    extended_key_usage: Sequence[ObjectIdentifier] = (),
    key_usage: str = "signing",
    days: int = 5 * 365,
) -> x509.Certificate:
    """Issue a certificate for dev/test use. ``issuer=None`` makes it self-signed.

    ``key_usage``: ``"ca"`` (keyCertSign, cRLSign), ``"signing"`` (digitalSignature, nonRepudiation) or
    ``"timestamping"`` (digitalSignature; pair it with a critical timeStamping EKU)."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    ku = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    if key_usage == "ca":
        ku.update(key_cert_sign=True, crl_sign=True)
    elif key_usage == "signing":
        ku.update(digital_signature=True, content_commitment=True)
    elif key_usage == "timestamping":
        ku.update(digital_signature=True)
    else:
        raise ValueError(key_usage)
    builder = builder.add_extension(x509.KeyUsage(**ku), critical=True)
    if extended_key_usage:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(extended_key_usage)),
            critical=ExtendedKeyUsageOID.TIME_STAMPING in extended_key_usage,
        )
    if issuer is not None:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def ensure_dev_identity(var_dir: str | os.PathLike = "./var") -> DevIdentityPaths:
    """The sandbox signing identity under ``<var_dir>/esign/dev-identity/``, created on first use."""
    base = Path(var_dir) / "esign"
    paths = DevIdentityPaths.under(base / DEV_DIR_NAME)
    if paths.complete():
        return paths
    if paths.directory.exists():
        raise ConfigError(
            f"{paths.directory} exists but is incomplete; delete it to regenerate the dev signing identity"
        )
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEV_DIR_NAME}-", dir=base))  # mode 0700
    try:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = issue_dev_certificate(
            subject=_name(DEV_ROOT_CN),
            public_key=ca_key.public_key(),
            issuer=None,
            issuer_key=ca_key,
            ca=True,
            key_usage="ca",
            days=10 * 365,
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_dev_certificate(
            subject=_name(DEV_SIGNER_CN),
            public_key=key.public_key(),
            issuer=ca_cert,
            issuer_key=ca_key,
            extended_key_usage=(EKU_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION),
        )
        staged = DevIdentityPaths.under(tmp)
        _write(staged.ca_key, _pem_key(ca_key), 0o600)
        _write(staged.signing_key, _pem_key(key), 0o600)
        _write(staged.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(staged.signing_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        try:
            os.rename(tmp, paths.directory)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            # Another process won the race; use its identity.
        else:
            log.warning("generated a sandbox e-signing identity in %s (NOT FOR PRODUCTION)", paths.directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not paths.complete():
        raise ConfigError(f"could not create the dev signing identity in {paths.directory}")
    return paths


class _PreloadedKeySigner(SimpleSigner):
    """``SimpleSigner`` that keeps the parsed private key: pyHanko re-parses it on every signature,
    which for RSA means ~40 ms of key validation each time."""

    def __init__(self, *, private_key, **kwargs):
        super().__init__(**kwargs)
        self._private_key = private_key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        key = self._private_key
        if mechanism == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
        if mechanism == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
        return super().sign_raw(data, digest_algorithm)


def _load_pem_certs(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return [x509.load_der_x509_certificate(data)]


def to_asn1(cert: x509.Certificate | asn1_x509.Certificate | bytes) -> asn1_x509.Certificate:
    """pyHanko speaks asn1crypto; we speak ``cryptography``. Accepts either, or PEM/DER bytes, and always
    returns a fresh object."""
    if isinstance(cert, asn1_x509.Certificate):
        return asn1_x509.Certificate.load(cert.dump())  # a private copy (see ``make_signer``)
    if isinstance(cert, bytes | bytearray):
        cert = _load_pem_certs(bytes(cert))[0]
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class BankSigningIdentity:
    """The bank's key and certificate chain, ready for pyHanko."""

    def __init__(self, private_key, certificate: x509.Certificate, chain: Iterable[x509.Certificate] = ()):
        if _spki(certificate.public_key()) != _spki(private_key.public_key()):
            raise ConfigError("the e-signing private key does not match its certificate")
        ku = _key_usage(certificate)
        if ku is not None and not (ku.digital_signature or ku.content_commitment):
            raise ConfigError("the e-signing certificate does not allow digital signatures")
        self.certificate = certificate
        self.chain = tuple(c for c in chain if c != certificate)
        self._private_key = private_key
        self._key_der = _key_der(private_key)

    def make_signer(self) -> SimpleSigner:
        """A pyHanko signer for one signing operation.

        Not shared: asn1crypto objects serialise themselves lazily and are not thread-safe, and pyHanko
        embeds parts of the signer's certificate objects into every CMS it builds, so two threads
        signing with one ``SimpleSigner`` corrupt each other's output. Only the parsed private key
        (``cryptography``, thread-safe) is shared."""
        return _PreloadedKeySigner(
            private_key=self._private_key,
            signing_cert=to_asn1(self.certificate),
            signing_key=asn1_keys.PrivateKeyInfo.load(self._key_der),
            cert_registry=SimpleCertificateStore.from_certs([to_asn1(c) for c in self.chain]),
        )

    @classmethod
    def from_files(
        cls,
        key_path: str | os.PathLike,
        cert_path: str | os.PathLike,
        chain_paths: Iterable[str | os.PathLike] = (),
        *,
        key_passphrase: bytes | None = None,
    ) -> "BankSigningIdentity":
        """Load a PEM (or DER) key, the signer's certificate (a PEM bundle may carry the chain after it)
        and optional chain files."""
        try:
            if os.stat(key_path).st_mode & 0o077:
                log.warning("e-signing key %s is readable by group/others; chmod 600 it", key_path)
            key_data = Path(key_path).read_bytes()
            try:
                key = serialization.load_pem_private_key(key_data, password=key_passphrase)
            except ValueError:
                key = serialization.load_der_private_key(key_data, password=key_passphrase)
            certs = _load_pem_certs(Path(cert_path).read_bytes())
            chain = list(certs[1:])
            for p in chain_paths:
                chain += _load_pem_certs(Path(p).read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot load the e-signing key/certificate: {exc}") from exc
        return cls(key, certs[0], chain)

    @classmethod
    def dev(cls, var_dir: str | os.PathLike = "./var") -> "BankSigningIdentity":
        paths = ensure_dev_identity(var_dir)
        return cls.from_files(paths.signing_key, paths.signing_cert, [paths.ca_cert])

    @property
    def trust_roots(self) -> list[x509.Certificate]:
        """Self-signed certificates of the chain: what a verifier of our own PDFs trusts."""
        return [c for c in self.chain if c.issuer == c.subject]

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def organization(self) -> str | None:
        attrs = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(attrs[0].value) if attrs else None

    @property
    def common_name(self) -> str | None:
        attrs = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else None

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "X")

    @property
    def fingerprint_sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def is_dev(self) -> bool:
        """Issued by (or being) the sandbox dev root: refuse it in production."""
        return any(
            DEV_ROOT_CN in str(a.value)
            for name in (self.certificate.issuer, self.certificate.subject)
            for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)
        )


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _spki(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_der(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_bank_identity(
    *,
    sandbox: bool,
    var_dir: str | os.PathLike = "./var",
    key_path: str | None = None,
    cert_path: str | None = None,
    chain_path: str | None = None,
    key_passphrase: bytes | None = None,
) -> BankSigningIdentity:
    """Configured files when given; otherwise the generated dev identity, in sandbox mode only."""
    if key_path and cert_path:
        identity = BankSigningIdentity.from_files(
            key_path, cert_path, [chain_path] if chain_path else [], key_passphrase=key_passphrase
        )
    elif key_path or cert_path:
        raise ConfigError("set both the e-signing key path and the certificate path")
    elif sandbox:
        identity = BankSigningIdentity.dev(var_dir)
    else:
        raise ConfigError("production needs the bank's e-signing key and certificate paths")
    if not sandbox and identity.is_dev:
        raise ConfigError("the sandbox dev e-signing certificate cannot be used in production")
    return identity
