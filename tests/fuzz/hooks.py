"""Schemathesis hooks for the API fuzz run (``tests/e2e/test_fuzz_api.py``).

* Deeper states: path ids and body ids are drawn half of the time from resources the fuzzed user
  really owns (``FUZZ_FIXTURES``: a JSON file the test writes), so the fuzzer reaches signing, evidence
  and the identity checks instead of stopping at 404.
* ``/open/v1``: requests signed as the fuzz partner (``before_call``), so the fuzzer reaches the handlers.
* Money paths (``money`` in the fixtures): most positive partner debits, partner refunds and payment
  orders are made requests that can succeed (``before_call``): a debit of a real active binding's ETC card
  or plate under a fresh ``out_trade_no`` for a small amount, a refund of a debit really booked (by the
  walk, or earlier in this run: ``after_call``) under a fresh refund number, an order for a real binding
  under a fresh ``Idempotency-Key`` (the walked user's bindings only). The rest stay as drawn. The
  debits spread over the accounts (``cars`` may include other persons' cars): each goes to the least
  recently debited account still under the burst rule's limit, since the baseline rules in force hold a
  burst on one account for review.
* ``application/pdf`` bodies: real PDFs (a signed contract, or schemathesis's minimal sample).
* One more check: a request the document says is valid is never refused by the contract layer itself
  (``VALIDATION_ERROR``, ``INVALID_JSON``, ``UNSUPPORTED_MEDIA_TYPE``). Domain answers (a checksum that
  fails, a code WeChat does not know, an upload of another kind) are allowed: no schema can state them.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import schemathesis
from hypothesis import strategies as st

from tests.partner_helpers import partner_headers

CONTRACT_LAYER_CODES = {"VALIDATION_ERROR", "INVALID_JSON", "UNSUPPORTED_MEDIA_TYPE", "INVALID_MULTIPART"}


@lru_cache(maxsize=1)
def fixtures() -> dict:
    path = os.environ.get("FUZZ_FIXTURES")
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _positive(case) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode.is_positive


@schemathesis.hook
def flatmap_case(context, case):
    """In positive cases, half of the time, send the user's real ids instead of drawn ones (negative
    cases stay as drawn: replacing their values would make them valid)."""
    if not _positive(case) or (case.meta is not None and case.meta.phase.name == "stateful"):
        # stateful steps take their ids from the responses they follow: replacing those would break the link
        return st.just(case)
    real_path = fixtures().get("path", {})
    real_body = {**fixtures().get("body", {}), **fixtures().get("body_by_path", {}).get(case.operation.path, {})}
    choices = []
    for name in case.path_parameters or {}:
        choices += [("path", name, v) for v in real_path.get(name, [])]
    if isinstance(case.body, dict):
        choices += [("body", name, v) for name in case.body for v in real_body.get(name, [])]
    if not choices:
        return st.just(case)

    def apply(picked):
        for where, name, value in picked:
            (case.path_parameters if where == "path" else case.body)[name] = value
        return case

    return st.lists(st.sampled_from(choices), max_size=len(choices), unique=True).map(apply)


@schemathesis.hook
def filter_case(context, case):
    """Drop negative multipart cases whose only violation vanishes on the wire: an extra property whose
    value is an empty list (or null) becomes no part at all, so the request as sent is valid, and
    schemathesis would call our correct 201 a failure."""
    if _positive(case) or case.media_type != "multipart/form-data" or not isinstance(case.body, dict):
        return True
    content = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    declared = set(content.get("multipart/form-data", {}).get("schema", {}).get("properties", {}))
    extras = [v for k, v in case.body.items() if k not in declared]
    return not extras or any(v not in ([], None) for v in extras)


class Bearer:
    """A ``requests`` auth: this ``Authorization`` instead of the run's (the logout's own login)."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self, request):
        request.headers["Authorization"] = self.value
        return request


class PartnerSignature:
    """A ``requests`` auth: signs the request as finally prepared (its exact path, query and body bytes)."""

    def __init__(self, app_id: str, secret: str) -> None:
        self.app_id, self.secret = app_id, secret

    def __call__(self, request):
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        request.headers.update(partner_headers(self.app_id, self.secret, request.method, request.path_url, body))
        return request


SIGNING_HEADERS = {"X-App-Id": r"^pt[0-9a-f]{16}$", "X-Timestamp": r"^[0-9]{1,12}$", "X-Nonce": r"^[A-Za-z0-9_-]{16,64}$",
                   "X-Signature": r"^[0-9a-f]{64}$"}


def _signing_headers_well_formed(case) -> bool:
    headers = case.headers or {}
    return all(isinstance(headers.get(k), str) and re.match(p, headers[k]) for k, p in SIGNING_HEADERS.items())


@schemathesis.hook
def before_call(context, case, kwargs):
    """``/open/v1``: sign as the fuzz partner, unless the case's own signing headers are malformed (a
    negative case about them, left as drawn). Now and then, a positive login or phone binding carries a
    code the emulated WeChat really issued (codes are single use, so they are minted per call), so those
    flows run to the end too."""
    global _calls
    spare = fixtures().get("spare_authorization")
    if spare and case.operation.path == "/api/v1/auth/logout":  # ends that login, not the walked user's
        kwargs["auth"] = Bearer(spare)
    partner = fixtures().get("partner")
    if partner and case.operation.path.startswith("/open/v1/") and _signing_headers_well_formed(case):
        kwargs["auth"] = PartnerSignature(partner["app_id"], partner["secret"])
    if _positive(case) and isinstance(case.body, dict):
        _make_bookable(case)
    control = fixtures().get("control")
    if not control or not _positive(case) or not isinstance(case.body, dict):
        return
    _calls += 1
    if _calls % 2:
        return
    import requests

    if case.operation.path == "/api/v1/auth/login" and "code" in case.body:
        case.body["code"] = requests.post(f"{control}/login-code", json={}, timeout=10).json()["code"]
    elif case.operation.path == "/api/v1/me/phone" and "code" in case.body:
        case.body["code"] = requests.post(f"{control}/phone-code", json={"phone": "13700000000"}, timeout=10).json()["code"]


_calls = 0

# Money operations: of every 8 positive calls, this many are made requests that can succeed.
BOOKABLE_OF_8 = 7
CHINA = timezone(timedelta(hours=8))
_rng = random.Random(os.environ.get("FUZZ_SEED", "0"))
_money_calls: dict[str, int] = {}
booked: list[str] = []  # out_trade_nos of the debits this run booked (refundable)


def _fresh(prefix: str) -> str:
    return prefix + secrets.token_hex(10).upper()


def _body_properties(case) -> set[str]:
    """The request body's property names as the document states them (a renamed field follows by itself)."""
    schema = (case.operation.definition.raw.get("requestBody", {}).get("content", {})
              .get("application/json", {}).get("schema", {}))
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = case.operation.schema.raw_schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return set(schema.get("properties", {})) | set(case.body)


# debit-burst in risk/baseline.json: more than 5 partner debits of one account in a minute are held for review
BURST_MAX, BURST_WINDOW_S = 5, 60.0
_counted: dict[int, list[float]] = {}  # account id -> when the rules counted a debit of it (as this process saw)
_chosen: dict[tuple[str, int], float] = {}  # ("account" | "binding", id) -> when a made debit last went to it
_awaiting: dict[str, int] = {}  # out_trade_no of a made debit -> its account, until its answer


def _recent(account_id: int, now: float) -> int:
    times = _counted.setdefault(account_id, [])
    times[:] = [t for t in times if now - t < BURST_WINDOW_S]
    return len(times)


def _bookable_debit(case, cars: list[dict]) -> None:
    n = _money_calls[case.operation.path]
    funded = [c for c in cars if c["funded"]]
    poor = [c for c in cars if not c["funded"]]
    # Mostly a funded account; every fifth, a car whose account has no money (arrears to pay). Of those, as a
    # partner's traffic over many cars falls: the least recently debited account still under the burst rule's
    # limit (as the answers so far tell), so the debits spread instead of piling on one account and being
    # held; when every one is at the limit, the debit goes all the same and is held.
    now = time.monotonic()
    pool = poor if poor and n % 5 == 4 else funded
    car = min(pool, key=lambda c: (_recent(c["account_id"], now) >= BURST_MAX,
                                   _chosen.get(("account", c["account_id"]), 0.0),
                                   _chosen.get(("binding", c["binding_id"]), 0.0)))
    _chosen[("account", car["account_id"])] = _chosen[("binding", car["binding_id"])] = now
    body = case.body
    for name in ("card_number", "plate_number", "plate_color"):
        body.pop(name, None)
    if n % 2:
        body["card_number"] = car["card_number"]
    else:
        body["plate_number"], body["plate_color"] = car["plate_number"], car["plate_color"]
    body["out_trade_no"] = _fresh("FZD")
    _awaiting[body["out_trade_no"]] = car["account_id"]
    body["amount_fen"] = _rng.randint(1, 500)
    body["occurred_at"] = (datetime.now(CHINA) - timedelta(seconds=_rng.randint(0, 600))).isoformat(
        timespec="seconds")
    if "location" in body:  # each car stays at its own place: the travel rule looks, and has no cause to fire
        body["location"] = {"lat": 30.0 + car["binding_id"] / 1000, "lng": 120.0}


def _bookable_refund(case, debits: list[str]) -> None:
    if case.meta is None or case.meta.phase.name != "stateful":  # a stateful step refunds the debit it follows
        case.path_parameters["out_trade_no"] = _rng.choice(debits + booked[-50:])
    for name in _body_properties(case):
        if name.endswith("refund_no"):  # refund_no, or out_refund_no: whichever the document names
            case.body[name] = _fresh("FZR")
    case.body["amount_fen"] = _rng.randint(1, 20)


def _bookable_order(case, cars: list[dict]) -> None:
    n = _money_calls[case.operation.path]
    cars = [c for c in cars if c["walked"]]  # the fuzzer orders as the walked user: only its bindings
    poor = [c for c in cars if not c["funded"]] or cars
    if n % 2:  # what a car whose account has no money owes, which grows as debits of it fail
        case.body["purpose"], car = "arrears", poor[n // 2 % len(poor)]
    else:
        case.body["purpose"], car = "obu_fee", cars[n // 2 % len(cars)]
    case.body["reference_id"] = car["binding_id"]
    case.headers = {**(case.headers or {}), "Idempotency-Key": _fresh("fz-")}


MONEY = {("POST", "/open/v1/debits"): "debit", ("POST", "/open/v1/debits/{out_trade_no}/refund"): "refund",
         ("POST", "/api/v1/payments/orders"): "order"}


def _make_bookable(case) -> None:
    kind = MONEY.get((case.method.upper(), case.operation.path))
    money = fixtures().get("money")
    if kind is None or not money:
        return
    n = _money_calls[case.operation.path] = _money_calls.get(case.operation.path, -1) + 1
    if n % 8 >= BOOKABLE_OF_8:
        return
    if kind == "debit":
        _bookable_debit(case, money["cars"])
    elif kind == "refund":
        _bookable_refund(case, money["debits"])
    else:
        _bookable_order(case, money["cars"])


@schemathesis.hook
def after_call(context, case, response):
    """A debit this run booked can be refunded by the calls after it; a made debit's answer tells whether the
    rules counted it on its account (booked, or refused for money: they decided before the ledger did)."""
    if (case.method.upper(), case.operation.path) != ("POST", "/open/v1/debits"):
        return
    if response.status_code == 201:
        booked.append(response.json()["out_trade_no"])
    account_id = _awaiting.pop(case.body.get("out_trade_no"), None) if isinstance(case.body, dict) else None
    if account_id is None:
        return
    try:
        code = response.json().get("error", {}).get("code")
    except ValueError:
        code = None
    now = time.monotonic()
    if response.status_code == 201 or code in ("INSUFFICIENT_FUNDS", "LIMIT_EXCEEDED"):
        _recent(account_id, now)
        _counted[account_id].append(now)
    elif code == "RISK_REVIEW":  # the rules counted more than this process saw (an earlier pass, the walk)
        _counted[account_id] = [now] * BURST_MAX


@schemathesis.serializer("application/pdf")
def pdf(ctx, value):
    if not _positive(ctx.case):  # a negative case is sent as drawn, empty or not
        return value.encode() if isinstance(value, str) else bytes(value or b"")
    if isinstance(value, (bytes, bytearray)) and value:
        return bytes(value)
    path = fixtures().get("signed_pdf")
    if path and os.path.exists(path):
        with open(path, "rb") as fh:
            return fh.read()
    return b"%PDF-1.4\n%%EOF\n"


@schemathesis.check
def contract_layer_accepts_what_the_document_accepts(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 415, 422):
        return None
    try:
        code = response.json()["error"]["code"]
    except Exception:  # noqa: BLE001 - not our error shape; other checks report that
        return None
    if code in CONTRACT_LAYER_CODES:
        raise AssertionError(f"a request valid by the document was refused by the contract layer: {code} "
                             f"{response.json()['error'].get('field')}")
    return None
