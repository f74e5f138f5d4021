"""Phone-number codes and ID-card OCR against a real sandbox server."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.sandbox.support import APPID, APPID2, assert_wx_error

FRONT = {"side": "front", "name": "张三", "id_number": "11010119900307123X", "valid_until": "20350101",
         "address": "北京市东城区沙箱路8号院3号楼"}


# -- phone -------------------------------------------------------------------------------------


def test_phone_number_round_trip(sb, token):
    code = sb.phone_code("13912345678")
    before = int(time.time())
    body = sb.wx_post("wxa/business/getuserphonenumber", token, {"code": code})
    assert body["errcode"] == 0 and body["errmsg"] == "ok"
    info = body["phone_info"]
    assert info["phoneNumber"] == "13912345678"
    assert info["purePhoneNumber"] == "13912345678"
    assert info["countryCode"] == "86"
    assert info["watermark"]["appid"] == APPID
    assert before - 1 <= info["watermark"]["timestamp"] <= int(time.time()) + 1


def test_phone_code_single_use_expiry_and_app(sb, token):
    code = sb.phone_code("13700000001")
    assert sb.wx_post("wxa/business/getuserphonenumber", token, {"code": code, "openid": "oX"})["errcode"] == 0
    assert_wx_error(sb.wx_post("wxa/business/getuserphonenumber", token, {"code": code}), 40029)
    expired = sb.phone_code("13700000002", expires_in=0)
    assert_wx_error(sb.wx_post("wxa/business/getuserphonenumber", token, {"code": expired}), 40029)
    other_app = sb.phone_code("13700000003", appid=APPID2)
    assert_wx_error(sb.wx_post("wxa/business/getuserphonenumber", token, {"code": other_app}), 40029)
    assert_wx_error(sb.wx_post("wxa/business/getuserphonenumber", token, {"code": "bogus"}), 40029)
    assert_wx_error(sb.wx_post("wxa/business/getuserphonenumber", token, {}), 47001)


@pytest.mark.parametrize("phone", ["12345678901", "1381234567", "+8613812345678", 13812345678, ""])
def test_phone_code_rejects_bad_numbers(sb, phone):
    r = sb.control("POST", "phone-code", json={"phone": phone})
    assert r.status_code == 400
    assert r.json()["code"] == "INVALID_REQUEST" and r.json()["field"] == "phone"


# -- OCR ---------------------------------------------------------------------------------------


def mint(sb, **card) -> bytes:
    r = sb.control("POST", "id-card-images", json=card)
    assert r.status_code == 200, r.text
    return r.content


def ocr(sb, token, data: bytes, mode: str = "photo", mime: str = "image/png") -> dict:
    r = sb.http.post(
        f"{sb.sb.wechat}/cv/ocr/idcard",
        params={"type": mode, "access_token": token},
        files={"img": ("card", data, mime)},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_minted_image_is_a_small_real_png(sb):
    data = mint(sb, **FRONT)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) < 200_000
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG" and im.size == (640, 400)
    # not a blank canvas: the card has text drawn on it
    assert len(im.convert("L").getcolors(256)) > 10
    assert "sandbox-idcard" in im.text


def test_ocr_front(sb, token):
    body = ocr(sb, token, mint(sb, **FRONT))
    assert body == {
        "errcode": 0,
        "errmsg": "ok",
        "type": "Front",
        "name": "张三",
        "id": "11010119900307123X",
        "addr": "北京市东城区沙箱路8号院3号楼",
        "gender": "男",  # 17th digit 3 is odd
        "nationality": "汉",
    }


def test_ocr_front_female_and_scan_mode(sb, token):
    body = ocr(sb, token, mint(sb, **{**FRONT, "name": "李四", "id_number": "440301199202024528"}), mode="scan")
    assert body["type"] == "Front" and body["name"] == "李四" and body["gender"] == "女"
    assert body["addr"] == FRONT["address"]


def test_ocr_back(sb, token):
    body = ocr(sb, token, mint(sb, **{**FRONT, "side": "back", "valid_until": "20300615"}))
    assert body == {"errcode": 0, "errmsg": "ok", "type": "Back", "valid_date": "20100615-20300615"}


def test_ocr_back_long_term(sb, token):
    body = ocr(sb, token, mint(sb, **{**FRONT, "side": "back", "valid_until": "长期", "valid_from": "20160301"}))
    assert body["type"] == "Back" and body["valid_date"] == "20160301-长期"
    body = ocr(sb, token, mint(sb, **{**FRONT, "side": "back", "valid_until": "长期"}))
    start, end = body["valid_date"].split("-")
    assert end == "长期" and len(start) == 8 and start.isdigit()


def test_ocr_jpeg_variant(sb, token):
    data = mint(sb, **FRONT, format="jpeg")
    assert data.startswith(b"\xff\xd8")
    body = ocr(sb, token, data, mime="image/jpeg")
    assert body["type"] == "Front" and body["id"] == FRONT["id_number"]


def resave_png(data: bytes, edit_text=None, edit_pixels=False) -> bytes:
    im = Image.open(io.BytesIO(data))
    text = dict(im.text)
    if edit_text:
        text["sandbox-idcard"] = edit_text(text["sandbox-idcard"])
    im = im.convert("RGB")
    if edit_pixels:
        im.putpixel((300, 200), (0, 0, 0) if im.getpixel((300, 200)) != (0, 0, 0) else (255, 255, 255))
    info = PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    out = io.BytesIO()
    im.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def test_lossless_resave_is_still_recognised(sb, token):
    data = resave_png(mint(sb, **FRONT))
    assert ocr(sb, token, data)["name"] == "张三"


def test_tampered_images_are_rejected(sb, token):
    original = mint(sb, **FRONT)

    def rename(raw: str) -> str:
        fields = json.loads(raw)
        fields["name"] = "王五"
        return json.dumps(fields, ensure_ascii=True, sort_keys=True, separators=(",", ":"))

    assert_wx_error(ocr(sb, token, resave_png(original, edit_text=rename)), 101001)
    assert_wx_error(ocr(sb, token, resave_png(original, edit_pixels=True)), 101001)
    # a plain PNG without our data
    plain = io.BytesIO()
    Image.new("RGB", (64, 40), (200, 200, 200)).save(plain, format="PNG")
    assert_wx_error(ocr(sb, token, plain.getvalue()), 101001)
    gif = io.BytesIO()
    Image.new("RGB", (64, 40), (200, 200, 200)).save(gif, format="GIF")
    assert_wx_error(ocr(sb, token, gif.getvalue(), mime="image/gif"), 101001)
    # garbage and truncated images
    assert_wx_error(ocr(sb, token, b"definitely not an image"), 101000)
    assert_wx_error(ocr(sb, token, original[:200]), 101000)


def test_ocr_request_errors(sb, token):
    r = sb.http.post(f"{sb.sb.wechat}/cv/ocr/idcard", params={"access_token": token, "img_url": "https://x/y.png"})
    assert_wx_error(r.json(), 101003)
    r = sb.http.post(f"{sb.sb.wechat}/cv/ocr/idcard", params={"access_token": token})
    assert_wx_error(r.json(), 101000)
    r = sb.http.post(f"{sb.sb.wechat}/cv/ocr/idcard", params={"access_token": "bad"},
                     files={"img": ("c", mint(sb, **FRONT), "image/png")})
    assert_wx_error(r.json(), 40001)


def pad_png(data: bytes, total: int) -> bytes:
    """``data`` grown to ``total`` bytes by a private ancillary chunk before IEND: still a valid PNG with
    the same pixels and text (decoders skip such chunks), only bigger."""
    n = total - len(data) - 12  # length, type and CRC fields
    assert n >= 0
    payload = bytes(range(256)) * (n // 256) + bytes(n % 256)
    chunk = struct.pack(">I", n) + b"sbPd" + payload + struct.pack(">I", zlib.crc32(b"sbPd" + payload))
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + chunk + data[iend:]


def test_ocr_refuses_images_of_2mb_or_more(sb, token):
    limit = 2 * 1024 * 1024  # WeChat: "文件大小限制:小于2M"
    original = mint(sb, **FRONT)
    just_under = pad_png(original, limit - 1)
    at_limit = pad_png(original, limit)
    big = pad_png(original, 3 * 1024 * 1024)
    for data in (just_under, at_limit, big):
        im = Image.open(io.BytesIO(data))
        im.load()  # a real, decodable PNG
        assert im.size == (640, 400) and "sandbox-idcard" in im.text
    assert ocr(sb, token, just_under)["name"] == "张三"
    body = ocr(sb, token, at_limit)
    assert_wx_error(body, 40009)
    assert "invalid image size" in body["errmsg"]
    assert_wx_error(ocr(sb, token, big), 40009)
    assert [c["errcode"] for c in sb.calls("cv/ocr/idcard")[-3:]] == [0, 40009, 40009]


def test_id_card_image_defaults(sb, token):
    """Without address (or with a null one) the card carries the sandbox's address, trimmed fields
    are kept trimmed and a lowercase x is read as X; nationality and authority have defaults."""
    plain = {k: v for k, v in FRONT.items() if k != "address"}
    for card in (plain, {**plain, "address": None}):
        body = ocr(sb, token, mint(sb, **card))
        assert body["addr"] == "北京市东城区沙箱路1号" and body["nationality"] == "汉", body
    body = ocr(sb, token, mint(sb, **{**FRONT, "name": "  张三 ", "id_number": "11010119900307123x",
                                      "nationality": " 回 "}))
    assert (body["name"], body["id"], body["nationality"]) == ("张三", "11010119900307123X", "回")
    back = ocr(sb, token, mint(sb, **{**FRONT, "side": "back"}))
    assert back["valid_date"] == "20150101-20350101"  # valid_from: valid_until minus 20 years


@pytest.mark.parametrize(
    "change,field",
    [
        ({"side": "top"}, "side"),
        ({"id_number": "1234"}, "id_number"),
        ({"valid_until": "20351301"}, "valid_until"),
        ({"valid_until": "forever"}, "valid_until"),
        ({"name": ""}, "name"),
    ],
)
def test_id_card_image_validation(sb, change, field):
    r = sb.control("POST", "id-card-images", json={**FRONT, **change})
    assert r.status_code == 400
    assert r.json()["code"] == "INVALID_REQUEST" and r.json()["field"] == field
