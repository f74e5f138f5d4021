"""Schemathesis over the served OpenAPI document, against a live server, with every check on.

Given a user who has walked every flow so far (login, phone, ID card, face, bank card, a signed
privacy consent, an open and funded Class II account, a Class III application, a car whose ETC card is
bound to it and debited once by a partner, a WeChat Pay order for its device fee, a fresh draft, unused
uploads and face checks), schemathesis runs all its phases
(examples, coverage, fuzzing, stateful) over every operation, authenticated as that user, half of the
ids it sends being that user's real ones (``tests/fuzz/hooks.py``); every ``/open/v1`` request is signed
as that partner (unless the case is about malformed signing headers), so the fuzzer reaches the handlers. Then: zero server errors, zero
schema violations, zero failures of any check, and every operation exercised.

Bounded by ``FUZZ_SECONDS`` (default 75 s); ``FUZZ_SEED`` picks the seed (fixed by default, so CI is
repeatable; set another to explore).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.contract_helpers import signature_png
from tests.e2e.servers import ROOT, ServerProcess, server_env
from tests.identity_data import make_card_number, make_id_number

pytestmark = pytest.mark.slow

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "75"))
FUZZ_SEED = os.environ.get("FUZZ_SEED", "20261129")
PERSON = {"name": "李小龙", "phone": "13912345678", "valid_until": "20400101"}


def signed_call(http: httpx.Client, app_id: str, secret: str, method: str, path: str, body: dict) -> httpx.Response:
    """A partner's request, signed as docs/open-api.md says (the hooks sign the fuzzer's the same way)."""
    from tests.partner_helpers import partner_headers

    raw = json.dumps(body).encode()
    return http.request(method, path, content=raw, headers={**partner_headers(app_id, secret, method, path, raw),
                                                            "Content-Type": "application/json"})


class Walker:
    """A user walking the mini-program's flows over HTTP, as the fuzzer's starting state."""

    def __init__(self, base: str, env: dict) -> None:
        self.http = httpx.Client(base_url=base, timeout=30, trust_env=False)
        self.env = env  # the server's: for `python -m app partner create` on its database
        self.headers: dict[str, str] = {}

    def ok(self, resp: httpx.Response) -> dict:
        assert resp.status_code < 300, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content and resp.headers.get("content-type", "").startswith("application/json") else {}

    def control(self, path: str, body: dict) -> httpx.Response:
        resp = self.http.post(f"/sandbox/control/{path}", json=body)
        assert resp.status_code < 300, resp.text
        return resp

    def upload(self, data: bytes, kind: str) -> int:
        return self.ok(self.http.post("/api/v1/uploads", headers=self.headers, files={"file": ("f.png", data, "image/png")},
                                      data={"kind": kind}))["id"]

    def face(self, result: str | None) -> str:
        verify_id = self.ok(self.http.post("/api/v1/identity/face", headers=self.headers))["verify_id"]
        if result:
            self.control(f"face/{verify_id}", {"result": result})
            assert self.ok(self.http.post(f"/api/v1/identity/face/{verify_id}/result", headers=self.headers))["passed"]
        return verify_id

    def walk(self, workdir: Path) -> dict:
        code = self.control("login-code", {}).json()["code"]
        tokens = self.ok(self.http.post("/api/v1/auth/login", json={"code": code}))
        self.headers = {"Authorization": "Bearer " + tokens["access_token"]}
        self.refresh_token = tokens["refresh_token"]
        phone_code = self.control("phone-code", {"phone": PERSON["phone"]}).json()["code"]
        self.ok(self.http.post("/api/v1/me/phone", headers=self.headers, json={"code": phone_code}))
        person = {**PERSON, "id_number": make_id_number(), "card_number": make_card_number()}
        uploads = {}
        for side, kind in (("front", "id_front"), ("back", "id_back")):
            image = self.control("id-card-images", {"side": side, "name": person["name"], "id_number": person["id_number"],
                                                     "valid_until": person["valid_until"]}).content
            uploads[kind] = self.upload(image, kind)
        self.ok(self.http.post("/api/v1/identity/id-card", headers=self.headers, json={
            "front_upload_id": uploads["id_front"], "back_upload_id": uploads["id_back"],
            "name": person["name"], "id_number": person["id_number"]}))
        self.face("pass")
        self.control("bank-cards", {"card_number": person["card_number"], "name": person["name"],
                                    "id_number": person["id_number"], "phone": person["phone"], "card_class": "I"})
        self.ok(self.http.post("/api/v1/identity/bank-card", headers=self.headers, json={
            "card_number": person["card_number"], "reserved_phone": person["phone"]}))
        signed = self.ok(self.http.post("/api/v1/contracts", headers=self.headers, json={"template": "privacy_consent"}))
        self.ok(self.http.post(f"/api/v1/contracts/{signed['id']}/sign", headers=self.headers, json={
            "signature_upload_id": self.upload(signature_png(), "signature"), "consent": True,
            "verify_id": self.face("pass")}))
        pdf = workdir / "signed.pdf"
        pdf.write_bytes(self.http.get(f"/api/v1/contracts/{signed['id']}/signed.pdf", headers=self.headers).content)
        # an open Class II account with money on its bound card, and a Class III application still missing its agreement
        application = self.ok(self.http.post("/api/v1/account-applications", headers=self.headers, json={"account_class": "II"}))
        agreement = self.ok(self.http.post("/api/v1/contracts", headers=self.headers,
                                           json={"template": "account_agreement", "subject_id": application["id"]}))
        self.ok(self.http.post(f"/api/v1/contracts/{agreement['id']}/sign", headers=self.headers, json={
            "signature_upload_id": self.upload(signature_png(), "signature"), "consent": True,
            "verify_id": self.face("pass")}))
        account = self.ok(self.http.post(f"/api/v1/account-applications/{application['id']}/submit", headers=self.headers))
        self.control(f"bank-cards/{person['card_number']}/balance", {"balance_fen": 10**11})
        self.ok(self.http.post(f"/api/v1/accounts/{account['id']}/top-ups", json={"amount_fen": 100_000},
                               headers={**self.headers, "Idempotency-Key": "walk-top-up-1"}))
        class_iii = self.ok(self.http.post("/api/v1/account-applications", headers=self.headers, json={"account_class": "III"}))
        # a car whose ETC card is bound to that account, and a partner that has debited it once
        vehicle = self.ok(self.http.post("/api/v1/vehicles", headers=self.headers,
                                         json={"plate_number": "粤B12345D", "plate_color": "yellow_green"}))
        etc_card = "4401" + "0" * 12 + "1234"
        binding = self.ok(self.http.post("/api/v1/etc-bindings", headers=self.headers, json={
            "vehicle_id": vehicle["id"], "card_number": etc_card, "account_id": account["id"]}))
        self.ok(self.http.post(f"/api/v1/contracts/{binding['authorisation_contract_id']}/sign", headers=self.headers,
                               json={"signature_upload_id": self.upload(signature_png(), "signature"), "consent": True,
                                     "verify_id": self.face("pass")}))
        self.ok(self.http.post(f"/api/v1/etc-bindings/{binding['id']}/activate", headers=self.headers))
        spare = self.ok(self.http.post("/api/v1/vehicles", headers=self.headers,
                                       json={"plate_number": "沪AD12345", "plate_color": "gradient_green"}))
        partner = json.loads(subprocess.run(
            [sys.executable, "-m", "app", "partner", "create", "--name", "fuzz", "--scopes",
             "etc:debit,parking:debit,fuel:debit,carwash:debit,etc:read"], cwd=ROOT, env=self.env, check=True,
            capture_output=True, text=True).stdout)
        debit = {"out_trade_no": "FUZZ-000001", "card_number": etc_card, "category": "toll", "amount_fen": 1_000,
                 "occurred_at": "2026-01-01T08:00:00+08:00", "merchant": "收费站"}
        self.ok(signed_call(self.http, partner["app_id"], partner["secret"], "POST", "/open/v1/debits", debit))
        order = self.ok(self.http.post("/api/v1/payments/orders", json={"purpose": "obu_fee", "reference_id": binding["id"]},
                                       headers={**self.headers, "Idempotency-Key": "walk-order-1"}))
        draft = self.ok(self.http.post("/api/v1/contracts", headers=self.headers, json={"template": "privacy_consent"}))
        fresh, pending = self.face("pass"), self.face(None)
        signature = self.upload(signature_png(), "signature")
        return {
            "path": {"contract_id": [signed["id"], draft["id"]], "verify_id": [fresh, pending],
                     "application_id": [application["id"], class_iii["id"]], "account_id": [account["id"]],
                     "vehicle_id": [vehicle["id"], spare["id"]], "binding_id": [binding["id"]],
                     "out_trade_no": [debit["out_trade_no"]], "order_id": [order["id"]]},
            "body": {
                "front_upload_id": [uploads["id_front"]], "back_upload_id": [uploads["id_back"]],
                "signature_upload_id": [signature], "verify_id": [fresh, pending],
                "name": [person["name"]], "id_number": [person["id_number"]],
                "card_number": [person["card_number"]], "reserved_phone": [person["phone"]],
                "template": ["privacy_consent"], "refresh_token": [self.refresh_token],
                "subject_id": [application["id"], class_iii["id"]], "amount_fen": [1, 100, 100_000],
                "vehicle_id": [vehicle["id"], spare["id"]], "account_id": [account["id"]],
                "reference_id": [binding["id"]],
            },
            # fields whose real values differ by operation (a bank card vs an ETC card)
            "body_by_path": {
                "/open/v1/debits": {"card_number": [etc_card], "plate_number": ["粤B12345D"],
                                    "plate_color": ["yellow_green"], "out_trade_no": [debit["out_trade_no"]]},
                "/api/v1/etc-bindings": {"card_number": [etc_card, "4401" + "0" * 12 + "5678"]},
            },
            "partner": {"app_id": partner["app_id"], "secret": partner["secret"]},
            "signed_pdf": str(pdf),
            "control": f"{self.http.base_url}/sandbox/control",
        }


def test_fuzz_every_operation_with_every_check(tmp_path):
    # A high daily attempt limit, so the fuzzer reaches the checks behind it (the limit has its own tests).
    env = server_env(tmp_path, SANDBOX_ROUTES="1", DAILY_ATTEMPT_LIMIT="100000")
    server = ServerProcess(free_port(), env, tmp_path / "server.log")
    try:
        server.wait_ready()
        walker = Walker(server.url, env)
        fixtures = walker.walk(tmp_path)
        (tmp_path / "fixtures.json").write_text(json.dumps(fixtures))
        spec = httpx.get(f"{server.url}/docs/openapi.json", trust_env=False).json()
        operations = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
        report = tmp_path / "report.json"
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "FUZZ_FIXTURES": str(tmp_path / "fixtures.json"),
               "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(ROOT / "tests" / "fuzz" / "schemathesis.toml"),
             "--no-color", "run", f"{server.url}/docs/openapi.json", "--checks", "all", "--max-time", str(FUZZ_SECONDS), "--seed", FUZZ_SEED, "--workers", "1",
             "--header", walker.headers["Authorization"].join(["Authorization: ", ""]),
             "--report", "json", "--report-json-path", str(report)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=FUZZ_SECONDS + 600,
        )
    finally:
        server.stop()
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.out").write_text(output)  # the whole report; failing cases replay from here
    server_log = server.log.read_text(errors="replace")
    detail = output[-12000:] + "\n[server errors]\n" + "\n".join(
        l[:2000] for l in server_log.splitlines() if '"level": "ERROR"' in l)[-6000:]
    assert result.returncode == 0, detail
    assert '"level": "ERROR"' not in server_log, detail
    summary = json.loads(report.read_text())
    ops = summary["operations"]
    # every documented operation was tested; none skipped as unfuzzable, none errored
    assert ops["selected"] == ops["tested"] == len(operations), (ops, detail)
    assert ops["skipped"] == 0 and ops["errored"] == 0, (ops, detail)
    assert summary["failures"] == [] and summary["errors"] == [], detail
    assert summary["test_cases"]["generated"] > 1000, summary["test_cases"]
