"""Emulated partner callback server, mounted at ``/sandbox/partner``: receives the signed
notifications the bank delivers to a partner's callback URL and checks them as a careful partner
would (``docs/open-api.md``, "Signing a request" and "Notifications").

Not a bank API: it stands for the partner's side (the ETC issuer, a parking operator...). In sandbox
mode the bank is configured with a callback URL such as
``http://127.0.0.1:8000/sandbox/partner/pt0123456789abcdef/notify`` (a query string may follow; it
is part of what is signed).

``POST /sandbox/partner/{app_id}/notify`` with the headers ``X-App-Id``, ``X-Timestamp``,
``X-Nonce``, ``X-Signature`` and the JSON body ``{"event_id","type","occurred_at","data"}``. The
partner must have been registered with ``POST /sandbox/control/partners {app_id, secret,
previous_secret?}``, else HTTP 404 ``{"error":"UNKNOWN_PARTNER","message"}``. Checks, in this order;
the first failure answers ``{"error": CODE, "message", ...}`` and is recorded as a rejected delivery
with ``reason`` = CODE:

1. a header missing or malformed (``X-Timestamp`` digits, ``X-Nonce`` 16-64 of ``A-Z a-z 0-9 _ -``,
   ``X-Signature`` 64 lowercase hex digits): 401 ``AUTH_HEADER_INVALID`` (``field`` names it);
2. ``X-App-Id`` other than the ``{app_id}`` of the URL: 401 ``APP_ID_MISMATCH``;
3. ``X-Timestamp`` more than 300 s away from the emulator's clock: 401 ``TIMESTAMP_OUT_OF_RANGE``;
4. ``X-Signature`` not the HMAC-SHA256 (key: the secret's UTF-8 bytes, lowercase hex) of
   ``METHOD\\nPATH\\nCANONICAL_QUERY\\nTIMESTAMP\\nNONCE\\nhex(SHA256(body))`` under the registered
   secret nor under the previous secret: 401 ``SIGNATURE_INVALID`` (compared in constant time; the
   answer shows ``string_to_sign``, the emulator's side of the computation, to help a bank developer
   find the difference); PATH is the path exactly as on the request line (percent-encoding kept),
   CANONICAL_QUERY as the doc defines it (:func:`canonical_query`);
5. an ``X-Nonce`` this partner saw before in a correctly signed delivery: 409 ``NONCE_REUSED``
   (a badly signed delivery does not spend its nonce);
6. a body that is not a JSON object with ``event_id`` (non-empty string, at most 128 characters),
   ``type`` (non-empty string), ``occurred_at`` (an ISO 8601 date-time with a UTC offset) and
   ``data`` (an object): 400 ``INVALID_BODY`` (``field`` names it; the nonce is spent).

Then the event is stored once per ``(app_id, event_id)``: the first delivery answers 200
``{"ok":true,"event_id","duplicate":false}`` (outcome ``accepted``), a redelivery of the same
event_id 200 with ``"duplicate":true`` (outcome ``duplicate``, the stored event unchanged; the
delivery's ``detail`` says so when the redelivered event differs from the stored one). Every
delivery, whatever its outcome, is recorded (``GET /sandbox/control/partners/{app_id}/deliveries``);
the stored events with how many deliveries carried them are at ``.../notifications``. Nonce check,
event storage and delivery record are one ``BEGIN IMMEDIATE`` transaction, so concurrent
deliveries on several worker processes store an event once.

Faults (``POST /sandbox/control/faults``): the key ``partner/<app_id>/notify`` (one partner, for an
app id of 1-64 ``A-Z a-z 0-9 _ -``) or ``partner/{app_id}/notify`` (literally: every partner), the
former taken first. ``http_status`` (plain-text body), ``body`` (HTTP 200 with that JSON), ``drop``,
``delay_s``, ``when`` and ``count`` work as for the other emulators (:mod:`sandbox.wxcommon`);
``errcode`` does not apply. With ``when: "before"`` the delivery is answered by the fault without
being looked at (outcome ``fault``, reason ``INJECTED_FAULT``, nothing stored, nonce not spent),
unless the fault only delays; a delivery whose sender hangs up during a delay is recorded with
``http_status`` 0. With ``when: "after"`` the delivery is checked and stored first, then its reply
is spoiled (outcome ``fault`` when the reply was replaced or dropped, the event stored all the
same): what a partner that processed a notification but whose answer was lost looks like to the bank.
Faults apply only to registered partners; every answer is also in the call log under the key
``partner/<app_id>/notify``.

Everything lives in the shared SQLite state (tables created by :func:`with_schema`, the
:class:`~sandbox.state.State` seed hook). This module shares no code with the bank's server: the
signature is computed here from the doc, independently.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote_plus

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json as json_response

from sandbox.config import SandboxConfig
from sandbox.control_kit import Body, ControlRoutes, answer, not_found, parse
from sandbox.state import Fault, State, Tx
from sandbox.wxcommon import drop_connection, dumps, fault_reply

log = logging.getLogger("sandbox.partner")

ANY_PARTNER_FAULT_PATH = "partner/{app_id}/notify"  # fault key for every partner, literally
APP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FAULT_PATH_RE = re.compile(r"^partner/[A-Za-z0-9_-]{1,64}/notify$")
HEADER_APP_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")  # compared with the URL's app id afterwards
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")
SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")
TOLERANCE_S = 300
MAX_SECRET = 256
MAX_EVENT_ID = 128
OUTCOMES = ("accepted", "duplicate", "rejected", "fault")

SCHEMA_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS partner_apps (
        app_id TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        previous_secret TEXT,              -- also accepted (a rotation's grace period); NULL: none
        updated_at REAL NOT NULL
    )""",
    # One row per event_id received in a correctly signed, well-formed delivery: what a partner
    # that deduplicates on event_id keeps.
    """CREATE TABLE IF NOT EXISTS partner_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order they were first received in
        app_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        data_json TEXT NOT NULL,
        received_at REAL NOT NULL,
        deliveries INTEGER NOT NULL DEFAULT 1, -- the checked deliveries that carried it
        UNIQUE (app_id, event_id)
    )""",
    # Every delivery attempt to a registered partner, whatever became of it.
    """CREATE TABLE IF NOT EXISTS partner_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL,
        event_id TEXT,                         -- as read from the body (unchecked when rejected)
        outcome TEXT NOT NULL,                 -- accepted | duplicate | rejected | fault
        reason TEXT,                           -- the error code, or INJECTED_FAULT
        detail TEXT,
        http_status INTEGER NOT NULL,          -- the status sent; 0: no reply
        secret_used TEXT,                      -- 'secret' | 'previous_secret' when the signature matched
        at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS partner_deliveries_by_app ON partner_deliveries (app_id, id)",
    """CREATE TABLE IF NOT EXISTS partner_nonces (
        app_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (app_id, nonce)
    )""",
)


def with_schema(seed: Callable[[Tx], Awaitable[None]] | None) -> Callable[[Tx], Awaitable[None]]:
    """A :class:`State` seed that creates the partner tables (if missing), then runs ``seed``.

    The seed runs in one ``BEGIN IMMEDIATE`` transaction each time a process opens the state file,
    so every worker process finds the tables, whichever opened the file first."""

    async def seeded(tx: Tx) -> None:
        for statement in SCHEMA_STATEMENTS:
            await tx.execute(statement)
        if seed is not None:
            await seed(tx)

    return seeded


def fault_key(app_id: str) -> str:
    """The fault and call-log key of one partner's callback."""
    return f"partner/{app_id}/notify"


def is_fault_path(path: str) -> bool:
    """Whether ``path`` (normalised) is a partner fault key: one partner's or every partner's."""
    return path == ANY_PARTNER_FAULT_PATH or bool(FAULT_PATH_RE.fullmatch(path))


def callback_path(app_id: str) -> str:
    return f"/sandbox/partner/{app_id}/notify"


# -- the signature, from docs/open-api.md --------------------------------------------------------


def canonical_query(query: str) -> str:
    """CANONICAL_QUERY of the doc: split on ``&``, each part on the first ``=``; percent-decode
    names and values as UTF-8 (``+`` is a space); sort by name, then value (code points);
    percent-encode again escaping every byte but ``A-Z a-z 0-9 - _ . ~``; join ``name=value``
    with ``&``. Empty when there is no query. Raises ``UnicodeDecodeError`` for a query that does
    not decode as UTF-8."""
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        if not part:  # an empty part (``a=1&&b=2``, a trailing ``&``) is no parameter
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name, errors="strict"), unquote_plus(value, errors="strict")))
    pairs.sort()
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)


def string_to_sign(method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join(
        (method.upper(), path, canonical_query(query), timestamp, nonce, hashlib.sha256(body).hexdigest())
    )


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


# -- checking a delivery ---------------------------------------------------------------------------


class Rejection(Exception):
    """A delivery the partner refuses: HTTP ``status`` with ``{"error": code, "message", ...extra}``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


def _header(request: Request, name: str, pattern: re.Pattern[str]) -> str:
    value = request.headers.get(name)
    if value is None or not pattern.fullmatch(value):
        raise Rejection(401, "AUTH_HEADER_INVALID", f"{name} is missing or malformed", field=name)
    return value


def check_signature(request: Request, app_id: str, partner: Any, now: float) -> tuple[str, str]:
    """Steps 1-4 of the module docstring; returns (the nonce, which secret matched)."""
    header_app_id = _header(request, "X-App-Id", HEADER_APP_ID_RE)
    timestamp = _header(request, "X-Timestamp", TIMESTAMP_RE)
    nonce = _header(request, "X-Nonce", NONCE_RE)
    signature = _header(request, "X-Signature", SIGNATURE_RE)
    if header_app_id != app_id:
        raise Rejection(401, "APP_ID_MISMATCH", f"X-App-Id {header_app_id!r} is not the app id of this callback URL")
    skew = now - int(timestamp)
    if abs(skew) > TOLERANCE_S:
        raise Rejection(
            401, "TIMESTAMP_OUT_OF_RANGE",
            f"X-Timestamp is {abs(skew):.0f} s {'behind' if skew > 0 else 'ahead of'} the partner's clock "
            f"(at most {TOLERANCE_S} s allowed)",
        )
    try:
        # the request line's path and query exactly as sent (Sanic does not decode them)
        signed = string_to_sign(request.method, request.path, request.query_string, timestamp, nonce, request.body or b"")
    except UnicodeDecodeError:
        raise Rejection(401, "SIGNATURE_INVALID", "the query string does not percent-decode as UTF-8") from None
    candidates = [("secret", partner["secret"])]
    if partner["previous_secret"]:
        candidates.append(("previous_secret", partner["previous_secret"]))
    matched = None
    for name, secret in candidates:  # every candidate is computed and compared: no early exit
        if hmac.compare_digest(hmac_hex(secret, signed).encode(), signature.encode()) and matched is None:
            matched = name
    if matched is None:
        raise Rejection(
            401, "SIGNATURE_INVALID",
            "X-Signature matches neither the partner's secret nor its previous secret",
            string_to_sign=signed,
        )
    return nonce, matched


@dataclass(frozen=True)
class Event:
    event_id: str
    type: str
    occurred_at: str
    data: dict[str, Any]


def _invalid_body(field: str | None, message: str) -> Rejection:
    extra = {"field": field} if field else {}
    return Rejection(400, "INVALID_BODY", message, **extra)


def parse_event(body: bytes) -> Event:
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        raise _invalid_body(None, "body must be a JSON object") from None
    if not isinstance(data, dict):
        raise _invalid_body(None, "body must be a JSON object")
    event_id = data.get("event_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_EVENT_ID:
        raise _invalid_body("event_id", f"event_id must be a non-empty string of at most {MAX_EVENT_ID} characters")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise _invalid_body("type", "type must be a non-empty string")
    occurred_at = data.get("occurred_at")
    if not isinstance(occurred_at, str) or not _is_datetime_with_offset(occurred_at):
        raise _invalid_body("occurred_at", "occurred_at must be an ISO 8601 date-time with a UTC offset")
    payload = data.get("data")
    if not isinstance(payload, dict):
        raise _invalid_body("data", "data must be a JSON object")
    return Event(event_id, kind, occurred_at, payload)


def _is_datetime_with_offset(value: str) -> bool:
    if "T" not in value:
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _event_id_hint(body: bytes) -> str | None:
    """The event_id a delivery claims to carry, read without any check (for the delivery log)."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    event_id = data.get("event_id") if isinstance(data, dict) else None
    return event_id if isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID else None


# -- the state -------------------------------------------------------------------------------------


async def _record_delivery(
    db: State | Tx, app_id: str, event_id: str | None, outcome: str, reason: str | None, detail: str | None,
    http_status: int, secret_used: str | None = None,
) -> None:
    await db.execute(
        "INSERT INTO partner_deliveries (app_id, event_id, outcome, reason, detail, http_status, secret_used, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (app_id, event_id, outcome, reason, detail, http_status, secret_used, time.time()),
    )


def _reply_after(fault: Fault | None, status: int) -> tuple[int, bool]:
    """The status actually sent once an ``after`` fault spoiled a reply of ``status`` (0: none),
    and whether the fault changed it."""
    if fault is None or fault.when != "after":
        return status, False
    if fault.drop:
        return 0, True
    reply = fault_reply(fault)
    if reply is not None:
        return reply.status, True
    return status, False  # only a delay


def _fault_detail(fault: Fault, status: int) -> str:
    if fault.drop:
        what = "closed the connection without a reply"
    elif fault.body is not None:
        what = "replied HTTP 200 with the fault's body"
    else:
        what = f"replied HTTP {status}"
    delay = f" after {fault.delay_s:g} s" if fault.delay_s else ""
    return f"injected fault ({fault.when}){delay}: {what}"


async def deliver(
    state: State, request: Request, app_id: str, partner: Any, after: Fault | None
) -> HTTPResponse:
    """Check a delivery, store its event once, record the delivery (what the reply will be after
    the ``after`` fault included), all in one transaction; return the partner's own reply."""
    now = time.time()
    body = request.body or b""
    hint = _event_id_hint(body)
    try:
        nonce, secret_used = check_signature(request, app_id, partner, now)
    except Rejection as exc:
        sent, spoiled = _reply_after(after, exc.status)
        outcome, reason, detail = "rejected", exc.code, exc.message
        if spoiled:
            outcome, reason = "fault", "INJECTED_FAULT"
            detail = f"rejected ({exc.code}: {exc.message}), then {_fault_detail(after, sent)}"
        elif exc.code == "SIGNATURE_INVALID" and "string_to_sign" in exc.extra:
            detail = f"{exc.message}; the partner signed {exc.extra['string_to_sign']!r}"
        await _record_delivery(state, app_id, hint, outcome, reason, detail, sent)
        return json_response(exc.body(), status=exc.status, dumps=dumps)

    async with state.tx() as tx:
        spent = await tx.execute(
            "INSERT OR IGNORE INTO partner_nonces (app_id, nonce, at) VALUES (?, ?, ?)", (app_id, nonce, now)
        )
        try:
            if not spent:
                raise Rejection(409, "NONCE_REUSED", "this X-Nonce was already used by a delivery to this partner")
            event = parse_event(body)
        except Rejection as exc:
            sent, spoiled = _reply_after(after, exc.status)
            outcome, reason, detail = "rejected", exc.code, exc.message
            if spoiled:
                outcome, reason = "fault", "INJECTED_FAULT"
                detail = f"rejected ({exc.code}: {exc.message}), then {_fault_detail(after, sent)}"
            await _record_delivery(tx, app_id, hint, outcome, reason, detail, sent, secret_used)
            response = json_response(exc.body(), status=exc.status, dumps=dumps)
        else:
            inserted = await tx.execute(
                "INSERT OR IGNORE INTO partner_events "
                "(app_id, event_id, type, occurred_at, data_json, received_at, deliveries) VALUES (?, ?, ?, ?, ?, ?, 1)",
                (app_id, event.event_id, event.type, event.occurred_at, dumps(event.data), now),
            )
            detail = None
            if not inserted:
                stored = await tx.fetchone(
                    "UPDATE partner_events SET deliveries = deliveries + 1 WHERE app_id = ? AND event_id = ? "
                    "RETURNING type, occurred_at, data_json",
                    (app_id, event.event_id),
                )
                differs = [
                    name
                    for name, old, new in (
                        ("type", stored["type"], event.type),
                        ("occurred_at", stored["occurred_at"], event.occurred_at),
                        ("data", json.loads(stored["data_json"]), event.data),
                    )
                    if old != new
                ]
                if differs:
                    detail = f"redelivery differs from the stored event in: {', '.join(differs)} (the stored one is kept)"
            outcome = "accepted" if inserted else "duplicate"
            sent, spoiled = _reply_after(after, 200)
            reason = None
            if spoiled:
                stored_now = "event stored" if inserted else "event already stored"
                detail = f"{outcome} ({stored_now}), then {_fault_detail(after, sent)}"
                outcome, reason = "fault", "INJECTED_FAULT"
            await _record_delivery(tx, app_id, event.event_id, outcome, reason, detail, sent, secret_used)
            response = json_response(
                {"ok": True, "event_id": event.event_id, "duplicate": not inserted}, dumps=dumps
            )
    return response


# -- the control API's side (routes in sandbox.control) -------------------------------------------


class RegistrationBody(Body):
    """A ``POST partners`` body."""

    app_id: str = Field(pattern=APP_ID_RE.pattern, description="app_id must be 1-64 characters of A-Z a-z 0-9 _ -")
    secret: str = Field(min_length=1, max_length=MAX_SECRET,
                        description=f"secret must be a non-empty string of at most {MAX_SECRET} characters")
    previous_secret: str | None = Field(
        None, min_length=1, max_length=MAX_SECRET,
        description=f"previous_secret must be a non-empty string of at most {MAX_SECRET} characters")


async def register(state: State, app_id: str, secret: str, previous_secret: str | None) -> dict[str, Any]:
    """Create the partner or replace its secrets (its records stay)."""
    await state.execute(
        "INSERT INTO partner_apps (app_id, secret, previous_secret, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (app_id) DO UPDATE SET secret = excluded.secret, previous_secret = excluded.previous_secret, "
        "updated_at = excluded.updated_at",
        (app_id, secret, previous_secret, time.time()),
    )
    return {"app_id": app_id, "previous_secret": previous_secret is not None, "callback_path": callback_path(app_id)}


async def known(state: State, app_id: str) -> bool:
    return await state.fetchone("SELECT 1 FROM partner_apps WHERE app_id = ?", (app_id,)) is not None


async def notifications(state: State, app_id: str) -> list[dict[str, Any]]:
    rows = await state.fetchall(
        "SELECT event_id, type, occurred_at, data_json, received_at, deliveries FROM partner_events "
        "WHERE app_id = ? ORDER BY id",
        (app_id,),
    )
    return [
        {
            "event_id": r["event_id"],
            "type": r["type"],
            "occurred_at": r["occurred_at"],
            "data": json.loads(r["data_json"]),
            "received_at": r["received_at"],
            "deliveries": r["deliveries"],
        }
        for r in rows
    ]


async def deliveries(state: State, app_id: str) -> list[dict[str, Any]]:
    rows = await state.fetchall(
        "SELECT at, event_id, outcome, reason, detail, http_status, secret_used FROM partner_deliveries "
        "WHERE app_id = ? ORDER BY id",
        (app_id,),
    )
    return [dict(r) for r in rows]


async def reset(state: State, app_id: str) -> dict[str, int]:
    """Forget what the partner received (events, deliveries, spent nonces); its secrets stay."""
    async with state.tx() as tx:
        events = await tx.execute("DELETE FROM partner_events WHERE app_id = ?", (app_id,))
        sent = await tx.execute("DELETE FROM partner_deliveries WHERE app_id = ?", (app_id,))
        await tx.execute("DELETE FROM partner_nonces WHERE app_id = ?", (app_id,))
    return {"notifications": events, "deliveries": sent}


# -- the emulator ----------------------------------------------------------------------------------


def create_partner_blueprint(config: SandboxConfig, state: State) -> Blueprint:
    bp = Blueprint("sandbox_partner", url_prefix="/partner")

    async def notify(request: Request, app_id: str) -> HTTPResponse:
        key = fault_key(app_id)
        partner = await state.fetchone("SELECT secret, previous_secret FROM partner_apps WHERE app_id = ?", (app_id,))
        if partner is None:
            await state.record_call(key, None, 404)
            return json_response(
                {"error": "UNKNOWN_PARTNER",
                 "message": "no partner with this app id; register it with POST /sandbox/control/partners"},
                status=404, dumps=dumps,
            )
        fault = await state.take_fault(key) or await state.take_fault(ANY_PARTNER_FAULT_PATH)
        response: HTTPResponse | None = None
        if fault is not None and fault.when == "before":
            if fault.delay_s:
                try:
                    await asyncio.sleep(float(fault.delay_s))
                except asyncio.CancelledError:  # the bank gave up waiting
                    await asyncio.shield(_record_delivery(
                        state, app_id, _event_id_hint(request.body or b""), "fault", "INJECTED_FAULT",
                        f"the sender hung up during an injected delay of {fault.delay_s:g} s", 0,
                    ))
                    raise
            response = fault_reply(fault)
            if response is not None or fault.drop:
                sent = 0 if fault.drop else response.status
                await _record_delivery(
                    state, app_id, _event_id_hint(request.body or b""), "fault", "INJECTED_FAULT",
                    _fault_detail(fault, sent), sent,
                )
        handled = response is not None or (fault is not None and fault.when == "before" and fault.drop)
        if not handled:
            try:
                response = await deliver(state, request, app_id, partner, fault)
            except Exception:
                log.exception("sandbox partner failed")
                response = json_response({"error": "INTERNAL", "message": "sandbox partner failed"}, status=500)
                await _record_delivery(state, app_id, None, "rejected", "INTERNAL", "the emulator failed", 500)
            if fault is not None and fault.when == "after":
                response = fault_reply(fault) or response
        dropped = fault is not None and fault.drop
        await state.record_call(key, None, 0 if dropped or response is None else response.status)
        if fault is not None and fault.when == "after" and fault.delay_s:
            await asyncio.sleep(float(fault.delay_s))
        if dropped or response is None:
            drop_connection(request)
            return HTTPResponse(status=204)
        return response

    state.api_paths.add(ANY_PARTNER_FAULT_PATH)
    bp.add_route(notify, "/<app_id>/notify", methods=["POST"], name="notify")
    return bp


# -- control routes: the partners it stands for, and what they received --------------------------


def add_control_routes(routes: ControlRoutes, state: State) -> None:
    route = routes.route

    @route("/partners", ["POST"])
    async def partners_add(request: Request) -> HTTPResponse:
        body = parse(RegistrationBody, request)
        return answer(await register(state, body.app_id, body.secret, body.previous_secret), status=201)

    async def known_partner(app_id: str) -> None:
        if not await known(state, app_id):
            raise not_found("unknown app_id; register it with POST partners")

    @route("/partners/<app_id>/notifications", ["GET"])
    async def partner_notifications(request: Request, app_id: str) -> HTTPResponse:
        await known_partner(app_id)
        return answer({"notifications": await notifications(state, app_id)})

    @route("/partners/<app_id>/notifications", ["DELETE"])
    async def partner_reset(request: Request, app_id: str) -> HTTPResponse:
        await known_partner(app_id)
        return answer(await reset(state, app_id))

    @route("/partners/<app_id>/deliveries", ["GET"])
    async def partner_deliveries(request: Request, app_id: str) -> HTTPResponse:
        await known_partner(app_id)
        return answer({"deliveries": await deliveries(state, app_id)})
