"""Test data for the e-signing tests."""

from __future__ import annotations

import datetime as dt
import io

from PIL import Image, ImageDraw

CONTEXT = {
    "signer_name": "张三丰",
    "signer_id_number": "11010519491231002X",
    "signer_phone": "13812345678",
    "account_class": "II",
    "bound_card_number": "6222021234561234",
    "account_number": "6230580000000000018",
    "plate_number": "京A12345",
    "plate_color": "blue",
    "etc_card_number": "11011234567890123456",
    "date": "2026-11-20",
}
SIGNER_LINES = ["签署人：张*丰", "证件号码：1101**********002X", "人脸核验：fv-20261120-0001", "存证编号：EV-0001"]
SIGNED_AT = dt.datetime(2026, 11, 20, 2, 30, tzinfo=dt.timezone.utc)


def signature_png(size=(600, 200), fmt="PNG") -> bytes:
    img = Image.new("RGBA" if fmt == "PNG" else "RGB", size, (255, 255, 255, 0) if fmt == "PNG" else "white")
    d = ImageDraw.Draw(img)
    d.line([(20, 150), (200, 40), (300, 160), (450, 60), (580, 120)], fill=(10, 10, 10), width=8)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()
