"""Emulated ID-card OCR (``POST /cv/ocr/idcard``) and the card images it can read.

WeChat doc: https://developers.weixin.qq.com/doc/service/api/openpoc/ocr/api_idcardocr
(also https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/img-ocr/ocr/idCardOCR.html).

The sandbox does no real OCR. ``POST /sandbox/control/id-card-images`` (body:
:class:`IdCardImageBody`) draws a card-like PNG (or JPEG) with Pillow and embeds the card data in it: PNG ``tEXt`` chunk (JPEG: ``COM`` segment
prefixed ``sandbox-idcard:``) with key ``sandbox-idcard`` holding ASCII JSON. The JSON carries
a SHA-256 of the decoded RGB pixels and an HMAC-SHA256 over all fields, keyed by a random key
kept in the state DB, so an image whose data or pixels were edited is rejected.

Answers:
- our image, front → ``{"errcode":0,"errmsg":"ok","type":"Front","name","id","addr","gender","nationality"}``
  (gender from the 17th digit of the ID number: odd 男, even 女);
- our image, back → ``{"errcode":0,"errmsg":"ok","type":"Back","valid_date":"YYYYMMDD-YYYYMMDD"}``
  (start = ``valid_from``, by default valid_until minus 20 years; ``长期`` cards default to a
  start 20 years before the mint date);
- a decodable image without valid sandbox data (any GIF/BMP/WebP, or a PNG/JPEG that is not ours,
  was edited, or was re-encoded lossily) → 101001 "certificate not found";
- no ``img``, or bytes that are not a decodable image → 101000 "image url or data error";
- an ``img`` of 2 MB (2 MiB) or more → 40009 "invalid image size". The OCR doc sets the limit
  ("图片说明 文件大小限制:小于2M") but names no errcode for it, so the sandbox uses WeChat's global
  code for an image of invalid size, 40009 "invalid image size" (不合法的图片文件大小,
  https://developers.weixin.qq.com/doc/oplatform/Return_codes/Return_code_descriptions_new.html);
- ``img_url`` (the sandbox is offline) → 101003; a ``type`` other than photo/scan → 47001.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
from functools import lru_cache
from typing import Any, Literal

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo
from pydantic import Field, ValidationInfo, field_validator
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from sandbox.control_kit import Body, ControlRoutes, parse
from sandbox.state import State
from sandbox.wxcommon import WxError, add_wechat_api, ok

CHUNK_KEY = "sandbox-idcard"
JPEG_PREFIX = b"sandbox-idcard:"
DECODABLE = ("PNG", "JPEG", "GIF", "BMP", "WEBP")  # what is tried; only PNG/JPEG can carry card data
MAX_PIXELS = 25_000_000
MAX_IMAGE_BYTES = 2 * 1024 * 1024  # "小于2M": an image must be smaller than this
SIZE = (640, 400)
ID_RE = re.compile(r"^\d{17}[\dXx]$")
DATE_RE = re.compile(r"^\d{8}$")
LONG_TERM = "长期"
DEFAULT_ADDRESS = "北京市东城区沙箱路1号"

FONT_CANDIDATES = (
    os.environ.get("SANDBOX_CJK_FONT", ""),
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)


# -- card data -------------------------------------------------------------------------------


def parse_date(value: str) -> dt.date:
    return dt.datetime.strptime(value, "%Y%m%d").date()


def years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def gender_of(id_number: str) -> str:
    return "男" if int(id_number[16]) % 2 == 1 else "女"


def _a_date(value: str, field: str, shape: str) -> str:
    if not DATE_RE.fullmatch(value):
        raise ValueError(shape)
    try:
        parse_date(value)
    except ValueError:
        raise ValueError(f"{field} is not a real date") from None
    return value


class IdCardImageBody(Body):
    """``POST id-card-images``: the card to draw (see :meth:`card`)."""

    side: Literal["front", "back"] = Field(description="side must be 'front' or 'back'")
    name: str = Field(max_length=32, description="name must be a non-empty string of at most 32 characters")
    id_number: str = Field(pattern=ID_RE.pattern, description="id_number must be 17 digits followed by a digit or X")
    valid_until: str = Field(description="valid_until must be YYYYMMDD or 长期")
    valid_from: str | None = Field(None, description="valid_from must be YYYYMMDD")
    address: str | None = Field(None, max_length=80,
                                description="address must be a non-empty string of at most 80 characters")
    nationality: str = Field("汉", max_length=8, description="nationality must be a short non-empty string")
    authority: str = Field("沙箱市公安局", max_length=32, description="authority must be a short non-empty string")
    format: Literal["png", "jpeg"] = Field("png", description="format must be 'png' or 'jpeg'")

    @field_validator("name", "address", "nationality", "authority")
    @classmethod
    def some_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Not blank; kept trimmed."""
        if value is not None and not value.strip():
            raise ValueError(cls.model_fields[info.field_name].description)
        return None if value is None else value.strip()

    @field_validator("id_number")
    @classmethod
    def upper_x(cls, value: str) -> str:
        return value.upper()

    @field_validator("valid_until")
    @classmethod
    def until(cls, value: str) -> str:
        return value if value == LONG_TERM else _a_date(value, "valid_until", "valid_until must be YYYYMMDD or 长期")

    @field_validator("valid_from")
    @classmethod
    def since(cls, value: str | None) -> str | None:
        return None if value is None else _a_date(value, "valid_from", "valid_from must be YYYYMMDD")

    def card(self, today: dt.date | None = None) -> dict[str, Any]:
        """The card payload to embed: ``valid_from`` by default 20 years before ``valid_until``
        (before ``today`` for a 长期 card)."""
        valid_from = self.valid_from
        if valid_from is None:
            base = (today or dt.date.today()) if self.valid_until == LONG_TERM else parse_date(self.valid_until)
            valid_from = years_before(base, 20).strftime("%Y%m%d")
        return {
            "v": 1,
            "side": self.side,
            "name": self.name,
            "id_number": self.id_number,
            "address": DEFAULT_ADDRESS if self.address is None else self.address,
            "nationality": self.nationality,
            "authority": self.authority,
            "valid_from": valid_from,
            "valid_until": self.valid_until,
            "format": self.format,
        }


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode("ascii")


def _pixel_hash(im: Image.Image) -> str:
    rgb = im.convert("RGB")
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


def _sign(key: bytes, fields: dict[str, Any]) -> str:
    return hmac.new(key, _canonical(fields), hashlib.sha256).hexdigest()


# -- drawing ---------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONT_CANDIDATES:
        if path and os.path.exists(path):
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    return ImageFont.load_default(size)


def _fmt_date(value: str, sep: str = ".") -> str:
    if value == LONG_TERM:
        return value
    return f"{value[:4]}{sep}{value[4:6]}{sep}{value[6:]}"


def _wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]


def _draw(card: dict[str, Any]) -> Image.Image:
    im = Image.new("RGB", SIZE, (236, 242, 246))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle((8, 8, SIZE[0] - 9, SIZE[1] - 9), radius=24, fill=(246, 244, 236), outline=(150, 170, 190), width=3)
    label, value, small = _font(18), _font(22), _font(14)
    grey, dark, blue = (90, 110, 130), (20, 20, 20), (60, 90, 150)
    if card["side"] == "front":
        idn = card["id_number"]
        d.text((40, 40), "姓名", font=label, fill=grey)
        d.text((100, 37), card["name"], font=value, fill=dark)
        d.text((40, 90), "性别", font=label, fill=grey)
        d.text((100, 87), gender_of(idn), font=value, fill=dark)
        d.text((180, 90), "民族", font=label, fill=grey)
        d.text((240, 87), card["nationality"], font=value, fill=dark)
        d.text((40, 140), "出生", font=label, fill=grey)
        d.text((100, 137), f"{int(idn[6:10])}年{int(idn[10:12])}月{int(idn[12:14])}日", font=value, fill=dark)
        d.text((40, 190), "住址", font=label, fill=grey)
        for i, line in enumerate(_wrap(card["address"], 14)[:3]):
            d.text((100, 187 + i * 30), line, font=value, fill=dark)
        d.text((40, 320), "公民身份号码", font=label, fill=grey)
        d.text((170, 316), idn, font=_font(26), fill=dark)
        # photo placeholder
        d.rectangle((440, 50, 590, 250), fill=(220, 226, 232), outline=(180, 190, 200))
        d.ellipse((480, 80, 550, 160), fill=(170, 180, 190))
        d.pieslice((455, 160, 575, 290), 180, 360, fill=(170, 180, 190))
    else:
        d.ellipse((40, 40, 130, 130), outline=(200, 40, 40), width=4)
        d.regular_polygon((85, 85, 26), 5, fill=(210, 170, 40))
        d.text((180, 55), "中华人民共和国", font=_font(34), fill=dark)
        d.text((200, 120), "居民身份证", font=_font(44), fill=dark)
        d.text((110, 270), "签发机关", font=label, fill=grey)
        d.text((210, 267), card["authority"], font=value, fill=dark)
        d.text((110, 320), "有效期限", font=label, fill=grey)
        validity = f"{_fmt_date(card['valid_from'])}-{_fmt_date(card['valid_until'])}"
        d.text((210, 317), validity, font=value, fill=dark)
    d.text((SIZE[0] - 190, SIZE[1] - 34), "SANDBOX 测试样本", font=small, fill=blue)
    return im


def mint_image(key: bytes, card: dict[str, Any]) -> tuple[bytes, str]:
    """Draw the card and embed its signed data; return (bytes, content type). CPU-bound."""
    im = _draw(card)
    fmt = card["format"]
    if fmt == "png":
        fields = {**card, "pixels": _pixel_hash(im)}
        info = PngInfo()
        info.add_text(CHUNK_KEY, _canonical({**fields, "sig": _sign(key, fields)}).decode("ascii"))
        out = io.BytesIO()
        im.save(out, format="PNG", pnginfo=info, optimize=True)
        return out.getvalue(), "image/png"
    plain = io.BytesIO()
    im.save(plain, format="JPEG", quality=85)
    jpeg = plain.getvalue()
    decoded = Image.open(io.BytesIO(jpeg))
    fields = {**card, "pixels": _pixel_hash(decoded)}
    comment = JPEG_PREFIX + _canonical({**fields, "sig": _sign(key, fields)})
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return jpeg[:2] + segment + jpeg[2:], "image/jpeg"


# -- reading ---------------------------------------------------------------------------------


def read_image(key: bytes, data: bytes) -> dict[str, Any]:
    """Return the verified card data embedded in ``data`` or raise WxError(101000/101001). CPU-bound."""
    try:
        im = Image.open(io.BytesIO(data), formats=DECODABLE)
        if im.width * im.height > MAX_PIXELS:
            raise WxError(101000, "image too large")
        im.load()
    except WxError:
        raise
    except Exception:  # noqa: BLE001 - any decoder failure means unusable data
        raise WxError(101000) from None
    raw: Any = None
    if im.format == "PNG":
        raw = getattr(im, "text", {}).get(CHUNK_KEY)
    elif im.format == "JPEG":
        comment = im.info.get("comment")
        if isinstance(comment, bytes) and comment.startswith(JPEG_PREFIX):
            raw = comment[len(JPEG_PREFIX) :].decode("ascii", "replace")
    if not isinstance(raw, str):
        raise WxError(101001)
    try:
        fields = json.loads(raw)
        sig = fields.pop("sig")
    except (ValueError, KeyError, AttributeError, TypeError):
        raise WxError(101001) from None
    if not isinstance(sig, str) or not hmac.compare_digest(sig, _sign(key, fields)):
        raise WxError(101001)
    if fields.get("pixels") != _pixel_hash(im):
        raise WxError(101001)
    return fields


def ocr_result(card: dict[str, Any]) -> dict[str, Any]:
    if card["side"] == "front":
        return ok(
            type="Front",
            name=card["name"],
            id=card["id_number"],
            addr=card["address"],
            gender=gender_of(card["id_number"]),
            nationality=card["nationality"],
        )
    return ok(type="Back", valid_date=f"{card['valid_from']}-{card['valid_until']}")


def register(bp: Blueprint, state: State) -> None:
    async def idcard(request: Request, appid: str) -> dict[str, Any]:
        if request.args.get("img_url"):
            raise WxError(101003)
        mode = request.args.get("type", "photo")
        if mode not in ("photo", "scan"):
            raise WxError(47001, "type must be photo or scan")
        upload = request.files.get("img") if request.files else None
        if upload is None or not upload.body:
            raise WxError(101000)
        if len(upload.body) >= MAX_IMAGE_BYTES:
            raise WxError(40009, f"image is {len(upload.body)} bytes, must be under {MAX_IMAGE_BYTES}")
        key = await state.get_image_key()
        card = await asyncio.to_thread(read_image, key, upload.body)
        return ocr_result(card)

    add_wechat_api(bp, state, "cv/ocr/idcard", idcard)


# -- control routes: a photo of an ID card whose OCR result the emulator knows -------------------


def add_control_routes(routes: ControlRoutes, state: State) -> None:
    @routes.route("/id-card-images", ["POST"])
    async def id_card_images(request: Request) -> HTTPResponse:
        card = parse(IdCardImageBody, request).card()
        key = await state.get_image_key()
        image, content_type = await asyncio.to_thread(mint_image, key, card)
        return raw(image, content_type=content_type)
