"""WeChat's message push (消息推送) to the mini-program's backend, played by the sandbox: the control
API sends, on demand, what WeChat's servers send to the "消息推送" URL configured in the mini-program's
console. Wire contract: ``docs/wechat-wire.md`` section 5 (sources:
developers.weixin.qq.com/miniprogram/dev/framework/server-ability/message-push.html and
.../doc/oplatform/developers/dev/push/encryption.md). The crypto is implemented here from the
documents (``cryptography``), not with wechatpy (the tests cross-check against wechatpy).

The control bodies are :class:`PushVerifyBody` and :class:`PushBody` (strict: unknown fields refused).

- **URL verification** (``POST /sandbox/control/push/verify {url, token}``): ``GET url?signature=
  &timestamp=&nonce=&echostr=`` with ``signature = sha1("".join(sorted([token, timestamp, nonce])))``;
  the backend must answer HTTP 200 with ``echostr`` verbatim (compared exactly).
- **Plain mode** (``mode: "plain"``): ``POST url?signature=&timestamp=&nonce=`` with the message as
  JSON (``Content-Type: application/json``) or XML (``text/xml``; strings in CDATA, numbers bare,
  an object as nested elements, a list as the element repeated).
- **Safe mode** (``mode: "safe"``): the query adds ``encrypt_type=aes`` and ``msg_signature =
  sha1(sorted([token, timestamp, nonce, Encrypt]))``; the body is ``{"ToUserName","Encrypt"}`` (or
  the XML equivalent), ``Encrypt`` = base64(AES-256-CBC(key = b64decode(EncodingAESKey + "="), IV =
  key[:16], PKCS#7 padding to a multiple of 32 bytes) of 16 random bytes ‖ uint32 big-endian length ‖
  message ‖ appid)).

The message is sent as given, except that ``ToUserName`` (the mini-program's original id; default
``gh_`` + 12 hex digits derived from the appid) and ``CreateTime`` (now) are filled in when missing.
One delivery per call (WeChat retries three times when it gets no ``success`` within 5 s; repeat the
call to play a retry). The answer reports what was sent and what the backend replied; whether the
backend accepted it (HTTP 200 with an empty body or ``success``) is ``accepted``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import struct
import time
from typing import Any, Literal
from xml.sax.saxutils import escape

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pydantic import Field, ValidationInfo, field_validator, model_validator
from sanic import Request
from sanic.response import HTTPResponse

from sandbox.config import SandboxConfig
from sandbox.control_kit import Body, ControlRoutes, answer, bad, parse

TOKEN_RE = re.compile(r"^[A-Za-z0-9]{3,32}$")
AES_KEY_RE = re.compile(r"^[A-Za-z0-9+/]{43}$")
APPID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
BLOCK = 32  # WeChat pads to 32 bytes (PKCS#7 with k = 32), not to the AES block size
TIMEOUT_S = 5.0
MAX_MESSAGE = 64 * 1024
MAX_REPLY = 4000
MESSAGE_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")  # an XML element name


def signature(*parts: str) -> str:
    """SHA-1 (hex) of the sorted parts concatenated: ``signature`` and ``msg_signature``."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8"), usedforsecurity=False).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


def encrypt(encoding_aes_key: str, appid: str, message: bytes, random16: bytes | None = None) -> str:
    key = aes_key(encoding_aes_key)
    plain = (random16 or secrets.token_bytes(16)) + struct.pack(">I", len(message)) + message + appid.encode()
    pad = BLOCK - len(plain) % BLOCK
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt(encoding_aes_key: str, encrypted: str) -> tuple[bytes, str]:
    """``(message, appid)`` of an ``Encrypt`` value (the inverse of :func:`encrypt`)."""
    key = aes_key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK:
        raise ValueError("bad padding")
    plain = plain[:-pad]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20:20 + length], plain[20 + length:].decode()


def _xml_value(name: str, value: Any) -> str:
    if isinstance(value, list):
        return "".join(_xml_value(name, item) for item in value)
    if isinstance(value, dict):
        inner = "".join(_xml_value(k, v) for k, v in value.items())
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    elif isinstance(value, (int, float)):
        inner = str(value)
    elif value is None:
        inner = ""
    else:
        text = str(value).replace("]]>", "]]]]><![CDATA[>")
        inner = f"<![CDATA[{text}]]>"
    tag = escape(name)
    return f"<{tag}>{inner}</{tag}>"


def render_xml(message: dict[str, Any]) -> str:
    return "<xml>" + "".join(_xml_value(k, v) for k, v in message.items()) + "</xml>"


def original_id(appid: str) -> str:
    return "gh_" + hashlib.sha1(appid.encode(), usedforsecurity=False).hexdigest()[:12]


def with_query(url: str, params: dict[str, str]) -> str:
    return str(httpx.URL(url).copy_merge_params(params))


class PushVerifyBody(Body):
    """``POST push/verify``: the backend's message-push URL and the console's Token."""

    url: str = Field(max_length=2048, description="url must be an http(s) URL")
    token: str = Field(pattern=TOKEN_RE.pattern,
                       description="token must be 3-32 letters or digits (WeChat's rule for the Token)")

    @field_validator("url")
    @classmethod
    def http_url(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except Exception:  # noqa: BLE001 - whatever httpx cannot read is not a URL
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("url must be an http(s) URL")
        return url


class PushBody(PushVerifyBody):
    """``POST push``: one message to push (see the module docstring); ``appid`` by default the
    configured one (``context["default_appid"]``)."""

    mode: Literal["plain", "safe"] = Field("plain", description="mode must be 'plain' or 'safe'")
    encoding_aes_key: str | None = Field(None, pattern=AES_KEY_RE.pattern,
                                         description="encoding_aes_key must be 43 characters of A-Z a-z 0-9 + /")
    appid: str = Field(pattern=APPID_RE.pattern, description="appid must be 1-32 characters of A-Z a-z 0-9 _ -")
    format: Literal["json", "xml"] = Field("json", description="format must be 'json' or 'xml'")
    message: dict[str, Any] = Field(
        description=f"message must be a non-empty JSON object of at most {MAX_MESSAGE} bytes")

    @model_validator(mode="before")
    @classmethod
    def default_appid(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and "appid" not in data:
            return {**data, "appid": (info.context or {})["default_appid"]}
        return data

    @field_validator("message")
    @classmethod
    def a_message(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value or len(json.dumps(value, ensure_ascii=False)) > MAX_MESSAGE:
            raise ValueError(f"message must be a non-empty JSON object of at most {MAX_MESSAGE} bytes")
        if any(not MESSAGE_KEY_RE.fullmatch(key) for key in value):
            raise ValueError("message keys must be XML-safe names (letters, digits, _ . -)")
        return value

    @model_validator(mode="after")
    def key_in_safe_mode(self) -> PushBody:
        if self.mode == "safe" and self.encoding_aes_key is None:
            raise bad("encoding_aes_key", "encoding_aes_key is required in safe mode")
        return self


def _reply(report: dict[str, Any], response: httpx.Response | None, error: str | None) -> None:
    report["http_status"] = None if response is None else response.status_code
    report["reply"] = None if response is None else response.text[:MAX_REPLY]
    report["error"] = error


async def _call(method: str, url: str, **kwargs: Any) -> tuple[httpx.Response | None, str | None]:
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False) as client:
            return await client.request(method, url, **kwargs), None
    except httpx.TimeoutException:
        return None, f"timeout: no answer within {TIMEOUT_S:g} s"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]


async def push(p: PushBody) -> dict[str, Any]:
    """Send one push (see the module docstring) and report it."""
    message = dict(p.message)
    message.setdefault("ToUserName", original_id(p.appid))
    message.setdefault("CreateTime", int(time.time()))
    plain = (json.dumps(message, ensure_ascii=False, separators=(",", ":")) if p.format == "json"
             else render_xml(message))
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(9 * 10**9) + 10**9)
    query = {"signature": signature(p.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    if p.mode == "safe":
        encrypted = encrypt(p.encoding_aes_key, p.appid, plain.encode("utf-8"))
        query["encrypt_type"] = "aes"
        query["msg_signature"] = signature(p.token, timestamp, nonce, encrypted)
        envelope = {"ToUserName": message["ToUserName"], "Encrypt": encrypted}
        body = (json.dumps(envelope, ensure_ascii=False, separators=(",", ":")) if p.format == "json"
                else render_xml(envelope))
    else:
        body = plain
    content_type = "application/json" if p.format == "json" else "text/xml"
    url = with_query(p.url, query)
    report: dict[str, Any] = {"url": url, "query": query, "body": body, "plaintext": plain}
    response, error = await _call("POST", url, content=body.encode("utf-8"),
                                  headers={"Content-Type": content_type, "User-Agent": "Mozilla/4.0"})
    _reply(report, response, error)
    report["accepted"] = response is not None and response.status_code == 200 and response.text.strip() in ("", "success")
    return report


async def verify(url: str, token: str) -> dict[str, Any]:
    """The GET URL verification; ``ok`` when the backend echoed ``echostr`` exactly with HTTP 200."""
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(9 * 10**9) + 10**9)
    echostr = str(secrets.randbelow(9 * 10**18) + 10**18)
    query = {"signature": signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
             "echostr": echostr}
    full = with_query(url, query)
    report: dict[str, Any] = {"url": full, "query": query, "echostr": echostr}
    response, error = await _call("GET", full, headers={"User-Agent": "Mozilla/4.0"})
    _reply(report, response, error)
    report["ok"] = response is not None and response.status_code == 200 and response.text == echostr
    return report


# -- control routes: WeChat pushing to the backend -----------------------------------------------


def add_control_routes(routes: ControlRoutes, config: SandboxConfig) -> None:
    @routes.route("/push", ["POST"])
    async def push_message(request: Request) -> HTTPResponse:
        return answer(await push(parse(PushBody, request, {"default_appid": config.default_appid})))

    @routes.route("/push/verify", ["POST"])
    async def push_verify(request: Request) -> HTTPResponse:
        body = parse(PushVerifyBody, request)
        return answer(await verify(body.url, body.token))
