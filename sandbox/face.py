"""Emulated face verification 2.0 (人脸核身 2.0): ``cityservice/face/identify/getverifyid`` and
``cityservice/face/identify/queryverifyinfo``.

WeChat docs:
- https://developers.weixin.qq.com/miniprogram/dev/server/API/face/api_getverifyid
- https://developers.weixin.qq.com/miniprogram/dev/server/API/face/api_queryverifyinfo
- cert_hash rule and worked example:
  https://developers.weixin.qq.com/miniprogram/dev/platform-capabilities/cityservice/face2/api_getfaceidentifyimage

The user's part (``wx.requestFacialVerify``) is played by ``POST /sandbox/control/face/{verify_id}``.

Errcodes chosen by the sandbox (WeChat does not document them for 2.0):
- 47001 "data format error": body not a JSON object; a required field missing or not a string
  (out_seq_no, openid, cert_info.cert_type/cert_name/cert_no; verify_id, out_seq_no, cert_hash
  and openid for the query).
- 47003 "argument invalid!": out_seq_no not ``^[A-Za-z0-9_-]{5,32}$``; out_seq_no already used on
  this appid ("out_seq_no duplicated"); cert_type other than IDENTITY_CARD; cert_no not 18
  characters; for the query: out_seq_no or openid not those of the verify_id ("... not match
  verify_id"), or cert_hash not exactly the lowercase-hex hash of the cert_info given to getverifyid
  ("cert_hash not match"; upper-case hex is refused too).
- 40003 "invalid openid": openid never seen on this appid (no login code was minted for it).
- 84001 "invalid verify_id": unknown verify_id, or one issued to another appid.
- 84002 "verify_id expired": queried more than ``expires_in`` (3600 s) after getverifyid.

verify_ret: 10000 passed; failed → the 9xxxx/1xxxx code set through the control API (default
90004); **90100 (sandbox only) = the user has not completed verification yet**.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import sqlite3
import time
from typing import Any, Literal

from pydantic import Field, model_validator
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from sandbox.control_kit import ControlRoutes, LenientBody, answer, bad, not_found, parse

from sandbox.state import State
from sandbox.wxcommon import WxError, add_wechat_api, ok, parse_json_body, require_str

VERIFY_TTL = 3600
OUT_SEQ_RE = re.compile(r"^[A-Za-z0-9_-]{5,32}$")
VERIFY_PASSED = 10000
VERIFY_FAILED_DEFAULT = 90004
VERIFY_PENDING = 90100


def cert_hash(cert_type: str, cert_name: str, cert_no: str) -> str:
    """sha256_hex("cert_type=" + b64(type) + "&cert_name=" + b64(name) + "&cert_no=" + b64(no))."""

    def b64(value: str) -> str:
        return base64.b64encode(value.encode("utf-8")).decode("ascii")

    joined = f"cert_type={b64(cert_type)}&cert_name={b64(cert_name)}&cert_no={b64(cert_no)}"
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


def register(bp: Blueprint, state: State) -> None:
    async def getverifyid(request: Request, appid: str) -> dict[str, Any]:
        data = parse_json_body(request)
        out_seq_no = require_str(data, "out_seq_no")
        cert = data.get("cert_info")
        if not isinstance(cert, dict):
            raise WxError(47001, "cert_info missing")
        cert_type = require_str(cert, "cert_type")
        cert_name = require_str(cert, "cert_name")
        cert_no = require_str(cert, "cert_no")
        openid = require_str(data, "openid")
        if not OUT_SEQ_RE.fullmatch(out_seq_no):
            raise WxError(47003, "out_seq_no must be 5-32 characters of [A-Za-z0-9_-]")
        if cert_type != "IDENTITY_CARD":
            raise WxError(47003, "cert_type must be IDENTITY_CARD")
        if len(cert_no) != 18:
            raise WxError(47003, "cert_no invalid")
        known = await state.fetchone("SELECT 1 FROM users WHERE appid = ? AND openid = ?", (appid, openid))
        if known is None:
            raise WxError(40003)
        verify_id = secrets.token_urlsafe(48)
        now = time.time()
        try:
            await state.execute(
                "INSERT INTO face_verifications "
                "(verify_id, appid, openid, out_seq_no, cert_type, cert_name, cert_no, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (verify_id, appid, openid, out_seq_no, cert_type, cert_name, cert_no, now, now + VERIFY_TTL),
            )
        except sqlite3.IntegrityError:
            raise WxError(47003, "out_seq_no duplicated") from None
        return ok(verify_id=verify_id, expires_in=VERIFY_TTL)

    async def queryverifyinfo(request: Request, appid: str) -> dict[str, Any]:
        data = parse_json_body(request)
        verify_id = require_str(data, "verify_id")
        out_seq_no = require_str(data, "out_seq_no")
        given_hash = require_str(data, "cert_hash")
        openid = require_str(data, "openid")
        row = await state.fetchone(
            "SELECT * FROM face_verifications WHERE verify_id = ? AND appid = ?", (verify_id, appid)
        )
        if row is None:
            raise WxError(84001)
        if row["out_seq_no"] != out_seq_no or row["openid"] != openid:
            raise WxError(47003, "out_seq_no or openid not match verify_id")
        if given_hash != cert_hash(row["cert_type"], row["cert_name"], row["cert_no"]):
            raise WxError(47003, "cert_hash not match")
        if row["expires_at"] <= time.time():
            raise WxError(84002)
        verify_ret = row["verify_ret"]
        return ok(verify_ret=VERIFY_PENDING if verify_ret is None else int(verify_ret))

    add_wechat_api(bp, state, "cityservice/face/identify/getverifyid", getverifyid)
    add_wechat_api(bp, state, "cityservice/face/identify/queryverifyinfo", queryverifyinfo)


# -- control routes: the user finishing (or failing) the face check ------------------------------


class FaceResultBody(LenientBody):
    result: Literal["pass", "fail", "pending"] | None = Field(
        None, description="result must be 'pass', 'fail' or 'pending'")
    expires_in: int | None = Field(None, ge=0, le=86400, description="expires_in must be an integer in [0, 86400]")
    verify_ret: int | None = Field(
        None, ge=1, le=999999, description="verify_ret may only be given with result 'fail' and must not be 10000")

    @model_validator(mode="after")
    def something_to_do(self) -> FaceResultBody:
        if self.result is None and self.expires_in is None:
            raise bad("result", "result is required")
        if self.verify_ret is not None and (self.result != "fail" or self.verify_ret == VERIFY_PASSED):
            raise bad("verify_ret", "verify_ret may only be given with result 'fail' and must not be 10000")
        return self


FACE_FIELDS = ("verify_id", "appid", "openid", "out_seq_no", "cert_type", "cert_name", "cert_no", "created_at",
               "expires_at", "verify_ret")


def add_control_routes(routes: ControlRoutes, state: State) -> None:
    route = routes.route

    @route("/face/<verify_id>", ["GET"])
    async def face_get(request: Request, verify_id: str) -> HTTPResponse:
        row = await state.fetchone("SELECT * FROM face_verifications WHERE verify_id = ?", (verify_id,))
        if row is None:
            raise not_found("unknown verify_id")
        return answer({k: row[k] for k in FACE_FIELDS})

    @route("/face/<verify_id>", ["POST"])
    async def face_set(request: Request, verify_id: str) -> HTTPResponse:
        body = parse(FaceResultBody, request)
        sets, params = [], []
        if body.result is not None:
            ret = {"pass": VERIFY_PASSED, "fail": body.verify_ret or VERIFY_FAILED_DEFAULT, "pending": None}[body.result]
            sets += ["verify_ret = ?", "finished_at = ?"]
            params += [ret, None if ret is None else time.time()]
        if body.expires_in is not None:
            sets.append("expires_at = created_at + ?")
            params.append(body.expires_in)
        row = await state.fetchone(
            f"UPDATE face_verifications SET {', '.join(sets)} WHERE verify_id = ? RETURNING verify_ret",  # nosec B608
            (*params, verify_id),
        )
        if row is None:
            raise not_found("unknown verify_id")
        return answer({"verify_id": verify_id, "verify_ret": row["verify_ret"]})
