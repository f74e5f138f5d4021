"""How many contracts per second one process renders and signs (PAdES B-B, dev identity).

    python bench/bench_esign.py [--n 30] [--workers 2] [--tsa-url URL] [--var-dir DIR]

Prints throughput sequentially and with a thread pool, the split between rendering and signing, the
same through the async wrappers with the event loop's lag while they run (what a Sanic worker would
see), and verification throughput. Numbers only: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw  # noqa: E402

from services.esign.certs import BankSigningIdentity  # noqa: E402
from services.esign.render import render_contract, render_contract_async, resolve_font  # noqa: E402
from services.esign.signing import sign_contract, sign_contract_async  # noqa: E402
from services.esign.verification import verify_pdf  # noqa: E402

CONTEXT = {
    "signer_name": "张三丰",
    "signer_id_number": "11010519491231002X",
    "signer_phone": "13812345678",
    "bound_card_number": "6222021234561234",
    "account_number": "6230580000000000018",
    "plate_number": "京A12345",
    "plate_color": "blue",
    "etc_card_number": "11011234567890123456",
    "date": "2026-11-20",
}
CASES = [
    ("account_agreement", "II"),
    ("account_agreement", "III"),
    ("etc_autodebit", None),
    ("privacy_consent", None),
]
LINES = ["签署人：张*丰", "证件号码：1101**********002X", "人脸核验：fv-bench", "存证编号：EV-bench"]


def signature_png() -> bytes:
    img = Image.new("RGBA", (600, 200), (255, 255, 255, 0))
    ImageDraw.Draw(img).line([(20, 150), (200, 40), (300, 160), (450, 60), (580, 120)], fill="black", width=8)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def one(i: int, identity, png: bytes, tsa_url: str | None) -> tuple[float, float, bytes]:
    code, variant = CASES[i % len(CASES)]
    t0 = time.perf_counter()
    pdf = render_contract(code, CONTEXT, variant=variant, contract_ref=f"BENCH-{i:05d}").pdf
    t1 = time.perf_counter()
    signed = sign_contract(
        pdf, identity=identity, signature_png=png, signer_lines=LINES,
        signed_at=dt.datetime.now(dt.timezone.utc), tsa_url=tsa_url,
    )
    return t1 - t0, time.perf_counter() - t1, signed


async def through_the_loop(n: int, concurrency: int, identity, png: bytes, tsa_url: str | None):
    """Render+sign n contracts via the async wrappers, ``concurrency`` at a time, while a 1 ms ticker
    measures how late the event loop wakes up."""
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker():
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t - 0.001)

    gate = asyncio.Semaphore(concurrency)

    async def job(i: int):
        code, variant = CASES[i % len(CASES)]
        async with gate:
            ref = f"ASYNC-{i:05d}"
            rendered = await render_contract_async(code, CONTEXT, variant=variant, contract_ref=ref)
            pdf = rendered.pdf
            await sign_contract_async(pdf, identity=identity, signature_png=png, signer_lines=LINES,
                                      signed_at=dt.datetime.now(dt.timezone.utc), tsa_url=tsa_url)

    tick = asyncio.create_task(ticker())
    t = time.perf_counter()
    await asyncio.gather(*(job(i) for i in range(n)))
    wall = time.perf_counter() - t
    done.set()
    await tick
    lags.sort()
    return n / wall, lags[len(lags) // 2], lags[int(len(lags) * 0.99)], lags[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="contracts per run (default 30)")
    ap.add_argument("--workers", type=int, default=2, help="thread-pool size (default 2)")
    ap.add_argument("--tsa-url", default=None, help="sign B-T against this TSA")
    ap.add_argument("--var-dir", default=None, help="where the dev identity lives (default: a temp dir)")
    args = ap.parse_args()

    var_dir = args.var_dir or tempfile.mkdtemp(prefix="bench-esign-")
    identity = BankSigningIdentity.dev(var_dir)
    png = signature_png()
    font = resolve_font()
    one(0, identity, png, args.tsa_url)  # warm-up: font parsing, imports

    t = time.perf_counter()
    seq = [one(i, identity, png, args.tsa_url) for i in range(args.n)]
    seq_wall = time.perf_counter() - t
    render_s = [r for r, _, _ in seq]
    sign_s = [s for _, s, _ in seq]

    t = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(lambda i: one(i, identity, png, args.tsa_url), range(args.n)))
    pool_wall = time.perf_counter() - t

    async_rate, lag_p50, lag_p99, lag_max = asyncio.run(
        through_the_loop(args.n, args.workers, identity, png, args.tsa_url)
    )

    signed = [pdf for _, _, pdf in seq]
    t = time.perf_counter()
    ok = sum(verify_pdf(pdf, trust_roots=identity.trust_roots).ok for pdf in signed)
    verify_wall = time.perf_counter() - t

    ms = lambda xs: f"{statistics.mean(xs) * 1000:7.1f} ms mean, {max(xs) * 1000:7.1f} ms max"  # noqa: E731
    font_label = f"embedded {font.path}" if font.embedded else f"{font.name} (not embedded)"
    key_label = identity.certificate.signature_algorithm_oid._name
    print(f"e-sign benchmark: n={args.n}, font={font_label}, "
          f"profile=PAdES {'B-T' if args.tsa_url else 'B-B'}, key={key_label}")
    print(f"  render             {ms(render_s)}")
    print(f"  sign               {ms(sign_s)}")
    print(f"  signing/rendering  {sum(sign_s) / sum(render_s):.2f}x")
    print(f"  sequential         {args.n / seq_wall:7.1f} contracts/s (render+sign)")
    print(f"  thread pool of {args.workers}   {args.n / pool_wall:7.1f} contracts/s "
          f"({seq_wall / pool_wall:.2f}x sequential)")
    print(f"  async wrappers, {args.workers} at a time {async_rate:7.1f} contracts/s; event-loop lag "
          f"p50 {lag_p50 * 1000:.1f} ms, p99 {lag_p99 * 1000:.1f} ms, max {lag_max * 1000:.1f} ms")
    print(f"  verify (pyHanko)   {len(signed) / verify_wall:7.1f} PDFs/s, {ok}/{len(signed)} ok")
    print(f"  signed PDF size    {statistics.mean(len(p) for p in signed) / 1024:.0f} KiB mean")


if __name__ == "__main__":
    main()
