"""Emulated bank-card network, mounted at ``/sandbox/cardnet``: the element check (同名卡 / 四要素
verification) and money movement to and from a card (transfers).

Not a WeChat API: a generic card-network style JSON API, as specified for this project.

``POST /sandbox/cardnet/v1/verify-elements`` with ``Authorization: Bearer <key>``
(key in ``SandboxConfig.cardnet_keys``, else HTTP 401 ``{"code":"UNAUTHORIZED","message"}``) and JSON
``{"request_id","name","id_number","card_number","phone"}`` (a missing or non-string field, or a
card_number that is not 12-19 digits passing the Luhn check, → HTTP 400
``{"code":"INVALID_REQUEST","message","field"}``: a real network refuses a number that cannot be a
card before looking it up) → HTTP 200
``{"request_id","result":"MATCH"|"MISMATCH"|"CARD_NOT_FOUND","mismatched_fields":[...],
"card_class":"I"|"II"|"III"|"credit"|null,"bank_name":"沙箱银行"}``.

Cards come from ``POST /sandbox/control/bank-cards``. Names compare after trimming, ID numbers
ignoring the case of a final X. Idempotent per request_id: the first answer is stored and returned
again for the same request_id, whatever the body of the repeat.

Transfers: ``POST /sandbox/cardnet/v1/transfers`` (same Bearer key) with JSON ``{"request_id" (≤ 64),
"card_number", "direction": "debit"|"credit", "amount_fen": 1..10**12, "memo"?: ≤ 64}`` → HTTP 200
``{"request_id","status":"SUCCEEDED"|"DECLINED","reason":null|"INSUFFICIENT_FUNDS"|"CARD_BLOCKED"|
"CARD_NOT_FOUND","amount_fen","direction","card_balance_fen"}``. ``debit`` takes the amount from the
card (the backend pulls money: a top-up of the user's account), ``credit`` adds it (a withdrawal to
the card). ``card_balance_fen`` is the card's balance after the transfer (unchanged when declined),
null when the card is unknown. Checks in order: unknown card, blocked card, then (debit only) a
balance lower than the amount. The same malformed-input answers as verify-elements (field named);
``amount_fen`` must be an integer, not a bool, and ``memo`` a string.

Idempotent per request_id, as a real network is, because the backend must be able to repeat a pull
whose reply it never saw without pulling twice: the first answer (declined ones too) is stored and
returned again for a repeat with the same card_number, direction and amount_fen (memo is not
compared); the same request_id with another of those → HTTP 409 ``{"code":"REQUEST_ID_REUSED",
"message"}``. The look-up of the request_id, the balance change and the stored answer are one
``BEGIN IMMEDIATE`` transaction (:func:`execute_transfer`), so concurrent duplicates, in one process
or several, move money once. Transfers and verify-elements keep separate request_id spaces.

``GET /sandbox/cardnet/v1/transfers/{request_id}`` (same Bearer key; the request_id percent-encoded as
one path segment) → HTTP 200 the stored answer, or
HTTP 404 ``{"code":"NOT_FOUND","message"}`` when that request_id never reached the network: how the
backend resolves a timeout (ask, never pull again under a new request_id).

Both request bodies are pydantic models (:class:`ElementsRequest`, :class:`TransferRequest`) read by
the control API's :func:`sandbox.control_kit.validate` (strict types; fields not declared ignored),
its refusal turned into this API's own 400 by :func:`parse_body`.

Errors of this API are all ``{"code","message","field"?}`` with codes ``UNAUTHORIZED`` (401),
``INVALID_REQUEST`` (400), ``REQUEST_ID_REUSED`` (409), ``NOT_FOUND`` (404) and ``INTERNAL`` (500).

Faults (``POST /sandbox/control/faults``) are keyed by path: ``cardnet/v1/verify-elements``,
``cardnet/v1/transfers`` (the POST) and ``cardnet/v1/transfers/{request_id}`` (the GET query,
literally with ``{request_id}``: one key for every request_id). They work as for the WeChat APIs
(``when`` before/after, ``delay_s``, ``http_status`` with a plain-text body, ``body``, ``drop``; see
:mod:`sandbox.wxcommon`), except ``errcode``: WeChat errcodes do not apply here. With ``when:
"after"`` the answer is computed and stored (for a transfer: the money moved and committed) before
the reply is spoiled, so a retry with the same request_id, or the GET query, gets it. With ``when:
"before"`` nothing is done unless the fault only delays; a client that gives up during such a delay
has moved nothing (Sanic cancels the handler when the connection goes).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json as json_response

from sandbox.config import SandboxConfig
from sandbox.control_kit import (
    PHONE_RE, B, Body, ControlError, ControlRoutes, LenientBody, answer, bad, not_found, parse, validate,
)
from sandbox.ocr import ID_RE
from sandbox.state import State
from sandbox.wxcommon import dumps, serve_with_fault

log = logging.getLogger("sandbox.cardnet")

PATH = "cardnet/v1/verify-elements"
TRANSFER_PATH = "cardnet/v1/transfers"
TRANSFER_QUERY_PATH = "cardnet/v1/transfers/{request_id}"  # fault/call-log key of the GET query
BANK_NAME = "沙箱银行"
CARD_RE = re.compile(r"^\d{12,19}$")
MAX_AMOUNT_FEN = 10**12
MAX_MEMO = 64


def luhn_ok(number: str) -> bool:
    """The Luhn (mod 10) check every bank card number carries in its last digit (ISO/IEC 7812-1)."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        digit = int(ch)
        if i % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def card_number_ok(number: str) -> bool:
    return bool(CARD_RE.fullmatch(number)) and luhn_ok(number)


def _error(status: int, code: str, message: str, field: str | None = None) -> HTTPResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return json_response(body, status=status, dumps=dumps)


class CardnetError(Exception):
    """Raised inside a card-network handler to answer the error body with ``status``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self) -> HTTPResponse:
        return _error(self.status, self.code, self.message, self.field)


def _authorised(config: SandboxConfig, header: str | None) -> bool:
    if not header:
        return False
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return False
    key_b = key.strip().encode()
    found = False
    for candidate in config.cardnet_keys:
        found |= hmac.compare_digest(candidate.encode(), key_b)
    return found


def decide(card: Any, request: ElementsRequest) -> dict[str, Any]:
    if card is None:
        return {
            "request_id": request.request_id,
            "result": "CARD_NOT_FOUND",
            "mismatched_fields": [],
            "card_class": None,
            "bank_name": BANK_NAME,
        }
    mismatched = []
    if card["name"].strip() != request.name.strip():
        mismatched.append("name")
    if card["id_number"].upper() != request.id_number.strip().upper():
        mismatched.append("id_number")
    if card["phone"] != request.phone.strip():
        mismatched.append("phone")
    return {
        "request_id": request.request_id,
        "result": "MISMATCH" if mismatched else "MATCH",
        "mismatched_fields": mismatched,
        "card_class": card["card_class"],
        "bank_name": BANK_NAME,
    }


def _not_blank(value: str, field: str) -> str:
    if not value.strip():
        raise ValueError(f"{field} is required and must be a string")
    return value


def _some_text(value: str, info: ValidationInfo) -> str:
    return _not_blank(value, str(info.field_name))


def _request_id(value: str) -> str:
    if len(_not_blank(value, "request_id")) > 64:
        raise ValueError("request_id is at most 64 characters")
    return value


def _card_number(value: str) -> str:
    """The number, trimmed, if it can be a card's."""
    if not card_number_ok(_not_blank(value, "card_number").strip()):
        raise ValueError("card_number must be 12-19 digits passing the Luhn check")
    return value.strip()


def _required_field(field: str) -> Any:
    return Field(description=f"{field} is required and must be a string")


class ElementsRequest(LenientBody):
    """An element check as the backend sends it (``POST v1/verify-elements``); fields it does not
    declare are ignored. ``name``, ``id_number`` and ``phone`` are kept as sent (:func:`decide`
    compares them trimmed)."""

    request_id: str = _required_field("request_id")
    name: str = _required_field("name")
    id_number: str = _required_field("id_number")
    card_number: str = _required_field("card_number")
    phone: str = _required_field("phone")

    a_request_id = field_validator("request_id")(_request_id)
    some_text = field_validator("name", "id_number", "phone")(_some_text)
    a_card_number = field_validator("card_number")(_card_number)


class TransferRequest(LenientBody):
    """A transfer as the backend sends it (``POST v1/transfers``); fields it does not declare are
    ignored, as verify-elements ignores them."""

    request_id: str = _required_field("request_id")
    card_number: str = _required_field("card_number")
    direction: Literal["debit", "credit"] = Field(description="direction must be 'debit' or 'credit'")
    amount_fen: int = Field(ge=1, le=MAX_AMOUNT_FEN, description=f"amount_fen must be an integer in [1, {MAX_AMOUNT_FEN}]")
    memo: str | None = Field(None, max_length=MAX_MEMO, description=f"memo must be a string of at most {MAX_MEMO} characters")

    a_request_id = field_validator("request_id")(_request_id)
    a_card_number = field_validator("card_number")(_card_number)


def _invalid(field: str | None, message: str) -> CardnetError:
    return CardnetError(400, "INVALID_REQUEST", message, field)


def json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        raise _invalid(None, "body must be a JSON object") from None
    if not isinstance(data, dict):
        raise _invalid(None, "body must be a JSON object")
    return data


def parse_body(model: type[B], request: Request) -> B:
    """The request's JSON body as a ``model``, or :class:`CardnetError` 400 naming the first bad
    field: the card network's own error, in the same shape as the control API's. An empty body is
    not an object here (the control API reads it as ``{}``)."""
    try:
        return validate(model, json_object(request))
    except ControlError as exc:
        raise _invalid(exc.field, exc.message) from None


def decline_reason(card: Any, transfer: TransferRequest) -> str | None:
    """Why the network refuses the transfer (None: it goes through), checked in this order."""
    if card is None:
        return "CARD_NOT_FOUND"
    if card["blocked"]:
        return "CARD_BLOCKED"
    if transfer.direction == "debit" and card["balance_fen"] < transfer.amount_fen:
        return "INSUFFICIENT_FUNDS"
    return None


async def execute_transfer(state: State, transfer: TransferRequest) -> dict[str, Any] | None:
    """Do the transfer once per request_id and return its answer; None when the request_id was
    already used for another card, direction or amount.

    One ``BEGIN IMMEDIATE`` transaction: the request_id look-up, the balance change and the stored
    answer commit together or not at all, and the write lock taken up front makes a concurrent
    duplicate (from this process or another) wait and then find the stored answer, so the money
    moves exactly once."""
    async with state.tx() as tx:
        prior = await tx.fetchone(
            "SELECT card_number, direction, amount_fen, response_json FROM cardnet_transfers WHERE request_id = ?",
            (transfer.request_id,),
        )
        if prior is not None:
            same = (prior["card_number"], prior["direction"], prior["amount_fen"]) == (
                transfer.card_number, transfer.direction, transfer.amount_fen)
            return json.loads(prior["response_json"]) if same else None
        card = await tx.fetchone(
            "SELECT balance_fen, blocked FROM bank_cards WHERE card_number = ?", (transfer.card_number,)
        )
        reason = decline_reason(card, transfer)
        balance = None if card is None else card["balance_fen"]
        if reason is None:
            delta = transfer.amount_fen if transfer.direction == "credit" else -transfer.amount_fen
            row = await tx.fetchone(
                "UPDATE bank_cards SET balance_fen = balance_fen + ? WHERE card_number = ? RETURNING balance_fen",
                (delta, transfer.card_number),
            )
            balance = row["balance_fen"]
        answer = {
            "request_id": transfer.request_id,
            "status": "SUCCEEDED" if reason is None else "DECLINED",
            "reason": reason,
            "amount_fen": transfer.amount_fen,
            "direction": transfer.direction,
            "card_balance_fen": balance,
        }
        await tx.execute(
            "INSERT INTO cardnet_transfers (request_id, card_number, direction, amount_fen, memo, status, reason, "
            "response_json, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (transfer.request_id, transfer.card_number, transfer.direction, transfer.amount_fen, transfer.memo,
             answer["status"], reason, dumps(answer), time.time()),
        )
    return answer


def create_cardnet_blueprint(config: SandboxConfig, state: State) -> Blueprint:
    bp = Blueprint("sandbox_cardnet", url_prefix="/cardnet")

    async def _verify(request: Request) -> HTTPResponse:
        elements = parse_body(ElementsRequest, request)
        previous = await state.fetchone(
            "SELECT response_json FROM cardnet_requests WHERE request_id = ?", (elements.request_id,)
        )
        if previous is not None:
            return json_response(json.loads(previous["response_json"]), dumps=dumps)
        card = await state.fetchone("SELECT * FROM bank_cards WHERE card_number = ?", (elements.card_number,))
        answer = decide(card, elements)
        # First writer wins; a concurrent duplicate then reads the stored answer.
        await state.execute(
            "INSERT OR IGNORE INTO cardnet_requests (request_id, response_json, at) VALUES (?, ?, ?)",
            (elements.request_id, dumps(answer), time.time()),
        )
        stored = await state.fetchone(
            "SELECT response_json FROM cardnet_requests WHERE request_id = ?", (elements.request_id,)
        )
        return json_response(json.loads(stored["response_json"]), dumps=dumps)

    async def guarded(request: Request, impl, *args: Any) -> HTTPResponse:
        """Bearer check, then ``impl``; its :class:`CardnetError` becomes the error body."""
        try:
            if not _authorised(config, request.headers.get("authorization")):
                raise CardnetError(401, "UNAUTHORIZED", "missing or unknown bearer key")
            return await impl(request, *args)
        except CardnetError as exc:
            return exc.response()
        except Exception:  # noqa: BLE001
            log.exception("sandbox cardnet failed")
            return _error(500, "INTERNAL", "sandbox card network failed")

    async def _transfer(request: Request) -> HTTPResponse:
        transfer = parse_body(TransferRequest, request)
        answer = await execute_transfer(state, transfer)
        if answer is None:
            raise CardnetError(
                409, "REQUEST_ID_REUSED",
                "request_id was already used for another card_number, direction or amount_fen",
            )
        return json_response(answer, dumps=dumps)

    async def _transfer_query(request: Request, request_id: str) -> HTTPResponse:
        row = await state.fetchone(
            "SELECT response_json FROM cardnet_transfers WHERE request_id = ?", (request_id,)
        )
        if row is None:
            raise CardnetError(404, "NOT_FOUND", "no transfer with this request_id was received")
        return json_response(json.loads(row["response_json"]), dumps=dumps)

    async def verify(request: Request) -> HTTPResponse:
        return await serve_with_fault(state, request, PATH, lambda: guarded(request, _verify), errcodes=False)

    async def transfer(request: Request) -> HTTPResponse:
        return await serve_with_fault(
            state, request, TRANSFER_PATH, lambda: guarded(request, _transfer), errcodes=False
        )

    async def transfer_query(request: Request, request_id: str) -> HTTPResponse:
        return await serve_with_fault(
            state, request, TRANSFER_QUERY_PATH, lambda: guarded(request, _transfer_query, request_id), errcodes=False
        )

    state.api_paths.update((PATH, TRANSFER_PATH, TRANSFER_QUERY_PATH))
    bp.add_route(verify, "/v1/verify-elements", methods=["POST"], name="verify_elements")
    bp.add_route(transfer, "/v1/transfers", methods=["POST"], name="transfers")
    # unquote: the request_id is one percent-encoded path segment (a "/" in it travels as %2F)
    bp.add_route(transfer_query, "/v1/transfers/<request_id>", methods=["GET"], name="transfer_query", unquote=True)
    return bp


# -- control routes: the cards the network knows, and the transfers it answered ------------------

MAX_BALANCE_FEN = 10**15
CARD_COLUMNS = "card_number, name, card_class, balance_fen, blocked"
TRANSFER_COLUMNS = "request_id, card_number, direction, amount_fen, memo, status, reason, at"


class BankCardBody(LenientBody):
    card_number: str = Field(description="card_number must be 12-19 digits passing the Luhn check")
    name: str = Field(max_length=32, description="name must be a non-empty string")
    id_number: str = Field(pattern=ID_RE.pattern, description="id_number must be 17 digits followed by a digit or X")
    phone: str = Field(pattern=PHONE_RE.pattern, description="phone must match ^1[3-9]\\d{9}$")
    card_class: Literal["I", "II", "III", "credit"] = Field(description="card_class must be one of I, II, III, credit")
    balance_fen: int = Field(0, ge=0, le=MAX_BALANCE_FEN, description=f"balance_fen must be an integer in [0, {MAX_BALANCE_FEN}]")

    @field_validator("card_number")
    @classmethod
    def a_card_number(cls, value: str) -> str:
        if not card_number_ok(value):
            raise bad("card_number", "card_number must be 12-19 digits passing the Luhn check")
        return value

    @field_validator("name")
    @classmethod
    def a_name(cls, value: str) -> str:
        if not value.strip():
            raise bad("name", "name must be a non-empty string")
        return value.strip()


class BalanceBody(Body):
    balance_fen: int = Field(ge=0, le=MAX_BALANCE_FEN, description=f"balance_fen must be an integer in [0, {MAX_BALANCE_FEN}]")


class BlockBody(Body):
    blocked: bool = Field(description="blocked must be true or false")


def card_state(row: Any) -> dict[str, Any]:
    """A card as the control API shows it (the full name: this is the sandbox)."""
    return {k: bool(row[k]) if k == "blocked" else row[k] for k in CARD_COLUMNS.split(", ")}


def add_control_routes(routes: ControlRoutes, state: State) -> None:
    route = routes.route

    @route("/bank-cards", ["POST"])
    async def bank_cards(request: Request) -> HTTPResponse:
        card = parse(BankCardBody, request)
        await state.execute(
            "INSERT INTO bank_cards (card_number, name, id_number, phone, card_class, balance_fen, updated_at, blocked) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (card_number) DO UPDATE SET name = excluded.name, "
            "id_number = excluded.id_number, phone = excluded.phone, card_class = excluded.card_class, "
            "balance_fen = excluded.balance_fen, updated_at = excluded.updated_at, blocked = 0",
            (card.card_number, card.name, card.id_number.upper(), card.phone, card.card_class, card.balance_fen,
             time.time()),
        )
        return answer({"card_number": card.card_number}, status=201)

    async def changed(card_number: str, column: str, value: int) -> HTTPResponse:
        # one statement: atomic against a transfer running in another process
        row = await state.fetchone(
            f"UPDATE bank_cards SET {column} = ?, updated_at = ? WHERE card_number = ? RETURNING {CARD_COLUMNS}",  # nosec B608
            (value, time.time(), card_number),
        )
        if row is None:
            raise not_found("unknown card_number; register it with POST bank-cards")
        return answer(card_state(row))

    @route("/bank-cards/<card_number>", ["GET"])
    async def bank_card_get(request: Request, card_number: str) -> HTTPResponse:
        row = await state.fetchone(f"SELECT {CARD_COLUMNS} FROM bank_cards WHERE card_number = ?", (card_number,))  # nosec B608
        if row is None:
            raise not_found("unknown card_number; register it with POST bank-cards")
        return answer(card_state(row))

    @route("/bank-cards/<card_number>/balance", ["POST"])
    async def bank_card_balance(request: Request, card_number: str) -> HTTPResponse:
        return await changed(card_number, "balance_fen", parse(BalanceBody, request).balance_fen)

    @route("/bank-cards/<card_number>/block", ["POST"])
    async def bank_card_block(request: Request, card_number: str) -> HTTPResponse:
        return await changed(card_number, "blocked", int(parse(BlockBody, request).blocked))

    @route("/transfers", ["GET"])
    async def transfers(request: Request) -> HTTPResponse:
        card_number = request.args.get("card_number")
        if card_number:
            rows = await state.fetchall(
                f"SELECT {TRANSFER_COLUMNS} FROM cardnet_transfers WHERE card_number = ? ORDER BY id", (card_number,)  # nosec B608
            )
        else:
            rows = await state.fetchall(f"SELECT {TRANSFER_COLUMNS} FROM cardnet_transfers ORDER BY id")  # nosec B608
        return answer({"transfers": [dict(r) for r in rows]})
