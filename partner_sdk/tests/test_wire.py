"""Over a real socket: what is signed is what goes on the request line (MockTransport never sees the wire).

A stdlib HTTP server reads the raw request target and body, checks the signature with the test's own
hashlib/hmac code, and answers signed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from fakebank import APP_ID, SECRET, debit_json, expected_request_signature, signed_response_headers

from openbank_partner import OpenApiError, PartnerClient, china_today

CSV = (b"type,out_trade_no,out_refund_no,category,status,amount_fen,occurred_at,booked_at,card_number_masked,"
       b"plate_number,plate_color,merchant\n")


class Bank(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def handle_one(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.command, self.path, body))
        h = self.headers
        good = h["X-App-Id"] == APP_ID and h["X-Signature"] == expected_request_signature(
            SECRET, self.command, self.path, h["X-Timestamp"], h["X-Nonce"], body)
        if not good:
            self.answer(401, json.dumps({"error": {"code": "SIGNATURE_INVALID", "message": "no"}}).encode(), None)
        elif self.path.startswith("/open/v1/statements"):
            self.answer(200, CSV, h["X-Nonce"], "text/csv; charset=utf-8")
        else:
            self.answer(201, json.dumps(debit_json(json.loads(body)["out_trade_no"])).encode(), h["X-Nonce"])

    do_GET = do_POST = handle_one

    def answer(self, status: int, body: bytes, nonce: str | None, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (signed_response_headers(SECRET, status, nonce, body) if nonce else {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bank_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Bank)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Bank.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_signed_request_line_and_body(bank_url: str) -> None:
    with PartnerClient(bank_url, APP_ID, SECRET) as client:
        debit = client.debit("WIRE-000001", plate_number="京A12345", plate_color="blue", category="carwash",
                             amount_fen=2000, occurred_at="2026-11-30T08:00:00+08:00", merchant="洗车 & more")
        rows = client.statement(china_today())
    assert debit.out_trade_no == "WIRE-000001" and rows == []
    assert [(m, p) for m, p, _ in Bank.seen] == [
        ("POST", "/open/v1/debits"), ("GET", f"/open/v1/statements?date={china_today().isoformat()}")]
    assert "洗车 & more".encode() in Bank.seen[0][2]


def test_wrong_secret_gets_the_unsigned_401(bank_url: str) -> None:
    with PartnerClient(bank_url, APP_ID, "sk_wrong") as client, pytest.raises(OpenApiError) as info:
        client.statement("2026-11-30")
    assert (info.value.status, info.value.code, info.value.verified) == (401, "SIGNATURE_INVALID", False)
