"""Emulated bank-card element-check network (同名卡 / 四要素 verification), mounted at ``/sandbox/cardnet``.

Not a WeChat API: a generic card-network style JSON API, as specified for this project.

``POST /sandbox/cardnet/v1/verify-elements`` with ``Authorization: Bearer <key>``
(key in ``SandboxConfig.cardnet_keys``, else HTTP 401 ``{"code":"UNAUTHORIZED","message"}``) and JSON
``{"request_id","name","id_number","card_number","phone"}`` (a missing or non-string field → HTTP 400
``{"code":"INVALID_REQUEST","message","field"}``) → HTTP 200
``{"request_id","result":"MATCH"|"MISMATCH"|"CARD_NOT_FOUND","mismatched_fields":[...],
"card_class":"I"|"II"|"III"|"credit"|null,"bank_name":"沙箱银行"}``.

Cards come from ``POST /sandbox/control/bank-cards``. Names compare after trimming, ID numbers
ignoring the case of a final X. Idempotent per request_id: the first answer is stored and returned
again for the same request_id, whatever the body of the repeat.

Faults (``POST /sandbox/control/faults`` with path ``cardnet/v1/verify-elements``) may delay and/or
answer an HTTP status with a plain-text body; WeChat errcodes do not apply here.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json as json_response

from sandbox.config import SandboxConfig
from sandbox.state import State
from sandbox.wxcommon import apply_fault, dumps

log = logging.getLogger("sandbox.cardnet")

PATH = "cardnet/v1/verify-elements"
BANK_NAME = "沙箱银行"
FIELDS = ("request_id", "name", "id_number", "card_number", "phone")


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
        response = await apply_fault(state, PATH)
        if response is None:
            try:
                response = await _verify(request)
            except Exception:  # noqa: BLE001
                log.exception("sandbox cardnet failed")
                response = _error(500, "INTERNAL", "sandbox card network failed")
        elif isinstance(response, dict):  # an errcode fault has no meaning here; treat as 500
            response = _error(500, "INTERNAL", "sandbox injected fault")
        await state.record_call(PATH, None, response.status)
        return response

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
