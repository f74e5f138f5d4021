"""A real RFC 3161 timestamp server on loopback, for PAdES B-T tests.

pyHanko's ``DummyTimeStamper`` mints the tokens; the HTTP side is a plain ``http.server`` so our code
talks to it exactly as to a real TSA (``HTTPTimeStamper``, POST ``application/timestamp-query``).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps import DummyTimeStamper

from services.esign.certs import issue_dev_certificate, to_asn1


def make_tsa(ca_cert_path: Path, ca_key_path: Path) -> DummyTimeStamper:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    key = rsa.generate_private_key(65537, 2048)  # DummyTimeStamper signs with RSA only
    cert = issue_dev_certificate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sandbox TSA (test)")]),
        public_key=key.public_key(),
        issuer=ca_cert,
        issuer_key=ca_key,
        key_usage="timestamping",
        extended_key_usage=(ExtendedKeyUsageOID.TIME_STAMPING,),
    )
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return DummyTimeStamper(tsa_cert=to_asn1(cert), tsa_key=asn1_keys.PrivateKeyInfo.load(der),
                            certs_to_embed=[to_asn1(ca_cert)])


class TsaServer:
    def __init__(self, stamper: DummyTimeStamper) -> None:
        self.requests = 0
        outer = self
        # DummyTimeStamper reuses its certificate's asn1crypto objects, which are not thread-safe
        # (the same race ``BankSigningIdentity.make_signer`` avoids): one token at a time.
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    outer.requests += 1
                    resp = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(resp)))
                self.end_headers()
                self.wfile.write(resp)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
