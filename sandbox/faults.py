"""Fault injection and the call log of every emulator, as control routes (``/sandbox/control``):

- ``POST faults {path, errcode?, http_status?, body?, drop?, delay_s?, when?: before|after, count?}``
  → 201; ``GET faults``; ``DELETE faults``. What a fault does: :mod:`sandbox.wxcommon`; partner
  callback keys ``partner/<app_id>/notify`` and ``partner/{app_id}/notify``: :mod:`sandbox.partner`.
- ``GET calls?path=`` → ``{"calls": [{path, errcode, http_status, at}]}``; ``DELETE calls``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from sanic import Request
from sanic.response import HTTPResponse

from sandbox import partner
from sandbox.control_kit import Body, ControlRoutes, answer, bad, parse
from sandbox.state import State
from sandbox.wxcommon import dumps, normalise_path

MAX_FAULT_BODY = 64 * 1024
NO_ERRCODES = ("cardnet/", "partner/", "wechatpay/")  # the APIs whose errors are not WeChat errcodes


class FaultBody(Body):
    path: str = Field(description="path is required")
    errcode: int | None = Field(None, ge=-(2**31), le=2**31 - 1,
                                description=f"errcode must be an integer in [{-(2**31)}, {2**31 - 1}]")
    http_status: int | None = Field(None, ge=400, le=599, description="http_status must be an integer in [400, 599]")
    body: dict[str, Any] | None = Field(None, description=f"body must be a JSON object of at most {MAX_FAULT_BODY} bytes")
    drop: bool = Field(False, description="drop must be true or false")
    delay_s: float | None = Field(None, gt=0, le=120, description="delay_s must be a number in (0, 120]")
    when: Literal["before", "after"] = Field("before", description="when must be 'before' or 'after'")
    count: int = Field(1, ge=1, le=100000, description="count must be an integer in [1, 100000]")

    @field_validator("path")
    @classmethod
    def known_path(cls, value: str, info: ValidationInfo) -> str:
        """The path as a fault key (``/sandbox/wechat/x`` → ``x``), one the emulators answer."""
        path = normalise_path(value)
        api_paths = info.context["api_paths"]
        if path not in api_paths and not partner.is_fault_path(path):
            raise bad("path", f"unknown API path; one of: {', '.join(sorted(api_paths))}, or partner/<app_id>/notify")
        return path

    @model_validator(mode="after")
    def one_reply(self) -> FaultBody:
        if self.body is not None and len(dumps(self.body)) > MAX_FAULT_BODY:
            raise bad("body", f"body must be a JSON object of at most {MAX_FAULT_BODY} bytes")
        replies = [name for name in ("errcode", "http_status", "body", "drop")
                   if getattr(self, name) not in (None, False)]
        if not replies and self.delay_s is None:
            raise bad(None, "give errcode, http_status, body or drop, and/or delay_s")
        if len(replies) > 1:
            raise bad(replies[1], "give only one of errcode, http_status, body and drop (delay_s may go with any)")
        if self.errcode is not None and self.path.startswith(NO_ERRCODES):
            raise bad("errcode", "the card network, partner callbacks and WeChat Pay have no errcodes; "
                                 "use http_status or body")
        if self.errcode == 0:
            raise bad("errcode", "errcode 0 is not a fault; use body to answer a success of your own")
        return self


def fault_row(r: Any) -> dict[str, Any]:
    return {
        **{k: r[k] for k in ("id", "path", "errcode", "http_status", "delay_s", "remaining")},
        "when": r["phase"],
        "drop": bool(r["drop_conn"]),
        "body": None if r["body_json"] is None else json.loads(r["body_json"]),
    }


def add_control_routes(routes: ControlRoutes, state: State) -> None:
    route = routes.route

    @route("/faults", ["POST"])
    async def faults_add(request: Request) -> HTTPResponse:
        f = parse(FaultBody, request, {"api_paths": state.api_paths})
        path = f.path
        body_json = None if f.body is None else dumps(f.body)
        async with state.tx() as tx:
            await tx.execute(
                "INSERT INTO faults (path, errcode, http_status, delay_s, remaining, created_at, phase, drop_conn, body_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (path, f.errcode, f.http_status, f.delay_s, f.count, time.time(), f.when, int(f.drop), body_json),
            )
            row = await tx.fetchone("SELECT last_insert_rowid() AS id")
        return answer(
            {"id": row["id"], "path": path, "errcode": f.errcode, "http_status": f.http_status, "body": f.body,
             "drop": f.drop, "delay_s": f.delay_s, "when": f.when, "count": f.count},
            status=201,
        )

    @route("/faults", ["GET"])
    async def faults_list(request: Request) -> HTTPResponse:
        rows = await state.fetchall("SELECT * FROM faults WHERE remaining > 0 ORDER BY id")
        return answer({"faults": [fault_row(r) for r in rows]})

    @route("/faults", ["DELETE"])
    async def faults_clear(request: Request) -> HTTPResponse:
        return answer({"deleted": await state.execute("DELETE FROM faults")})

    @route("/calls", ["GET"])
    async def calls(request: Request) -> HTTPResponse:
        path = request.args.get("path")
        if path:
            rows = await state.fetchall(
                "SELECT path, errcode, http_status, at FROM calls WHERE path = ? ORDER BY id", (normalise_path(path),)
            )
        else:
            rows = await state.fetchall("SELECT path, errcode, http_status, at FROM calls ORDER BY id")
        return answer({"calls": [dict(r) for r in rows]})

    @route("/calls", ["DELETE"])
    async def calls_clear(request: Request) -> HTTPResponse:
        return answer({"deleted": await state.execute("DELETE FROM calls")})
