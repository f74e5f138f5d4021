"""The Python load driver, run as its own process by ``bench.harness.drive``.

    python bench/drive.py SPEC.json      -> prints one JSON line: rps, p50_ms, p99_ms, max_ms, requests, errors

SPEC: ``{"method", "url", "headers"?, "connections", "seconds", "body"?: str, "bodies"?: [str, ...]}``. With
``bodies``, each request takes the next body (one use each, e.g. single-use login codes) and the run
ends early when they run out. Used where wrk cannot go: POST mixes and per-request bodies.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


async def run(spec: dict) -> dict:
    bodies = iter(spec.get("bodies") or [])
    has_bodies = bool(spec.get("bodies"))
    deadline = time.perf_counter() + float(spec["seconds"])
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=spec["connections"], max_keepalive_connections=spec["connections"])

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            body = spec.get("body")
            if has_bodies:
                body = next(bodies, None)
                if body is None:
                    return
            t0 = time.perf_counter()
            try:
                resp = await client.request(spec["method"], spec["url"], headers=spec.get("headers") or {},
                                            content=body.encode() if isinstance(body, str) else body)
                if resp.status_code >= 400:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(spec["connections"])))
        elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    pick = lambda q: latencies[min(n - 1, int(n * q))] * 1000 if n else float("nan")  # noqa: E731
    return {"rps": n / elapsed if elapsed else 0.0, "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "max_ms": latencies[-1] * 1000 if n else float("nan"), "requests": n, "errors": errors}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        print(json.dumps(asyncio.run(run(json.load(fh)))))
