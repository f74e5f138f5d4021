"""The authorization matrix: every route that takes an id, tried with another owner's id.

The routes come from the running app, not from a list: every route under ``/api/v1/`` and ``/open/v1/``
with a path parameter (the router), and every operation whose JSON body has a property ending in ``_id``
(the body schemas of ``/docs/openapi.json``, cross-checked with each handler's ``@operation``). Each such
(method, route, parameter) must have a probe in ``PROBES``, which says what kind of resource the
parameter names and what the rest of a valid request is: a route the matrix does not know fails the test
by name, so a new route is added here. ``NOT_RESOURCES`` lists, each with its reason, the parameters named
like ids that name nothing stored (the OBU's serial number).

Two users have walked every flow (``tests.walker.Walker``), each with a partner that debited their car:
A with partner X, B with partner Y. Then, for every parameter and every one of A's resources of the kind
it names, B (or Y, on ``/open/v1``) sends a request valid in every way but that one id, and the matrix
proves:

* the answer is 404 or 403 in the error shape (the one exception, a face check named in a signing body,
  is 422 ``FACE_VERIFICATION_INVALID``), and is exactly what an id that never existed gets: the same
  status, code, message and field, so the answer does not even tell that A's resource exists;
* nothing of A's is in it (names, numbers, plates, cards, contract numbers, hashes, verify ids);
* every row of A's and of X's in the database (by user, account, binding, order, partner and debit) is
  unchanged afterwards: no top-up, withdrawal, refund, signing, submission, activation, suspension or
  deletion happened to A;
* the same request with B's own ids succeeds, so each refusal was about the id and nothing else.

Partner numbers are per partner too: Y's statement shows none of X's debits, and Y may use X's
``out_trade_no`` and ``out_refund_no`` for debits and refunds of its own without learning X's.

Out of scope: the sandbox's control and emulator routes (``/sandbox/...``), ``/docs``, ``/health/...``,
``/metrics`` and ``/callbacks/...``: none of them is called by a user or a partner on something they own.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import quote

import httpx
from tortoise import Tortoise

from app.openapi import openapi_path
from core.clock import china_day
from handlers.spec import MAX_ID, operation_of
from models.accounts import Account
from models.partners import Partner, PartnerDebit
from tests.account_helpers import new_key
from tests.identity_data import CHINESE_NAMES
from tests.partner_helpers import PartnerCreds, call, new_partner, register_vehicle
from tests.payment_helpers import pay, wait_status
from tests.walker import Walker

PREFIXES = ("/api/v1/", "/open/v1/")
PARAM_RE = re.compile(r"<([A-Za-z_]\w*)(?::[^>]*)?>")
ERROR_KEYS = {"code", "message", "field", "request_id"}

Slot = tuple[str, str, str]  # (method, route as OpenAPI writes it, "path.<name>" or "body.<name>")


@dataclass
class Owner:
    """A user who walked every flow, with the partner that debited their car."""

    label: str
    headers: dict[str, str]
    partner: PartnerCreds
    ids: dict[str, list]  # kind of resource -> the owner's ids of that kind; a control uses the first
    values: dict[str, str]  # the rest of a valid body: name, ID number, ETC card
    texts: set[str] = field(default_factory=set)  # what only this owner's data contains
    keys: dict[str, list] = field(default_factory=dict)  # column -> values: every row that is this owner's


@dataclass(frozen=True)
class Probe:
    """One operation as the matrix calls it: which kind of resource each id names, the rest of a valid body
    (from the caller's own values), and whether it needs an ``Idempotency-Key`` or a partner's signature."""

    method: str
    route: str
    ids: dict[str, str]
    body: Callable[[Owner], dict] | None = None
    idempotent: bool = False
    partner: bool = False
    refusal: dict[str, tuple[int, str]] = field(default_factory=dict)  # when not 403/404
    fixed: dict[str, Callable[[], str]] = field(default_factory=dict)  # path parameters that name no resource
    # the control's answer when not a success: B's own ids found, and refused for a rule of B's own resource
    control: tuple[int, str] | None = None

    def request(self, caller: Owner, ids: dict[str, object]) -> tuple[str, dict | None]:
        url = self.route.format(**{name: value() for name, value in self.fixed.items()},
                                **{k[5:]: quote(str(v), safe="") for k, v in ids.items() if k.startswith("path.")})
        if self.body is None:
            return url, None
        return url, {**self.body(caller), **{k[5:]: v for k, v in ids.items() if k.startswith("body.")}}


def _amount(_: Owner) -> dict:
    return {"amount_fen": 100}


def _this_month() -> str:
    return f"{china_day():%Y-%m}"


STATEMENT_MONTH = {"month": _this_month}

PROBES = [
    Probe("GET", "/api/v1/account-applications/{application_id}", {"path.application_id": "application"}),
    Probe("POST", "/api/v1/account-applications/{application_id}/submit", {"path.application_id": "application"}),
    Probe("GET", "/api/v1/accounts/{account_id}", {"path.account_id": "account"}),
    Probe("GET", "/api/v1/accounts/{account_id}/transactions", {"path.account_id": "account"}),
    Probe("GET", "/api/v1/accounts/{account_id}/statements/{month}.pdf", {"path.account_id": "account"},
          fixed=STATEMENT_MONTH),
    Probe("GET", "/api/v1/accounts/{account_id}/statements/{month}.csv", {"path.account_id": "account"},
          fixed=STATEMENT_MONTH),
    Probe("POST", "/api/v1/accounts/{account_id}/top-ups", {"path.account_id": "account"}, _amount, idempotent=True),
    Probe("POST", "/api/v1/accounts/{account_id}/withdrawals", {"path.account_id": "account"}, _amount,
          idempotent=True),
    Probe("POST", "/api/v1/contracts", {"body.subject_id": "open_application"},
          lambda o: {"template": "account_agreement"}),
    Probe("POST", "/api/v1/contracts", {"body.subject_id": "pending_binding"}, lambda o: {"template": "etc_autodebit"}),
    Probe("GET", "/api/v1/contracts/{contract_id}", {"path.contract_id": "contract"}),
    Probe("GET", "/api/v1/contracts/{contract_id}/pdf", {"path.contract_id": "contract"}),
    Probe("GET", "/api/v1/contracts/{contract_id}/signed.pdf", {"path.contract_id": "contract"}),
    Probe("GET", "/api/v1/contracts/{contract_id}/evidence", {"path.contract_id": "contract"}),
    Probe("POST", "/api/v1/contracts/{contract_id}/sign",
          {"path.contract_id": "draft", "body.signature_upload_id": "signature", "body.verify_id": "fresh_face"},
          lambda o: {"consent": True}, refusal={"body.verify_id": (422, "FACE_VERIFICATION_INVALID")}),
    Probe("POST", "/api/v1/identity/face/{verify_id}/result", {"path.verify_id": "face"}),
    Probe("GET", "/api/v1/vehicles/{vehicle_id}", {"path.vehicle_id": "vehicle"}),
    Probe("POST", "/api/v1/etc-bindings", {"body.vehicle_id": "pending_vehicle", "body.account_id": "account"},
          lambda o: {"card_number": o.values["pending_etc_card"]}),
    Probe("GET", "/api/v1/etc-bindings/{binding_id}", {"path.binding_id": "binding"}),
    Probe("POST", "/api/v1/etc-bindings/{binding_id}/activate", {"path.binding_id": "binding"}),
    Probe("POST", "/api/v1/etc-bindings/{binding_id}/suspend", {"path.binding_id": "binding"}),
    Probe("POST", "/api/v1/etc-bindings/{binding_id}/resume", {"path.binding_id": "binding"}),
    Probe("GET", "/api/v1/etc-bindings/{binding_id}/debits", {"path.binding_id": "binding"}),
    Probe("POST", "/api/v1/payments/orders", {"body.reference_id": "binding"}, lambda o: {"purpose": "obu_fee"},
          idempotent=True),
    Probe("GET", "/api/v1/payments/orders/{order_id}", {"path.order_id": "order"}),
    Probe("POST", "/api/v1/payments/orders/{order_id}/refunds", {"path.order_id": "order"}, _amount,
          idempotent=True),
    Probe("GET", "/open/v1/debits/{out_trade_no}", {"path.out_trade_no": "debit"}, partner=True),
    Probe("POST", "/open/v1/debits/{out_trade_no}/refund", {"path.out_trade_no": "debit"},
          lambda o: {"out_refund_no": "R" + secrets.token_hex(8), "amount_fen": 100}, partner=True),
    # the loss report's control sets it and the next lifts it, before the others' controls need the account
    Probe("POST", "/api/v1/accounts/{account_id}/loss-report", {"path.account_id": "account"}),
    Probe("DELETE", "/api/v1/accounts/{account_id}/loss-report",
          {"path.account_id": "account", "body.verify_id": "lift_face"}, lambda o: {},
          refusal={"body.verify_id": (422, "FACE_VERIFICATION_INVALID")}),
    Probe("POST", "/api/v1/accounts/{account_id}/reveal-number",
          {"path.account_id": "account", "body.verify_id": "reveal_face"}, lambda o: {},
          refusal={"body.verify_id": (422, "FACE_VERIFICATION_INVALID")}),
    # the account's control binds the owner's second card (top-ups and withdrawals above ran on the first)
    Probe("POST", "/api/v1/accounts/{account_id}/bound-card",
          {"path.account_id": "account", "body.verify_id": "card_face"},
          lambda o: {"card_number": o.values["spare_bank_card"], "reserved_phone": o.values["phone"]},
          refusal={"body.verify_id": (422, "FACE_VERIFICATION_INVALID")}),
    # last, as their controls end what the others' use: the binding, a vehicle, the identity check
    Probe("DELETE", "/api/v1/etc-bindings/{binding_id}", {"path.binding_id": "binding"}),
    Probe("DELETE", "/api/v1/vehicles/{vehicle_id}", {"path.vehicle_id": "loose_vehicle"}),
    # B's account still has its second binding pending: B's closing is found, and refused for that
    Probe("POST", "/api/v1/accounts/{account_id}/close",
          {"path.account_id": "account", "body.verify_id": "close_face"}, lambda o: {}, idempotent=True,
          refusal={"body.verify_id": (422, "FACE_VERIFICATION_INVALID")}, control=(409, "ACCOUNT_HAS_BINDINGS")),
    Probe("POST", "/api/v1/identity/id-card", {"body.front_upload_id": "id_front", "body.back_upload_id": "id_back"},
          lambda o: {"name": o.values["name"], "id_number": o.values["id_number"]}),
]


# Parameters named like ids that name nothing stored, so there is no one else's to try.
NOT_RESOURCES: dict[Slot, str] = {
    ("POST", "/api/v1/etc-bindings", "body.obu_id"): "the serial number printed on the OBU device, typed by the user",
    ("GET", "/api/v1/accounts/{account_id}/statements/{month}.pdf", "path.month"): "a calendar month",
    ("GET", "/api/v1/accounts/{account_id}/statements/{month}.csv", "path.month"): "a calendar month",
}


def probes_by_slot() -> dict[Slot, list[Probe]]:
    found: dict[Slot, list[Probe]] = {slot: [] for slot in NOT_RESOURCES}
    for probe in PROBES:
        for param in probe.ids:
            found.setdefault((probe.method, probe.route, param), []).append(probe)
    return found


# -- the routes that take an id, from the app ----------------------------------------------------------


def _route_path(raw: str) -> str:
    return openapi_path(raw)  # as the document writes it: ``{month}.pdf`` for a parameter with an extension


def slots_from_router(app) -> set[Slot]:
    """Every route's path parameters, and the ``_id`` fields of its declared JSON body."""
    found = set()
    for route in app.router.routes:
        path = _route_path(route.path)
        if not path.startswith(PREFIXES):
            continue
        op = operation_of(route.handler)
        params = [f"path.{name}" for name in PARAM_RE.findall(route.path)]
        if op is not None and op.body is not None:
            params += [f"body.{name}" for name in op.body.model_json_schema()["properties"] if name.endswith("_id")]
        found |= {(method, path, param) for method in route.methods - {"HEAD", "OPTIONS"} for param in params}
    return found


def slots_from_document(doc: dict) -> set[Slot]:
    """Every documented path parameter, and every ``_id`` property of a documented JSON body."""
    found = set()
    for path, item in doc["paths"].items():
        if not path.startswith(PREFIXES):
            continue
        for method, op in item.items():
            params = [f"path.{p['name']}" for p in op.get("parameters", []) if p["in"] == "path"]
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in schema:
                schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            params += [f"body.{name}" for name in schema.get("properties", {}) if name.endswith("_id")]
            found |= {(method.upper(), path, param) for param in params}
    return found


async def id_slots(server, client: httpx.AsyncClient) -> set[Slot]:
    doc = (await client.get("/docs/openapi.json")).json()
    routed, documented = slots_from_router(server.app), slots_from_document(doc)
    assert routed == documented, {"routed, not documented": sorted(routed - documented),
                                  "documented, not routed": sorted(documented - routed)}
    return routed


def uncovered(slots: set[Slot]) -> list[str]:
    return [f"{method} {route} ({param})" for method, route, param in sorted(slots - set(probes_by_slot()))]


async def test_every_route_that_takes_an_id_is_in_the_matrix(server, client):
    """The router and the document agree on which routes take an id, and the matrix has a probe for each."""
    slots = await id_slots(server, client)
    assert not uncovered(slots), f"routes that take an id with no probe in PROBES: {uncovered(slots)}"
    assert set(probes_by_slot()) <= slots, f"probes for routes the app no longer has: {set(probes_by_slot()) - slots}"
    assert {route for _, route, _ in slots} >= {"/open/v1/debits/{out_trade_no}", "/api/v1/accounts/{account_id}"}


# -- two owners ----------------------------------------------------------------------------------------


async def walk_owner(client: httpx.AsyncClient, ctx, tmp_path, label: str, name: str) -> Owner:
    """A user who walked every flow (``Walker``), debited once by their own partner, with what the walk leaves
    out: a paid device fee, a second binding still pending, a vehicle with nothing bound, a fresh face check,
    and a partner refund."""
    partner = await new_partner(ctx)
    walker = Walker(str(client.base_url), partner={"app_id": partner.app_id, "secret": partner.secret},
                    person={"name": name, "phone": "139" + "".join(secrets.choice("0123456789") for _ in range(8))})
    workdir = tmp_path / label
    workdir.mkdir()
    await asyncio.to_thread(walker.walk, workdir)
    made, user = walker.made, SimpleNamespace(headers=walker.headers)
    await pay(client, made["order"])
    assert (await wait_status(made["order"]["id"], "paid")).status == "paid"
    resp = await client.post("/api/v1/etc-bindings", headers=walker.headers, json={
        "vehicle_id": made["spare"]["id"], "card_number": walker.spare_etc_card, "account_id": made["account"]["id"]})
    assert resp.status_code == 201, resp.text
    pending = resp.json()
    loose = await register_vehicle(client, user)
    fresh = await asyncio.to_thread(walker.face, "pass")
    lift_face = await asyncio.to_thread(walker.face, "pass")
    reveal_face = await asyncio.to_thread(walker.face, "pass")
    card_face = await asyncio.to_thread(walker.face, "pass")
    close_face = await asyncio.to_thread(walker.face, "pass")
    out_refund_no = "R" + secrets.token_hex(8)
    resp = await call(client, partner, "POST", f"/open/v1/debits/{walker.out_trade_no}/refund",
                      {"out_refund_no": out_refund_no, "amount_fen": 100})
    assert resp.status_code == 201, resp.text

    binding, faces = made["binding"], made["faces"]
    contracts = [made["signed"]["id"], made["agreement"]["id"], binding["authorisation_contract_id"],
                 pending["authorisation_contract_id"], made["draft"]["id"]]
    ids = {
        "application": [made["application"]["id"], made["class_iii"]["id"]],
        "open_application": [made["class_iii"]["id"], made["application"]["id"]],
        "account": [made["account"]["id"]],
        "contract": contracts,
        "draft": [made["draft"]["id"], *contracts[:-1]],
        "signature": [made["signature"]["id"]],
        "face": [faces["pending"], faces["fresh"], fresh],
        "fresh_face": [fresh, faces["fresh"], faces["pending"]],
        "lift_face": [lift_face, faces["fresh"], faces["pending"]],
        "reveal_face": [reveal_face, faces["fresh"], faces["pending"]],
        "card_face": [card_face, faces["fresh"], faces["pending"]],
        "close_face": [close_face, faces["fresh"], faces["pending"]],
        "vehicle": [made["vehicle"]["id"], made["spare"]["id"], loose["id"]],
        "loose_vehicle": [loose["id"], made["vehicle"]["id"], made["spare"]["id"]],
        "pending_vehicle": [made["spare"]["id"], made["vehicle"]["id"], loose["id"]],
        "binding": [binding["id"], pending["id"]],
        "pending_binding": [pending["id"], binding["id"]],
        "order": [made["order"]["id"]],
        "id_front": [made["uploads"]["id_front"]],
        "id_back": [made["uploads"]["id_back"]],
        "debit": [walker.out_trade_no],
        "out_refund_no": [out_refund_no],
    }
    person = made["person"]
    account = await Account.get(id=made["account"]["id"])
    partner_row = await Partner.get(app_id=partner.app_id)
    texts = [person["name"], person["id_number"], person["card_number"], person["phone"], walker.plate,
             walker.spare_plate, loose["plate_number"], walker.etc_card, walker.spare_etc_card, walker.out_trade_no,
             made["order"]["out_trade_no"], account.number, made["account"]["number_masked"], partner.app_id,
             walker.refresh_token, out_refund_no, faces["fresh"], faces["pending"], fresh, walker.spare_bank_card]
    for contract_id in contracts:
        contract = (await client.get(f"/api/v1/contracts/{contract_id}", headers=walker.headers)).json()
        texts += [contract["contract_no"], contract["sha256"], contract["signed_sha256"]]
    keys = {"user_id": [account.user_id], "account_id": [account.id], "binding_id": [binding["id"], pending["id"]],
            "order_id": [made["order"]["id"]], "partner_id": [partner_row.id],
            "debit_id": await PartnerDebit.filter(partner_id=partner_row.id).values_list("id", flat=True)}
    return Owner(label, walker.headers, partner, ids,
                 {"name": name, "id_number": person["id_number"], "etc_card": walker.etc_card,
                  "pending_etc_card": walker.spare_etc_card, "spare_bank_card": walker.spare_bank_card,
                  "phone": person["phone"]},
                 {t for t in texts if t}, keys)


async def rows_of(owner: Owner) -> dict[str, list[dict]]:
    """Every row of every table that is the owner's or their partner's, by the columns that say so."""
    found = {}
    for name, model in sorted(Tortoise.apps["models"].items()):
        for column, values in owner.keys.items():
            if column in model._meta.db_fields:
                rows = await model.filter(**{f"{column}__in": values}).order_by(model._meta.pk_attr).values()
                found[f"{name}.{column}"] = rows
    found["User"] = await Tortoise.apps["models"]["User"].filter(id__in=owner.keys["user_id"]).values()
    return found


# -- the matrix -----------------------------------------------------------------------------------------


async def send(client: httpx.AsyncClient, probe: Probe, caller: Owner, ids: dict[str, object]) -> httpx.Response:
    url, body = probe.request(caller, ids)
    if probe.partner:
        return await call(client, caller.partner, probe.method, url, body)
    headers = {**caller.headers, **({"Idempotency-Key": new_key()} if probe.idempotent else {})}
    return await client.request(probe.method, url, json=body, headers=headers)


def error_of(resp: httpx.Response) -> dict:
    """The error in the documented shape, and nothing else, or an AssertionError saying what came instead."""
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers.get("content-type")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) <= ERROR_KEYS, body
    assert all(isinstance(v, str) for v in body["error"].values()) and body["error"]["code"], body
    assert resp.headers.get("x-request-id"), "no X-Request-Id"
    return body["error"]


def never_existing(value: object) -> object:
    return MAX_ID if isinstance(value, int) else "nx" + secrets.token_hex(8)


async def refusals(client, slots: set[Slot], a: Owner, b: Owner) -> tuple[list[str], list[str]]:
    """Every probe of every slot, as B with each of A's ids of that kind: (what each answered, what failed)."""
    by_slot = probes_by_slot()
    table, failed = [], []
    for slot in sorted(slots):
        if slot not in by_slot:
            failed.append(f"{slot[0]} {slot[1]} ({slot[2]}): takes an id and has no probe in PROBES")
            continue
        for probe in by_slot[slot]:
            param = slot[2]
            own = {p: b.ids[kind][0] for p, kind in probe.ids.items()}
            for foreign in a.ids[probe.ids[param]]:
                where = f"{probe.method} {probe.route} {param}={foreign!r}"
                resp = await send(client, probe, b, {**own, param: foreign})
                table.append(f"{where}: {resp.status_code} {resp.text[:80]}")
                try:
                    got = error_of(resp)
                    if param in probe.refusal:
                        assert (resp.status_code, got["code"]) == probe.refusal[param], f"not {probe.refusal[param]}"
                    else:
                        assert resp.status_code in (403, 404), "not 403 or 404"
                    baseline = await send(client, probe, b, {**own, param: never_existing(foreign)})
                    expected = error_of(baseline)
                    assert (resp.status_code, {**got, "request_id": ""}) == (
                        baseline.status_code, {**expected, "request_id": ""}), f"an unknown id gets {baseline.text}"
                    leaked = {s for s in a.texts if s in resp.text and s != str(foreign)}
                    assert not leaked, f"A's data in the answer: {leaked}"
                except AssertionError as exc:
                    failed.append(f"{where}: {resp.status_code} {resp.text[:300]} -- {str(exc).splitlines()[0]}")
    return table, failed


async def partner_numbers(client, a: Owner, b: Owner) -> list[str]:
    """Partner Y's statement and Y's own debit and refund under X's numbers: nothing of X's comes back."""
    failed = []
    day = china_day().isoformat()
    statement = await call(client, b.partner, "GET", f"/open/v1/statements?date={day}")
    if statement.status_code != 200 or a.ids["debit"][0] in statement.text or b.ids["debit"][0] not in statement.text:
        failed.append(f"Y's statement: {statement.status_code} {statement.text[:300]}")
    body = {"out_trade_no": a.ids["debit"][0], "card_number": b.values["etc_card"], "category": "toll",
            "amount_fen": 200, "occurred_at": "2026-01-01T09:00:00+08:00", "merchant": "收费站"}
    debit = await call(client, b.partner, "POST", "/open/v1/debits", body)
    got = debit.json() if debit.status_code == 201 and "Idempotent-Replayed" not in debit.headers else {}
    if (got.get("binding_id"), got.get("amount_fen")) != (b.ids["binding"][0], 200):
        failed.append(f"Y's debit under X's out_trade_no: {debit.status_code} {debit.text[:300]}")
    refund = await call(client, b.partner, "POST", f"/open/v1/debits/{b.ids['debit'][0]}/refund",
                        {"out_refund_no": a.ids["out_refund_no"][0], "amount_fen": 50})
    got = refund.json() if refund.status_code == 201 and "Idempotent-Replayed" not in refund.headers else {}
    if (got.get("out_trade_no"), got.get("amount_fen")) != (b.ids["debit"][0], 50):
        failed.append(f"Y's refund under X's out_refund_no: {refund.status_code} {refund.text[:300]}")
    return failed


async def controls(client, b: Owner) -> list[str]:
    """Each probe as B with B's own ids, in PROBES order: a success, so B's requests were valid."""
    failed = []
    for probe in PROBES:
        resp = await send(client, probe, b, {p: b.ids[kind][0] for p, kind in probe.ids.items()})
        if probe.control is not None:
            if (resp.status_code, resp.json().get("error", {}).get("code")) != probe.control:
                failed.append(f"{probe.method} {probe.route} with B's own ids: {resp.status_code} {resp.text[:300]}")
        elif not 200 <= resp.status_code < 300:
            failed.append(f"{probe.method} {probe.route} with B's own ids: {resp.status_code} {resp.text[:300]}")
    return failed


async def test_no_route_gives_one_owner_anything_of_another(server, client, ctx, monkeypatch, tmp_path):
    """B with A's ids, and Y with X's numbers: refused as if they did not exist, nothing of A's or X's in the
    answers, nothing of theirs changed; and the same requests with B's and Y's own ids succeed."""
    # two walks start more face checks in a day than the default limit allows (the limit has its own tests)
    monkeypatch.setattr(ctx, "settings", ctx.settings.replace(daily_attempt_limit=1000))
    slots = await id_slots(server, client)
    name_a, name_b = secrets.SystemRandom().sample(CHINESE_NAMES, 2)
    a = await walk_owner(client, ctx, tmp_path, "a", name_a)
    b = await walk_owner(client, ctx, tmp_path, "b", name_b)
    before = await rows_of(a)

    table, failed = await refusals(client, slots, a, b)
    failed += await partner_numbers(client, a, b)
    after = await rows_of(a)
    changed = sorted(k for k in before if before[k] != after[k])
    failed += [f"A's rows changed: {k}: {[r for r in after[k] if r not in before[k]]}"[:600] for k in changed]
    failed += await controls(client, b)

    assert len(table) >= len(slots)
    assert not failed, "\n".join(failed) + "\n\nevery answer:\n" + "\n".join(table)
