"""The Python load driver, run as its own process by ``bench.harness.drive`` where wrk is unavailable.

    python bench/drive.py SPEC.json      -> prints one JSON line: rps, p50_ms, p99_ms, max_ms, requests, errors

SPEC: ``{"method", "url", "headers"?, "connections", "seconds", "body"?: str, "bodies"?: [str, ...],
"targets"?: [[path, authorization], ...], "unique_header"?: [name, prefix], "signed"?: [[path, headers,
body], ...]}``.
With ``bodies``, each request takes the next body (one use each, e.g. single-use login codes) and the
run ends early when they run out. With ``targets``, requests go to each path as its user in turn; with
``unique_header``, each request carries that header with a value never sent before (``prefix`` + n).
With ``signed``, each request is the next one given (path, headers, body), sent once.

Each connection is a plain HTTP/1.1 keep-alive stream (asyncio), not an HTTP client library: httpx's
connection pool falls to ~150 requests/s at 64 concurrent requests here, which would measure the driver.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def run(spec: dict) -> dict:
    url = urlsplit(spec["url"])
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    common = "".join(f"{k}: {v}\r\n" for k, v in (spec.get("headers") or {}).items())
    targets = spec.get("targets") or [[target, None]]
    unique = spec.get("unique_header")
    signed = iter(spec.get("signed") or [])
    sent = 0

    def head() -> tuple[str, str | None]:
        nonlocal sent
        if spec.get("signed"):
            path, headers, body = next(signed, (None, None, None))
            if path is None:
                return "", None
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            return (f"{spec['method']} {path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
                    f"Content-Type: application/json\r\n{extra}"), body
        path, auth = targets[sent % len(targets)]
        sent += 1
        text = f"{spec['method']} {path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n{common}"
        if auth:
            text += f"Authorization: {auth}\r\n"
        if unique:
            text += f"{unique[0]}: {unique[1]}{sent}\r\n"
        return text, None

    bodies = iter(spec.get("bodies") or [])
    has_bodies = bool(spec.get("bodies"))
    deadline = time.perf_counter() + float(spec["seconds"])
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            while time.perf_counter() < deadline:
                body = spec.get("body") or ""
                if has_bodies:
                    body = next(bodies, None)
                    if body is None:
                        return
                start, own_body = head()
                if not start:
                    return  # the signed requests ran out
                data = (own_body if own_body is not None else body).encode()
                t0 = time.perf_counter()
                writer.write(f"{start}Content-Length: {len(data)}\r\n\r\n".encode() + data)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if not status_line.startswith(b"HTTP/1.1 2"):
                    errors += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(spec["connections"])))
    elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    pick = lambda q: latencies[min(n - 1, int(n * q))] * 1000 if n else float("nan")  # noqa: E731
    return {"rps": n / elapsed if elapsed else 0.0, "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "max_ms": latencies[-1] * 1000 if n else float("nan"), "requests": n, "errors": errors}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        print(json.dumps(asyncio.run(run(json.load(fh)))))
