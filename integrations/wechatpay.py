"""WeChat Pay API v3 (public-key mode), through ``wechatpayv3[async]`` behind one adapter.

The library signs requests, verifies the signature of 2xx answers and decrypts notifications; this
adapter adds what it leaves out: typed errors for non-2xx answers, path and query values URL-encoded
before they are signed (the library signs the raw string, which WeChat Pay refuses for non-ASCII), the
gateway from config (the library hard-codes it: ``_core._gate_way`` is the only way in), and, for
notifications, the platform key named by ``Wechatpay-Serial`` and a timestamp within five minutes (the
library checks neither). The library does not hand back the headers of an error answer, so an error's
signature goes unchecked: an error never moves money here, it only stops what was asked.

In sandbox mode the merchant key is generated once into ``var/`` (``dev_merchant_key``) and the
platform public key is fetched from the emulator's control API on first use.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SKEW_S = 300


class WeChatPayError(Exception):
    """WeChat Pay refused the request (a 4xx ``{"code", "message"}``): it did not do it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class WeChatPayUnavailable(Exception):
    """No answer we can trust: a connection failure, a timeout, an answer whose signature fails, or a 5xx
    or 429 (WeChat Pay's "try again with the same parameters"). What was asked may have been done."""


class NotificationRefused(Exception):
    """A notification that is not WeChat Pay's (signature, serial, timestamp) or not readable."""


def dev_merchant_key(var_dir: Path) -> tuple[Path, str]:
    """The sandbox merchant's RSA key (made once, 0600) and its serial (like a certificate's)."""
    path = Path(var_dir) / "dev-wechatpay-merchant.pem"
    if not path.exists():
        Path(var_dir).mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(tmp, path)  # another process may have won: theirs is the key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()  # WeChat Pay's serial: an identifier


def merchant_public_pem(private_key_path: str) -> str:
    key = serialization.load_pem_private_key(Path(private_key_path).read_bytes(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class BillUnusable(WeChatPayUnavailable):
    """A downloaded bill that does not decompress, or whose hash is not the one WeChat Pay gave."""


def checked_bill(content: bytes, hash_type: str | None, hash_value: str | None) -> bytes:
    """The bill's text from what was downloaded (gzip, or plain if the gateway sent it so), once its
    digest matches: WeChat Pay hashes the uncompressed bill."""
    if content[:2] == b"\x1f\x8b":
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError) as exc:
            raise BillUnusable(f"the bill does not decompress: {exc}") from exc
    algorithms = {"SHA1": hashlib.sha1}
    if hash_type not in algorithms:
        raise BillUnusable(f"unknown hash_type {hash_type!r}")
    digest = algorithms[hash_type](content).hexdigest()  # noqa: S324 - WeChat Pay's integrity check, not a secret
    if not hash_value or not hmac.compare_digest(digest, str(hash_value).lower()):
        raise BillUnusable("the bill's hash does not match")
    return content


class WeChatPayClient:
    def __init__(self, *, mchid: str, appid: str, api_base: str, private_key_path: str, merchant_serial: str,
                 apiv3_key: str, public_key_id: str, public_key_path: str | None, notify_url: str,
                 timeout_s: float, platform_key_url: str | None = None) -> None:
        self.mchid, self.appid, self.notify_url = mchid, appid, notify_url
        self._api_base = api_base.rstrip("/")
        self._private_key_path = private_key_path  # read on first use
        self._merchant_serial = merchant_serial
        self._apiv3_key = apiv3_key
        self._public_key_id = public_key_id
        self._public_key_path = public_key_path
        self._platform_key_url = platform_key_url  # sandbox: the emulator hands out its key
        self._timeout_s = timeout_s
        self._pay = None
        self._private_key = None
        self._opening = asyncio.Lock()

    async def _client(self):
        async with self._opening:  # one client per process, however many first requests arrive together
            if self._pay is None:
                await self._open()
        return self._pay

    async def _open(self) -> None:
        """Read the keys (once, off the event loop) and open the library's client."""
        from wechatpayv3.async_ import AsyncWeChatPay, WeChatPayType

        private_pem = await asyncio.to_thread(Path(self._private_key_path).read_text)
        self._private_key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        if self._public_key_path:
            pem = await asyncio.to_thread(Path(self._public_key_path).read_text)
        else:
            async with httpx.AsyncClient(timeout=self._timeout_s, trust_env=False) as http:
                found = (await http.get(self._platform_key_url)).json()
            pem, self._public_key_id = found["public_key_pem"], found["public_key_id"]
        pay = AsyncWeChatPay(
            wechatpay_type=WeChatPayType.MINIPROG, mchid=self.mchid, private_key=private_pem,
            cert_serial_no=self._merchant_serial, appid=self.appid, apiv3_key=self._apiv3_key,
            notify_url=self.notify_url, public_key=pem, public_key_id=self._public_key_id,
            timeout=(min(2.0, self._timeout_s), self._timeout_s))
        pay._core._gate_way = self._api_base  # the library's only way to another gateway
        await pay.__aenter__()
        self._pay = pay

    async def aclose(self) -> None:
        if self._pay is not None:
            await self._pay.__aexit__(None, None, None)
            self._pay = None

    async def _call(self, path: str, method: str = "GET", data: dict | None = None, *,
                    download: bool = False) -> tuple[int, Any]:
        """``download``: a file (a bill), whose answer WeChat Pay does not sign: the caller checks its hash."""
        from wechatpayv3.async_.type import RequestType

        pay = await self._client()
        try:
            status, text = await pay._core.request(path, method=getattr(RequestType, method), data=data,
                                                   skip_verify=download)
        except httpx.HTTPError as exc:
            raise WeChatPayUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - the library raises bare Exception for a bad signature
            raise WeChatPayUnavailable(str(exc)) from exc
        if download and 200 <= status < 300:
            return status, text if isinstance(text, bytes) else text.encode()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            raise WeChatPayUnavailable(f"{status}: an answer that is not JSON") from None
        if not 200 <= status < 300:
            code = (body or {}).get("code", "UNKNOWN") if isinstance(body, dict) else "UNKNOWN"
            if status >= 500 or status == 429:
                # SYSTEM_ERROR, FREQUENCY_LIMITED...: "call again with the same parameters". Not a refusal:
                # what was asked may have been done (a refund made, then a 500), so nothing is given up on
                raise WeChatPayUnavailable(f"{status} {code}")
            raise WeChatPayError(status, code, (body or {}).get("message", "") if isinstance(body, dict) else "")
        return status, body

    async def jsapi(self, *, out_trade_no: str, description: str, amount_fen: int, openid: str,
                    time_expire: str) -> str:
        """The ``prepay_id`` of a JSAPI order (the same for a repeat of the same order)."""
        _, body = await self._call("/v3/pay/transactions/jsapi", "POST", {
            "appid": self.appid, "mchid": self.mchid, "description": description, "out_trade_no": out_trade_no,
            "time_expire": time_expire, "notify_url": self.notify_url,
            "amount": {"total": amount_fen, "currency": "CNY"}, "payer": {"openid": openid}})
        return body["prepay_id"]

    async def query(self, out_trade_no: str) -> dict | None:
        """The transaction, or None when WeChat Pay has no such order."""
        try:
            _, body = await self._call(f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}"
                                       f"?mchid={quote(self.mchid, safe='')}")
        except WeChatPayError as exc:
            if exc.status == 404:
                return None
            raise
        return body

    async def close(self, out_trade_no: str) -> None:
        await self._call(f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close", "POST",
                         {"mchid": self.mchid})

    async def refund(self, *, out_trade_no: str, out_refund_no: str, amount_fen: int, total_fen: int,
                     reason: str | None = None) -> dict:
        """Ask for a refund (the same ``out_refund_no`` again answers the same refund)."""
        body = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "notify_url": self.notify_url,
                "amount": {"refund": amount_fen, "total": total_fen, "currency": "CNY"}}
        if reason:
            body["reason"] = reason
        _, answer = await self._call("/v3/refund/domestic/refunds", "POST", body)
        return answer

    async def query_refund(self, out_refund_no: str) -> dict | None:
        try:
            _, answer = await self._call(f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}")
        except WeChatPayError as exc:
            if exc.status == 404:
                return None
            raise
        return answer

    async def trade_bill(self, bill_date: str) -> bytes | None:
        """The day's trade bill (all payments and refunds; ``YYYY-MM-DD``, China Standard Time) as WeChat
        Pay's text, downloaded gzip-compressed and checked against the hash the application answered
        with; None when WeChat Pay has no bill for the day (``NO_STATEMENT_EXIST``)."""
        try:
            _, answer = await self._call(f"/v3/bill/tradebill?bill_date={quote(bill_date, safe='')}"
                                         "&bill_type=ALL&tar_type=GZIP")
        except WeChatPayError as exc:
            if exc.code == "NO_STATEMENT_EXIST":
                return None
            raise
        url = str(answer.get("download_url", ""))
        if not url.startswith(self._api_base + "/"):  # a signed request goes to the gateway and nowhere else
            raise WeChatPayUnavailable("the bill's download_url is not on the gateway")
        _, content = await self._call(url[len(self._api_base):], download=True)
        return checked_bill(content, answer.get("hash_type"), answer.get("hash_value"))

    async def request_payment(self, prepay_id: str) -> dict[str, str]:
        """What ``wx.requestPayment`` takes: signed with the merchant key over appId, timeStamp, nonceStr
        and package (appId is signed but not passed)."""
        await self._client()  # the merchant key, read once
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        message = f"{self.appid}\n{timestamp}\n{nonce}\n{package}\n".encode()
        signature = base64.b64encode(self._private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
        return {"timeStamp": timestamp, "nonceStr": nonce, "package": package, "signType": "RSA",
                "paySign": signature}

    async def notification(self, headers, body: bytes, *, now: float | None = None) -> dict:
        """A notification's envelope with its ``resource`` decrypted, once its serial, timestamp and
        signature hold; ``NotificationRefused`` otherwise."""
        pay = await self._client()
        if headers.get("Wechatpay-Serial") != self._public_key_id:
            raise NotificationRefused("unknown Wechatpay-Serial")
        try:
            skew = abs((now if now is not None else time.time()) - int(headers.get("Wechatpay-Timestamp", "")))
        except ValueError:
            raise NotificationRefused("no Wechatpay-Timestamp") from None
        if skew > SKEW_S:
            raise NotificationRefused("timestamp outside five minutes")
        if headers.get("Wechatpay-Signature-Type") != "WECHATPAY2-SHA256-RSA2048":
            raise NotificationRefused("signature type is not WECHATPAY2-SHA256-RSA2048")
        try:  # the library checks the signature over the raw body with the platform key, then decrypts
            found = pay.callback(headers=dict(headers), body=body)
        except Exception as exc:  # noqa: BLE001 - the library raises bare Exception on what it cannot read
            raise NotificationRefused(f"unreadable: {exc}") from exc
        if not found or not isinstance(found.get("resource"), dict):
            raise NotificationRefused("resource does not decrypt")
        return found
