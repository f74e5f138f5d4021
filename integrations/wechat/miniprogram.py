"""Async client for the WeChat mini-program server API, modelled on wechatpy's API groups.

Why our own: wechatpy is synchronous, hard-codes its token URL, has no ``stable_token`` and no face
verification 2.0 (see docs/wechat-wire.md). Base URL comes from config, so the sandbox emulator and
the real ``https://api.weixin.qq.com`` are a URL apart.

Failure policy: a call is retried (a bounded number of times, then ``WeChatUnavailable``) only when the
retry cannot repeat work WeChat already did:

* every call retries when the request never reached WeChat (connection refused or not established in
  time) and when WeChat answers ``errcode`` -1 ("system busy": it did nothing);
* only idempotent calls (``stable_token`` without force, OCR, the face result query) also retry after a
  read timeout or an HTTP 5xx. A one-shot call (``jscode2session`` and ``getuserphonenumber`` consume
  their code, ``getverifyid`` starts a session, a subscribe message is sent) may have done its work when
  the reply was lost: retrying would turn a success into "code been used" or send a message twice;
* an expired or invalid access token (40001, 40014, 42001) means the call was refused: one
  ``stable_token`` refresh and one retry.

Any other non-zero ``errcode`` raises ``WeChatAPIError`` for the service layer to translate. Nothing
here knows about our database: the access-token cache is a ``TokenStore`` handed in by the app.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)

TOKEN_ERRCODES = {40001, 40014, 42001}
RETRYABLE_ERRCODES = {-1}
# The request certainly never reached WeChat: safe to send again whatever the call.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
TOKEN_REFRESH_MARGIN_S = 300  # stable_token guarantees >= 300 s; refresh before that


class WeChatAPIError(Exception):
    def __init__(self, errcode: int, errmsg: str, *, api: str) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        super().__init__(f"{api}: errcode={errcode} {errmsg}")


class WeChatUnavailable(Exception):
    """WeChat did not give a usable answer after the bounded retries. ``maybe_done``: a one-shot call
    whose request was sent and whose answer never came (a timeout, a dropped connection), so WeChat may
    have done it. (A 5xx is an answer: it was not done.)"""

    def __init__(self, api: str, reason: str, *, maybe_done: bool = False) -> None:
        self.api = api
        self.reason = reason
        self.maybe_done = maybe_done
        super().__init__(f"{api}: {reason}")


class TokenStore(Protocol):
    """Where the access token is shared between workers (the app backs it with the database)."""

    async def load(self, key: str) -> tuple[str, float] | None: ...

    async def save(self, key: str, token: str, expires_at: float) -> None: ...


def cert_hash(cert_type: str, cert_name: str, cert_no: str) -> str:
    """Face verification 2.0 ``cert_hash``: sha256 hex of ``cert_type=B64&cert_name=B64&cert_no=B64``.

    https://developers.weixin.qq.com/miniprogram/dev/platform-capabilities/cityservice/FacialRecognitionVerify.html
    """
    b64 = lambda s: base64.b64encode(s.encode("utf-8")).decode()  # noqa: E731
    raw = f"cert_type={b64(cert_type)}&cert_name={b64(cert_name)}&cert_no={b64(cert_no)}"
    return hashlib.sha256(raw.encode()).hexdigest()


class MiniProgramClient:
    def __init__(
        self,
        *,
        base_url: str,
        appid: str,
        secret: str,
        http: httpx.AsyncClient,
        token_store: TokenStore | None = None,
        retries: int = 2,
        backoff_s: float = 0.2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.appid = appid
        self._secret = secret
        self._http = http
        self._store = token_store
        self._retries = retries
        self._backoff_s = backoff_s
        self._token: tuple[str, float] | None = None  # per-worker copy of the shared token
        self._token_lock = asyncio.Lock()

    @property
    def _token_key(self) -> str:
        return f"wechat:stable_token:{self.appid}"

    # -- transport ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        api: str,
        *,
        params: dict | None = None,
        json: dict | None = None,
        files: dict | None = None,
        with_token: bool = True,
        idempotent: bool,
    ) -> dict[str, Any]:
        token_refreshed = False
        attempt = 0
        while True:
            query = dict(params or {})
            if with_token:
                used_token = query["access_token"] = await self.access_token()
            try:
                resp = await self._http.request(
                    method, f"{self.base_url}/{api}", params=query, json=json, files=files
                )
            except NOT_SENT as exc:
                reason = type(exc).__name__
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                reason = type(exc).__name__
                if not idempotent:  # it may have been done: the answer was lost, not the work
                    raise WeChatUnavailable(api, f"{reason} (not retried: {api} is not idempotent)",
                                            maybe_done=True) from exc
            else:
                if resp.status_code >= 500:
                    reason = f"HTTP {resp.status_code}"
                    if not idempotent:
                        raise WeChatUnavailable(api, f"{reason} (not retried: {api} is not idempotent)")
                elif resp.status_code != 200:
                    raise WeChatUnavailable(api, f"HTTP {resp.status_code}")
                else:
                    try:
                        data = resp.json()
                    except ValueError:
                        raise WeChatUnavailable(api, "response is not JSON") from None
                    errcode = int(data.get("errcode", 0) or 0)
                    if errcode == 0:
                        return data
                    if errcode in TOKEN_ERRCODES and with_token and not token_refreshed:
                        token_refreshed = True
                        await self._replace_rejected_token(used_token)
                        continue
                    if errcode not in RETRYABLE_ERRCODES:
                        raise WeChatAPIError(errcode, str(data.get("errmsg", "")), api=api)
                    reason = f"errcode {errcode}"
            if attempt >= self._retries:
                raise WeChatUnavailable(api, reason)
            attempt += 1
            log.warning("wechat call failed, retrying", extra={"api": api, "reason": reason, "attempt": attempt})
            await asyncio.sleep(self._backoff_s * attempt)

    # -- access token ------------------------------------------------------------------------

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """The stable access token, cached per worker and in the shared store, refreshed early.

        https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/mp-access-token/getStableAccessToken.html
        """
        now = time.time()
        if not force_refresh and self._token and self._token[1] - TOKEN_REFRESH_MARGIN_S > now:
            return self._token[0]
        async with self._token_lock:
            now = time.time()
            if not force_refresh:
                if self._token and self._token[1] - TOKEN_REFRESH_MARGIN_S > now:
                    return self._token[0]
                if self._store is not None:
                    cached = await self._store.load(self._token_key)
                    if cached and cached[1] - TOKEN_REFRESH_MARGIN_S > now:
                        self._token = cached
                        return cached[0]
            return await self._fetch_stable_token(force_refresh=force_refresh)

    async def _fetch_stable_token(self, *, force_refresh: bool) -> str:
        now = time.time()
        data = await self._call(
            "POST",
            "cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self._secret,
                "force_refresh": force_refresh,
            },
            with_token=False,
            idempotent=not force_refresh,  # a forced refresh is scarce (20 a day): never doubled
        )
        token = (data["access_token"], now + int(data["expires_in"]))
        self._token = token
        if self._store is not None:
            await self._store.save(self._token_key, *token)
        return token[0]

    async def _replace_rejected_token(self, rejected: str) -> None:
        """WeChat refused ``rejected``. Ask for the current stable token first: another worker may
        already hold a newer one, and forced refreshes are scarce (20 a day, 30 s apart). Force only
        when WeChat hands back the very token it just refused."""
        self._token = None
        fresh = await self._fetch_stable_token(force_refresh=False)
        if fresh == rejected:
            await self._fetch_stable_token(force_refresh=True)

    # -- APIs --------------------------------------------------------------------------------

    async def code2session(self, js_code: str) -> dict:
        """Exchange a ``wx.login`` code for openid, session_key and maybe unionid.

        https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-login/code2Session.html
        """
        return await self._call(
            "GET",
            "sns/jscode2session",
            params={
                "appid": self.appid,
                "secret": self._secret,
                "js_code": js_code,
                "grant_type": "authorization_code",
            },
            with_token=False,
            idempotent=False,  # consumes the code
        )

    async def get_phone_number(self, code: str, openid: str | None = None) -> dict:
        """Exchange a ``getPhoneNumber`` button code for the phone: returns ``phone_info``.

        https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-info/phone-number/getPhoneNumber.html
        """
        body: dict[str, str] = {"code": code}
        if openid:
            body["openid"] = openid
        data = await self._call("POST", "wxa/business/getuserphonenumber", json=body, idempotent=False)
        return data["phone_info"]

    async def ocr_idcard(self, image: bytes, *, content_type: str = "image/png") -> dict:
        """Read one side of a resident ID card.

        https://developers.weixin.qq.com/doc/offiaccount/Intelligent_Interface/OCR.html
        """
        ext = "png" if content_type == "image/png" else "jpg"
        return await self._call(
            "POST", "cv/ocr/idcard", params={"type": "photo"}, files={"img": (f"idcard.{ext}", image, content_type)},
            idempotent=True,  # reads an image; doing it twice changes nothing
        )

    async def face_get_verify_id(self, *, out_seq_no: str, cert_name: str, cert_no: str, openid: str) -> dict:
        """Start a face verification 2.0 for this person: returns ``verify_id`` and ``expires_in``.

        https://developers.weixin.qq.com/miniprogram/dev/platform-capabilities/cityservice/FacialRecognitionVerify.html
        """
        return await self._call(
            "POST",
            "cityservice/face/identify/getverifyid",
            json={
                "out_seq_no": out_seq_no,
                "cert_info": {"cert_type": "IDENTITY_CARD", "cert_name": cert_name, "cert_no": cert_no},
                "openid": openid,
            },
            idempotent=False,  # starts a session under this out_seq_no
        )

    async def face_query_verify_info(
        self, *, verify_id: str, out_seq_no: str, cert_name: str, cert_no: str, openid: str
    ) -> dict:
        """The result of a face verification 2.0: passed only when errcode=0 and verify_ret=10000."""
        return await self._call(
            "POST",
            "cityservice/face/identify/queryverifyinfo",
            json={
                "verify_id": verify_id,
                "out_seq_no": out_seq_no,
                "cert_hash": cert_hash("IDENTITY_CARD", cert_name, cert_no),
                "openid": openid,
            },
            idempotent=True,  # a read
        )

    async def send_subscribe_message(self, *, touser: str, template_id: str, data: dict, page: str | None = None) -> dict:
        """https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/mp-message-management/subscribe-message/sendMessage.html"""
        body: dict[str, Any] = {"touser": touser, "template_id": template_id, "data": data}
        if page:
            body["page"] = page
        return await self._call("POST", "cgi-bin/message/subscribe/send", json=body, idempotent=False)
