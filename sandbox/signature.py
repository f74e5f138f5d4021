"""A handwritten-looking signature image, for ``POST /sandbox/control/signature-image``.

In the mini-program the user signs on a canvas and the page uploads the canvas as a PNG. Without a
phone at hand (curl, tests) this draws something similar with Pillow: a slanted cursive line of
loops, an initial and an underline flourish, in dark ink with tapered, pressure-varying strokes,
on a transparent background (what a canvas export gives), 600×200 pixels.

The strokes are generated from ``text`` (any string, e.g. the signer's name): the same text gives
the same image, another text another one. The text itself is not written (a CJK font may be
missing on the machine, and a real signature is rarely legible anyway).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import random

from PIL import Image, ImageDraw
from pydantic import Field, field_validator
from sanic import Request
from sanic.response import HTTPResponse, raw

from sandbox.control_kit import Body, ControlRoutes, bad, parse

SIZE = (600, 200)
SCALE = 3  # drawn larger, then downsampled: smooth (anti-aliased) edges
INK = (22, 30, 78)
SLANT = 0.28  # italic shear: x += (baseline - y) * SLANT
BASELINE = 118.0

Point = tuple[float, float]


def _catmull_rom(points: list[Point], steps: int = 14) -> list[Point]:
    """A smooth curve through ``points`` (centripetal-free, uniform Catmull-Rom)."""
    if len(points) < 2:
        return list(points)
    padded = [points[0], *points, points[-1]]
    out: list[Point] = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        for s in range(steps):
            t = s / steps
            t2, t3 = t * t, t * t * t
            x = 0.5 * (2 * p1[0] + (-p0[0] + p2[0]) * t + (2 * p0[0] - 5 * p1[0] + 4 * p2[0] - p3[0]) * t2
                       + (-p0[0] + 3 * p1[0] - 3 * p2[0] + p3[0]) * t3)
            y = 0.5 * (2 * p1[1] + (-p0[1] + p2[1]) * t + (2 * p0[1] - 5 * p1[1] + 4 * p2[1] - p3[1]) * t2
                       + (-p0[1] + 3 * p1[1] - 3 * p2[1] + p3[1]) * t3)
            out.append((x, y))
    out.append(points[-1])
    return out


def _slant(points: list[Point]) -> list[Point]:
    return [(x + (BASELINE - y) * SLANT, y) for x, y in points]


def _stroke(draw: ImageDraw.ImageDraw, points: list[Point], width: float, rng: random.Random) -> None:
    """Draw a polyline whose width follows a pen pressure: thin at both ends, thicker inside."""
    n = len(points)
    wobble = rng.uniform(0.0, math.tau)
    for i in range(1, n):
        t = i / (n - 1)
        pressure = 0.35 + 0.65 * math.sin(math.pi * t) ** 0.6 + 0.12 * math.sin(wobble + t * 9)
        w = max(1.0, width * pressure) * SCALE
        (x0, y0), (x1, y1) = points[i - 1], points[i]
        a = (x0 * SCALE, y0 * SCALE)
        b = (x1 * SCALE, y1 * SCALE)
        draw.line([a, b], fill=255, width=round(w))
        r = w / 2
        draw.ellipse((b[0] - r, b[1] - r, b[0] + r, b[1] + r), fill=255)


def _cursive(rng: random.Random, x0: float, x1: float, loops: int) -> list[Point]:
    """Control points of a cursive run: alternating tall loops and baseline troughs."""
    step = (x1 - x0) / loops
    pts: list[Point] = [(x0, BASELINE + rng.uniform(-4, 6))]
    x = x0
    for _ in range(loops):
        tall = rng.random() < 0.55
        top = BASELINE - (rng.uniform(48, 78) if tall else rng.uniform(16, 32))
        pts.append((x + step * 0.55, top))
        pts.append((x + step * (0.25 if tall else 0.45), top + rng.uniform(8, 18)))  # turn back: a loop
        pts.append((x + step * 0.95, BASELINE + rng.uniform(-3, 8)))
        x += step
    pts.append((x1 + rng.uniform(10, 25), BASELINE - rng.uniform(10, 30)))
    return pts


def _initial(rng: random.Random, cx: float) -> list[Point]:
    """A large looped initial: one and a half turns of a tilted ellipse, then down to the baseline."""
    rx, ry = rng.uniform(22, 32), rng.uniform(40, 55)
    cy = BASELINE - ry * 0.75
    turn = rng.uniform(-0.4, 0.4)
    pts = []
    for i in range(19):
        a = math.pi * 0.5 + i / 18 * math.pi * 3
        x = cx + rx * math.cos(a) * math.cos(turn) - ry * math.sin(a) * math.sin(turn) * 0.3
        y = cy - ry * math.sin(a)
        pts.append((x, y))
    pts.append((cx + rx * 0.8, BASELINE + 6))
    return pts


def _flourish(rng: random.Random, x0: float, x1: float) -> list[Point]:
    """An underline that starts with a hook and sweeps right, slightly rising."""
    y = BASELINE + rng.uniform(22, 34)
    return [
        (x0 + 20, y - 14),
        (x0, y + 2),
        (x0 + 40, y + 6),
        ((x0 + x1) / 2, y + rng.uniform(-2, 6)),
        (x1, y - rng.uniform(8, 20)),
        (x1 + 20, y - rng.uniform(22, 32)),
    ]


def draw_signature(text: str) -> bytes:
    """A PNG (RGBA, transparent background) of a signature generated from ``text``. CPU-bound."""
    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    mask = Image.new("L", (SIZE[0] * SCALE, SIZE[1] * SCALE), 0)
    draw = ImageDraw.Draw(mask)
    loops = max(3, min(7, len(text) + 2))
    start = rng.uniform(70, 95)
    end = rng.uniform(430, 480)
    _stroke(draw, _slant(_catmull_rom(_initial(rng, start - 30))), rng.uniform(3.2, 4.2), rng)
    _stroke(draw, _slant(_catmull_rom(_cursive(rng, start + 10, end, loops))), rng.uniform(2.6, 3.6), rng)
    _stroke(draw, _slant(_catmull_rom(_flourish(rng, start - 10, end + 30))), rng.uniform(2.2, 3.2), rng)
    # a dot or short tick above the run, as over an i or in a 汉字 stroke
    dx = rng.uniform(start + 80, end - 40)
    tick = [(dx, BASELINE - 70), (dx + 4, BASELINE - 74), (dx + 10, BASELINE - 73)]
    _stroke(draw, _slant(_catmull_rom(tick, 5)), 5.0, rng)
    alpha = mask.resize(SIZE, Image.Resampling.LANCZOS)
    image = Image.new("RGBA", SIZE, INK + (0,))
    image.putalpha(alpha)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


# -- control route: the signature the user draws on the phone ------------------------------------


class SignatureBody(Body):
    text: str = Field("沙箱用户", description="text must be a non-empty string of at most 32 characters")

    @field_validator("text")
    @classmethod
    def some_text(cls, value: str) -> str:
        if not value.strip() or len(value) > 32:
            raise bad("text", "text must be a non-empty string of at most 32 characters")
        return value.strip()


def add_control_routes(routes: ControlRoutes) -> None:
    @routes.route("/signature-image", ["POST"])
    async def signature_image(request: Request) -> HTTPResponse:
        text = parse(SignatureBody, request).text
        return raw(await asyncio.to_thread(draw_signature, text), content_type="image/png")
