"""API latency/throughput benchmark: what each layer costs, as ratios against a trivial route.

    python bench/bench_api.py [--requests 2000] [--concurrency 20] [--workers 1]

Starts ``python -m app serve`` (sandbox mode, a temp SQLite unless DATABASE_URL is MySQL) in its own
session, logs in through the emulator, then drives three routes from one client process on this
machine: ``/health/live`` (framework only), ``GET /api/v1/me`` (JWT check + two primary-key reads +
PII decryption) and ``POST /api/v1/auth/refresh`` (a locked write transaction). Prints requests per
second, p50/p99 latency and each route's cost relative to ``/health/live``. Numbers, never asserts.

The GET routes are driven by ``wrk`` when it is installed (``apt-get install wrk``): a Python client
saturates long before the server does, so without wrk the numbers describe the client as much.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def drive(client: httpx.AsyncClient, make_request, n: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(range(n))

    async def worker():
        for _ in queue:
            t0 = time.perf_counter()
            resp = await make_request(client)
            latencies.append(time.perf_counter() - t0)
            if resp.status_code >= 400:
                raise SystemExit(f"unexpected {resp.status_code}: {resp.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started), latencies


def wrk(url: str, headers: dict, seconds: int, concurrency: int) -> tuple[float, str, str]:
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+(\S+)", out).group(1)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise SystemExit(f"wrk saw error responses for {url}:\n{out}")
    return rps, p50, p99


async def main(args) -> None:
    var = Path(tempfile.mkdtemp(prefix="bench-api-"))
    port = free_port()
    env = {**os.environ, "VAR_DIR": str(var), "PYTHONPATH": str(ROOT)}
    if not env.get("DATABASE_URL", "").startswith("mysql"):
        env["DATABASE_URL"] = f"sqlite://{var}/app.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(args.workers)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False,
                                     limits=httpx.Limits(max_connections=args.concurrency)) as client:
            for _ in range(200):
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            code = (await client.post("/sandbox/control/login-code", json={})).json()["code"]
            login = (await client.post("/api/v1/auth/login", json={"code": code})).json()
            auth = {"Authorization": f"Bearer {login['access_token']}"}
            refresh = {"token": login["refresh_token"]}

            async def do_refresh(c):
                resp = await c.post("/api/v1/auth/refresh", json={"refresh_token": refresh["token"]})
                refresh["token"] = resp.json()["refresh_token"]
                return resp

            routes = [
                ("GET /health/live", lambda c: c.get("/health/live"), args.concurrency),
                ("GET /api/v1/me", lambda c: c.get("/api/v1/me", headers=auth), args.concurrency),
                # rotation is sequential per token family by design
                ("POST /api/v1/auth/refresh", do_refresh, 1),
            ]
            await drive(client, routes[0][1], 200, args.concurrency)  # warm up
            base_rps = None
            if shutil.which("wrk"):
                print(f"API benchmark (wrk, {args.seconds}s per route, {args.concurrency} connections), "
                      f"workers={args.workers}, db={env['DATABASE_URL'].split(':')[0]}")
                for name, path, headers in [("GET /health/live", "/health/live", {}), ("GET /api/v1/me", "/api/v1/me", auth)]:
                    rps, p50, p99 = await asyncio.to_thread(wrk, base + path, headers, args.seconds, args.concurrency)
                    base_rps = base_rps or rps
                    print(f"  {name:28s} {rps:8.0f} req/s  p50 {p50:>8s}  p99 {p99:>8s}  cost vs live {base_rps / rps:5.1f}x")
                routes = routes[2:]
            if routes and routes[0][0].startswith("GET"):
                print(f"API benchmark: {args.requests} requests per route, workers={args.workers}, "
                      f"db={env['DATABASE_URL'].split(':')[0]}")
            for name, make, conc in routes:
                n = args.requests if conc > 1 else max(200, args.requests // 10)
                rps, lat = await drive(client, make, n, conc)
                lat.sort()
                base_rps = base_rps or rps
                print(f"  {name:28s} {rps:8.0f} req/s (concurrency {conc:2d})  p50 {statistics.median(lat)*1000:6.1f} ms"
                      f"  p99 {lat[int(len(lat)*0.99)-1]*1000:6.1f} ms  cost vs live {base_rps / rps:5.1f}x")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
