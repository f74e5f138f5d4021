"""Emulated bank-card element-check network (同名卡 / 四要素 verification), mounted at ``/sandbox/cardnet``.

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

Faults (``POST /sandbox/control/faults`` with path ``cardnet/v1/verify-elements``) work as for the
WeChat APIs (``when`` before/after, ``delay_s``, ``http_status`` with a plain-text body, ``body``,
``drop``; see :mod:`sandbox.wxcommon`), except ``errcode``: WeChat errcodes do not apply here. With
``when: "after"`` the answer is computed and stored for its request_id before the reply is spoiled,
so a retry with the same request_id gets it.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json as json_response

from sandbox.config import SandboxConfig
from sandbox.state import State
from sandbox.wxcommon import dumps, serve_with_fault

log = logging.getLogger("sandbox.cardnet")

PATH = "cardnet/v1/verify-elements"
BANK_NAME = "沙箱银行"
FIELDS = ("request_id", "name", "id_number", "card_number", "phone")
CARD_RE = re.compile(r"^\d{12,19}$")


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
    return bool(CARD_RE.match(number)) and luhn_ok(number)


def _error(status: int, code: str, message: str, field: str | None = None) -> HTTPResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return json_response(body, status=status, dumps=dumps)


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


def decide(card: Any, request: dict[str, str]) -> dict[str, Any]:
    if card is None:
        return {
            "request_id": request["request_id"],
            "result": "CARD_NOT_FOUND",
            "mismatched_fields": [],
            "card_class": None,
            "bank_name": BANK_NAME,
        }
    mismatched = []
    if card["name"].strip() != request["name"].strip():
        mismatched.append("name")
    if card["id_number"].upper() != request["id_number"].strip().upper():
        mismatched.append("id_number")
    if card["phone"] != request["phone"].strip():
        mismatched.append("phone")
    return {
        "request_id": request["request_id"],
        "result": "MISMATCH" if mismatched else "MATCH",
        "mismatched_fields": mismatched,
        "card_class": card["card_class"],
        "bank_name": BANK_NAME,
    }


def create_cardnet_blueprint(config: SandboxConfig, state: State) -> Blueprint:
    bp = Blueprint("sandbox_cardnet", url_prefix="/cardnet")

    async def verify(request: Request) -> HTTPResponse:
        async def work() -> HTTPResponse:
            try:
                return await _verify(request)
            except Exception:  # noqa: BLE001
                log.exception("sandbox cardnet failed")
                return _error(500, "INTERNAL", "sandbox card network failed")

        return await serve_with_fault(state, request, PATH, work, errcodes=False)

    async def _verify(request: Request) -> HTTPResponse:
        if not _authorised(config, request.headers.get("authorization")):
            return _error(401, "UNAUTHORIZED", "missing or unknown bearer key")
        try:
            data = json.loads(request.body or b"")
        except (ValueError, UnicodeDecodeError):
            return _error(400, "INVALID_REQUEST", "body must be a JSON object")
        if not isinstance(data, dict):
            return _error(400, "INVALID_REQUEST", "body must be a JSON object")
        for field in FIELDS:
            value = data.get(field)
            if not isinstance(value, str) or not value.strip():
                return _error(400, "INVALID_REQUEST", f"{field} is required and must be a string", field)
        request_id = data["request_id"]
        if len(request_id) > 64:
            return _error(400, "INVALID_REQUEST", "request_id is at most 64 characters", "request_id")
        if not card_number_ok(data["card_number"].strip()):
            return _error(
                400, "INVALID_REQUEST", "card_number must be 12-19 digits passing the Luhn check", "card_number"
            )
        previous = await state.fetchone(
            "SELECT response_json FROM cardnet_requests WHERE request_id = ?", (request_id,)
        )
        if previous is not None:
            return json_response(json.loads(previous["response_json"]), dumps=dumps)
        card = await state.fetchone(
            "SELECT * FROM bank_cards WHERE card_number = ?", (data["card_number"].strip(),)
        )
        answer = decide(card, data)
        # First writer wins; a concurrent duplicate then reads the stored answer.
        await state.execute(
            "INSERT OR IGNORE INTO cardnet_requests (request_id, response_json, at) VALUES (?, ?, ?)",
            (request_id, dumps(answer), time.time()),
        )
        stored = await state.fetchone(
            "SELECT response_json FROM cardnet_requests WHERE request_id = ?", (request_id,)
        )
        return json_response(json.loads(stored["response_json"]), dumps=dumps)

    state.api_paths.add(PATH)
    bp.add_route(verify, "/v1/verify-elements", methods=["POST"], name="verify_elements")
    return bp
