"""Where the signatures go on a contract's last page.

The renderer reserves a signature area at the end of every contract and writes its position into the
PDF's Info dictionary (``/SignatureArea [page x y w h]``); the signer reads it back and draws into it.
Both sides split the area with the same code, here, so the boxes the renderer outlines are exactly the
ones the signer fills.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Points (1/72 inch). A4 with 20 mm side margins leaves ~482 pt of width.
AREA_HEIGHT = 150.0
BOX_GAP = 12.0
LABEL_HEIGHT = 18.0
PADDING = 4.0

CUSTOMER_LABEL = "甲方（签署人）签名："
BANK_LABEL = "乙方（银行）电子签章："


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) rounded inward, as pyHanko's ``SigFieldSpec.box`` wants."""
        return (
            math.ceil(self.x),
            math.ceil(self.y),
            math.floor(self.x + self.w),
            math.floor(self.y + self.h),
        )


@dataclass(frozen=True)
class SignatureArea:
    page: int  # 0-based page index
    x: float
    y: float
    w: float
    h: float

    def _half(self, right: bool) -> Rect:
        half = (self.w - BOX_GAP) / 2
        x = self.x + (half + BOX_GAP if right else 0)
        return Rect(x, self.y, half, self.h)

    @property
    def customer_box(self) -> Rect:
        return self._half(False)

    @property
    def bank_box(self) -> Rect:
        return self._half(True)

    @staticmethod
    def content(box: Rect) -> Rect:
        """The part of a box below its label, inside the padding."""
        return Rect(
            box.x + PADDING,
            box.y + PADDING,
            box.w - 2 * PADDING,
            box.h - LABEL_HEIGHT - 2 * PADDING,
        )

    def as_list(self) -> list[float]:
        return [self.page, round(self.x, 2), round(self.y, 2), round(self.w, 2), round(self.h, 2)]

    @classmethod
    def from_list(cls, values) -> "SignatureArea":
        page, x, y, w, h = (float(v) for v in values)
        if page < 0 or w <= 0 or h <= 0:
            raise ValueError("bad signature area")
        return cls(int(page), x, y, w, h)
