"""One benchmark command: ``python -m bench [scenario...]``.

    python -m bench                       # every scenario (under 10 minutes on 2 cores)
    python -m bench me live --seconds 3   # some, shorter
    python -m bench --quick               # a smoke run: 1 s loads, 1 round (numbers mean little)

Each scenario starts its servers (MySQL; each in its own process group), seeds what it needs, drives
load from a separate process (wrk, installed from Debian's packages when missing, or ``bench/drive.py``
for POST mixes) and measures a bare-stack baseline in the same run, interleaved A/B/A/B, because this
machine drifts by ±25% between runs: the ratios are the figures that count. Prints a table with each
target, writes the results as JSON, stops everything it started.

The database is ``BENCH_DATABASE_URL`` (default ``mysql://root:@127.0.0.1:3306/openbank_bench``), one
the benchmark creates for itself and refuses to use otherwise, like the tests' own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.harness import ROOT, ensure_wrk
from bench.scenarios import SCENARIOS, Context

RSS_LIMIT_MB = 200


def _fmt(load: dict | None) -> str:
    if not load:
        return "—"
    return f"{load['rps']:8.0f}/s  p50 {load['p50_ms']:6.1f}  p99 {load['p99_ms']:6.1f}  max {load['max_ms']:7.1f}  err {load['errors']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", choices=[[], *SCENARIOS], metavar="scenario",
                        help=f"any of: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--seconds", type=float, default=5, help="length of each load run")
    parser.add_argument("--rounds", type=int, default=5, help="A/B rounds per comparison (the median counts)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="1 s runs, 1 round: checks the harness, not speed")
    parser.add_argument("--json", type=Path, default=None, help="where to write results (default var/bench/)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the servers' logs in this folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = 1, 1
    chosen = args.scenarios or list(SCENARIOS)

    sys.path.insert(0, str(ROOT))
    from tests.testdb import NotOurDatabase, claim

    db_url = os.environ.get("BENCH_DATABASE_URL", "mysql://root:@127.0.0.1:3306/openbank_bench")
    try:
        claim(db_url, marker="_openbank_bench")
    except NotOurDatabase as exc:
        print(f"error: {exc}".replace("TEST_DATABASE_URL", "BENCH_DATABASE_URL"), file=sys.stderr)
        return 2
    wrk = ensure_wrk()
    started = time.monotonic()
    print(f"python -m bench: {', '.join(chosen)} | {os.cpu_count()} cores, {platform.python_version()}, "
          f"load: {'wrk' if wrk else 'bench/drive.py (wrk unavailable)'}, {args.connections} connections, "
          f"{args.seconds:g}s x {args.rounds} rounds", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            work = args.keep
        ctx = Context(db_url, work, args.seconds, args.rounds, args.connections)
        for name in chosen:
            t0 = time.monotonic()
            try:
                result = SCENARIOS[name](ctx)
            finally:
                ctx.stop_all()  # whatever the scenario started, even when it failed half-way
            over = {pid: mb for pid, mb in result.rss_mb.items() if mb > RSS_LIMIT_MB}
            if over:
                result.notes.append(f"RSS over {RSS_LIMIT_MB} MB: {over}")
                result.met = False
            results.append(result)
            verdict = "—" if result.met is None else ("met" if result.met else "BELOW TARGET")
            print(f"\n[{name}] {result.what}  ({time.monotonic() - t0:.0f}s)")
            print(f"  project   {_fmt(result.project)}")
            if result.baseline:
                print(f"  baseline  {_fmt(result.baseline)}   ({result.baseline_what})")
            if result.ratio is not None:
                p99 = f", p99 {result.p99_ratio:.2f}x" if result.p99_ratio is not None else ""
                print(f"  ratio     {result.ratio:.2f}x throughput{p99}")
            rss = ", ".join(f"{mb:.0f}" for mb in result.rss_mb.values())
            print(f"  target    {result.target}: {verdict}" + (f"   RSS per worker MB: {rss}" if rss else ""))
            for note in result.notes:
                print(f"  note      {note}")
            sys.stdout.flush()
    elapsed = time.monotonic() - started
    print(f"\n{'scenario':10s} {'ratio':>7s} {'p99 ratio':>9s}  target")
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "—"
        p99 = f"{r.p99_ratio:.2f}x" if r.p99_ratio is not None else "—"
        verdict = "" if r.met is None else ("met" if r.met else "BELOW TARGET")
        print(f"{r.scenario:10s} {ratio:>7s} {p99:>9s}  {r.target} {verdict}")
    print(f"total {elapsed:.0f}s")
    out = args.json or ROOT / "var" / "bench" / f"bench-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "at": datetime.now(timezone.utc).isoformat(), "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                                                                  "platform": platform.platform()},
        "settings": {"seconds": args.seconds, "rounds": args.rounds, "connections": args.connections, "wrk": bool(wrk)},
        "elapsed_s": round(elapsed, 1), "results": [r.as_dict() for r in results],
    }, indent=1, ensure_ascii=False))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
