"""A user walking every flow of the mini-program over HTTP (sync ``httpx``), ending with real ids of each
kind of resource: the fuzzer's starting state (``tests/e2e/test_fuzz_api.py``) and the owners of the
authorization matrix (``tests/api/test_authorization_matrix.py``).

Each walk registers its own plates, ETC cards and debit number, so any number of users can walk in one
database (a card or a plate is bound once across all users)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from tests.contract_helpers import signature_png
from tests.e2e.servers import ROOT
from tests.identity_data import make_card_number, make_id_number
from tests.partner_helpers import etc_card, new_plate, partner_headers

PERSON = {"name": "李小龙", "phone": "13912345678", "valid_until": "20400101"}
PARTNER_SCOPES = "etc:debit,parking:debit,fuel:debit,carwash:debit,etc:read"


def signed_call(http: httpx.Client, app_id: str, secret: str, method: str, path: str, body: dict) -> httpx.Response:
    """A partner's request, signed as docs/open-api.md says (the hooks sign the fuzzer's the same way)."""
    raw = json.dumps(body).encode()
    return http.request(method, path, content=raw, headers={**partner_headers(app_id, secret, method, path, raw),
                                                            "Content-Type": "application/json"})


def new_energy_plates() -> tuple[str, str]:
    """A large new-energy plate (yellow-green, ``粤B12345D``) and a small one (gradient green, ``沪AD12345``),
    numbered by ``new_plate()`` so no other walk or test of this run holds them."""
    digits = new_plate()[-5:]
    return f"粤B{digits}D", f"沪AD{digits}"


class Walker:
    """A user walking the mini-program's flows over HTTP, as the fuzzer's starting state.

    ``env`` is the server's, for ``python -m app partner create`` on its database; or pass ``partner``
    (``{"app_id", "secret"}``) made some other way. ``person`` overrides ``PERSON``'s name and phone.
    ``made`` keeps every answer the walk got, by name, for callers that need more than ``walk()``
    returns."""

    def __init__(self, base: str, env: dict | None = None, *, partner: dict | None = None,
                 person: dict | None = None) -> None:
        self.http = httpx.Client(base_url=base, timeout=30, trust_env=False)
        self.env = env
        self.partner = partner
        self.person = {**PERSON, **(person or {})}
        self.headers: dict[str, str] = {}
        self.plate, self.spare_plate = new_energy_plates()
        self.etc_card, self.spare_etc_card = etc_card(), etc_card()
        self.out_trade_no = "FUZZ-" + secrets.token_hex(6).upper()
        self.made: dict[str, dict] = {}

    def ok(self, resp: httpx.Response) -> dict:
        assert resp.status_code < 300, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
        is_json = resp.headers.get("content-type", "").startswith("application/json")
        return resp.json() if resp.content and is_json else {}

    def post(self, path: str, *, key: str | None = None, **kw) -> dict:
        """POST as the user (with an ``Idempotency-Key`` when given); the answer, which must be a success."""
        headers = {**self.headers, "Idempotency-Key": key} if key else self.headers
        return self.ok(self.http.post(path, headers=headers, **kw))

    def control(self, path: str, body: dict) -> httpx.Response:
        resp = self.http.post(f"/sandbox/control/{path}", json=body)
        assert resp.status_code < 300, resp.text
        return resp

    def upload(self, data: bytes, kind: str) -> int:
        return self.post("/api/v1/uploads", files={"file": ("f.png", data, "image/png")}, data={"kind": kind})["id"]

    def face(self, result: str | None) -> str:
        verify_id = self.post("/api/v1/identity/face")["verify_id"]
        if result:
            self.control(f"face/{verify_id}", {"result": result})
            assert self.post(f"/api/v1/identity/face/{verify_id}/result")["passed"]
        return verify_id

    def sign(self, contract_id: int) -> dict:
        """Sign with a new signature image and a new passed face check."""
        return self.post(f"/api/v1/contracts/{contract_id}/sign", json={
            "signature_upload_id": self.upload(signature_png(), "signature"), "consent": True,
            "verify_id": self.face("pass")})

    def new_partner(self) -> dict:
        if self.partner is None:
            self.partner = json.loads(subprocess.run(
                [sys.executable, "-m", "app", "partner", "create", "--name", "fuzz", "--scopes", PARTNER_SCOPES],
                cwd=ROOT, env=self.env, check=True, capture_output=True, text=True).stdout)
        return self.partner

    def log_in(self) -> dict:
        """Log in with a code the emulated WeChat issued; the tokens (the walk is this user from here)."""
        code = self.control("login-code", {}).json()["code"]
        tokens = self.ok(self.http.post("/api/v1/auth/login", json={"code": code}))
        self.headers = {"Authorization": "Bearer " + tokens["access_token"]}
        self.refresh_token = tokens["refresh_token"]
        return tokens

    def prove_identity(self) -> dict:
        """The steps before an account: the phone, both ID card sides, a face check and a same-name bank
        card (Class I). The person as the walk made them, with the ids of the ID card uploads."""
        phone_code = self.control("phone-code", {"phone": self.person["phone"]}).json()["code"]
        self.post("/api/v1/me/phone", json={"code": phone_code})
        person = {**self.person, "id_number": make_id_number(), "card_number": make_card_number()}
        uploads = {}
        for side, kind in (("front", "id_front"), ("back", "id_back")):
            image = self.control("id-card-images", {"side": side, "name": person["name"],
                                                     "id_number": person["id_number"],
                                                     "valid_until": person["valid_until"]}).content
            uploads[kind] = self.upload(image, kind)
        self.post("/api/v1/identity/id-card", json={
            "front_upload_id": uploads["id_front"], "back_upload_id": uploads["id_back"],
            "name": person["name"], "id_number": person["id_number"]})
        self.face("pass")
        self.control("bank-cards", {"card_number": person["card_number"], "name": person["name"],
                                    "id_number": person["id_number"], "phone": person["phone"], "card_class": "I"})
        self.post("/api/v1/identity/bank-card", json={
            "card_number": person["card_number"], "reserved_phone": person["phone"]})
        return {**person, "uploads": uploads}

    def open_class_ii(self) -> tuple[dict, dict, dict]:
        """A Class II account opened with a signed agreement: (application, agreement, account)."""
        application = self.post("/api/v1/account-applications", json={"account_class": "II"})
        agreement = self.post("/api/v1/contracts",
                              json={"template": "account_agreement", "subject_id": application["id"]})
        self.sign(agreement["id"])
        return application, agreement, self.post(f"/api/v1/account-applications/{application['id']}/submit")

    def top_up(self, account_id: int, amount_fen: int) -> dict:
        return self.post(f"/api/v1/accounts/{account_id}/top-ups", json={"amount_fen": amount_fen},
                         key=f"walk-top-up-{account_id}")

    def bind_car(self, account_id: int) -> dict:
        """A new car (blue plate) with a new ETC card bound to the account and active: the fuzzer's car."""
        plate, card_number = new_plate(), etc_card()
        vehicle = self.post("/api/v1/vehicles", json={"plate_number": plate, "plate_color": "blue"})
        binding = self.post("/api/v1/etc-bindings", json={
            "vehicle_id": vehicle["id"], "card_number": card_number, "account_id": account_id})
        self.sign(binding["authorisation_contract_id"])
        binding = self.post(f"/api/v1/etc-bindings/{binding['id']}/activate")
        return {"binding_id": binding["id"], "account_id": account_id, "card_number": card_number,
                "plate_number": plate, "plate_color": "blue"}

    def walk(self, workdir: Path) -> dict:
        self.log_in()
        # a login of its own for the fuzzer's logout and refresh: ending it (a logout, a refresh token
        # presented twice) ends its access tokens at once, and must not end the walked user's
        spare_login = self.ok(self.http.post("/api/v1/auth/login",
                                       json={"code": self.control("login-code", {}).json()["code"]}))
        person = self.prove_identity()
        uploads = person.pop("uploads")
        signed = self.post("/api/v1/contracts", json={"template": "privacy_consent"})
        self.sign(signed["id"])
        pdf = workdir / "signed.pdf"
        pdf.write_bytes(self.http.get(f"/api/v1/contracts/{signed['id']}/signed.pdf", headers=self.headers).content)
        # an open Class II account with money on its bound card, and a Class III application still missing its agreement
        application, agreement, account = self.open_class_ii()
        self.control(f"bank-cards/{person['card_number']}/balance", {"balance_fen": 10**11})
        self.post(f"/api/v1/accounts/{account['id']}/top-ups", json={"amount_fen": 100_000}, key="walk-top-up-1")
        # a second Class I card of the person's, with money on it: what a new bound card of the account may be
        self.spare_bank_card = make_card_number()
        self.control("bank-cards", {"card_number": self.spare_bank_card, "name": person["name"],
                                    "id_number": person["id_number"], "phone": person["phone"], "card_class": "I"})
        self.control(f"bank-cards/{self.spare_bank_card}/balance", {"balance_fen": 10**11})
        class_iii = self.post("/api/v1/account-applications", json={"account_class": "III"})
        # a car whose ETC card is bound to that account, and a partner that has debited it once
        vehicle = self.post("/api/v1/vehicles", json={"plate_number": self.plate, "plate_color": "yellow_green"})
        binding = self.post("/api/v1/etc-bindings", json={
            "vehicle_id": vehicle["id"], "card_number": self.etc_card, "account_id": account["id"]})
        self.sign(binding["authorisation_contract_id"])
        binding = self.post(f"/api/v1/etc-bindings/{binding['id']}/activate")
        spare = self.post("/api/v1/vehicles", json={"plate_number": self.spare_plate, "plate_color": "gradient_green"})
        partner = self.new_partner()
        debit_body = {"out_trade_no": self.out_trade_no, "card_number": self.etc_card, "category": "toll",
                      "amount_fen": 1_000, "occurred_at": "2026-01-01T08:00:00+08:00", "merchant": "收费站"}
        debit = self.ok(signed_call(self.http, partner["app_id"], partner["secret"], "POST", "/open/v1/debits",
                                    debit_body))
        order = self.post("/api/v1/payments/orders", json={"purpose": "obu_fee", "reference_id": binding["id"]},
                          key="walk-order-1")
        draft = self.post("/api/v1/contracts", json={"template": "privacy_consent"})
        fresh, pending = self.face("pass"), self.face(None)
        signature = self.upload(signature_png(), "signature")
        self.made = {"person": person, "uploads": uploads, "signed": signed, "application": application,
                     "agreement": agreement, "account": account, "class_iii": class_iii, "vehicle": vehicle,
                     "binding": binding, "spare": spare, "debit": debit, "order": order, "draft": draft,
                     "faces": {"fresh": fresh, "pending": pending}, "signature": {"id": signature}}
        return {
            "path": {"contract_id": [signed["id"], draft["id"]], "verify_id": [fresh, pending],
                     "application_id": [application["id"], class_iii["id"]], "account_id": [account["id"]],
                     "month": [datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m")],
                     "vehicle_id": [vehicle["id"], spare["id"]], "binding_id": [binding["id"]],
                     "out_trade_no": [debit_body["out_trade_no"]], "order_id": [order["id"]]},
            "body": {
                "front_upload_id": [uploads["id_front"]], "back_upload_id": [uploads["id_back"]],
                "signature_upload_id": [signature], "verify_id": [fresh, pending],
                "name": [person["name"]], "id_number": [person["id_number"]],
                "card_number": [person["card_number"]], "reserved_phone": [person["phone"]],
                "template": ["privacy_consent"], "refresh_token": [spare_login["refresh_token"]],
                "subject_id": [application["id"], class_iii["id"]], "amount_fen": [1, 100, 100_000],
                "vehicle_id": [vehicle["id"], spare["id"]], "account_id": [account["id"]],
                "reference_id": [binding["id"]],
            },
            # fields whose real values differ by operation (a bank card vs an ETC card)
            "body_by_path": {
                "/open/v1/debits": {"card_number": [self.etc_card], "plate_number": [self.plate],
                                    "plate_color": ["yellow_green"], "out_trade_no": [debit_body["out_trade_no"]]},
                "/api/v1/etc-bindings": {"card_number": [self.etc_card, self.spare_etc_card]},
                "/api/v1/accounts/{account_id}/bound-card": {"card_number": [self.spare_bank_card,
                                                                             person["card_number"]]},
            },
            "partner": {"app_id": partner["app_id"], "secret": partner["secret"]},
            "spare_authorization": "Bearer " + spare_login["access_token"],
            "signed_pdf": str(pdf),
            "control": f"{self.http.base_url}/sandbox/control",
        }

    def open_funded_bindings(self, *, funded: int, poor_accounts: int = 1, poor_cars: int) -> dict:
        """After ``walk()``: ``funded`` more Class II accounts of this user with money on them, each with an
        active ETC binding of a car of its own and one large debit booked, and ``poor_accounts`` accounts
        without money with ``poor_cars`` bound cars each (at most 5 Class II accounts a person, the walk's
        included). So a partner's debits spread over several accounts (the baseline's velocity rules count
        per account), refunds have booked debits to return, and orders have bindings that owe the device fee
        or arrears. Returns the fuzzer's ``money`` fixtures (``tests/fuzz/hooks.py``)."""
        cars = [{"binding_id": self.made["binding"]["id"], "account_id": self.made["account"]["id"],
                 "card_number": self.etc_card, "plate_number": self.plate, "plate_color": "yellow_green",
                 "funded": True, "walked": True}]
        for n in range(funded + poor_accounts):
            account = self.open_class_ii()[2]
            is_funded = n < funded
            if is_funded:
                self.top_up(account["id"], 100_000)
            for _ in range(1 if is_funded else poor_cars):
                cars.append({**self.bind_car(account["id"]), "funded": is_funded, "walked": True})
        debits = [self.out_trade_no]
        for car in cars[1:]:
            if car["funded"]:  # one booked debit each, large enough for many small refunds
                debits.append("FUZZ-" + secrets.token_hex(6).upper())
                self.ok(signed_call(self.http, self.partner["app_id"], self.partner["secret"], "POST",
                                    "/open/v1/debits", {
                                        "out_trade_no": debits[-1], "card_number": car["card_number"],
                                        "category": "parking", "amount_fen": 20_000,
                                        "occurred_at": "2026-01-01T09:00:00+08:00", "merchant": "停车场"}))
        return {"cars": cars, "debits": debits}

    def funded_cars(self, *, accounts: int, top_up_fen: int = 100_000) -> list[dict]:
        """Another person's cars for the fuzz partner to debit (the fuzzer stays the walked user): this walker
        logs in, proves who it is, opens ``accounts`` Class II accounts (at most 5 a person) with
        ``top_up_fen`` on each, and binds one car to each. So the partner's debits spread over more accounts
        than one person may hold, each within the baseline's per-account velocity rules."""
        self.log_in()
        person = self.prove_identity()
        self.control(f"bank-cards/{person['card_number']}/balance", {"balance_fen": 10**11})
        cars = []
        for _ in range(accounts):
            account = self.open_class_ii()[2]
            self.top_up(account["id"], top_up_fen)
            cars.append({**self.bind_car(account["id"]), "funded": True, "walked": False})
        return cars
