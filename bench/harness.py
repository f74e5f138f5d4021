"""Processes and load for the benchmarks: servers in their own sessions, wrk or a Python driver in
another process, RSS readings, and the interleaved A/B rounds every ratio comes from."""

from __future__ import annotations

import json
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server process in its own session (Sanic's forced shutdown kills its whole process group)."""

    def __init__(self, name: str, cmd: list[str], *, env: dict | None = None, ready: str, log_dir: Path) -> None:
        self.name = name
        self.ready_url = ready
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env or {**os.environ, "PYTHONPATH": str(ROOT)},
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(self.ready_url, timeout=2, trust_env=False).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def pids(self) -> list[int]:
        """The main process and its descendants (Sanic's workers, pool children)."""
        found, frontier = [self.proc.pid], [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            try:
                kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                found.append(kid)
                frontier.append(kid)
        return found

    def rss_mb(self) -> dict[int, float]:
        out = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1]) / 1024
            except OSError:
                pass
        return out

    def stop(self) -> None:
        if self._log.closed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def cpu_seconds(pids) -> float:
    """User + system CPU the processes have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def pids_named(*names: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def children_cpu_seconds() -> float:
    """CPU used by this process's finished children so far (wrk, the Python driver)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Load:
    """One load run's figures."""

    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int


def ensure_wrk() -> str | None:
    """wrk, installed from Debian's packages when missing and we may; None means use the Python driver."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


# POSTs for wrk: each request takes the next body from a file (one per line), so single-use bodies
# (login codes) are each sent once; when they run out the last one repeats, and shows as errors.
_POST_LUA = """
local bodies, i = {}, 0
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  if i < #bodies then i = i + 1 end
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def wrk(url: str, *, seconds: float, connections: int, headers: dict | None = None,
        bodies: list[str] | None = None) -> Load:
    cmd = [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "--timeout", "10s"]
    env = None
    if bodies is not None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
        (tmp / "post.lua").write_text(_POST_LUA)
        (tmp / "bodies.txt").write_text("\n".join(bodies) + "\n", encoding="utf-8")
        cmd += ["-s", str(tmp / "post.lua")]
        env = {**os.environ, "BENCH_BODIES": str(tmp / "bodies.txt")}
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60, env=env).stdout
    return _wrk_figures(out)


def _wrk_figures(out: str) -> Load:
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return Load(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        # anchored: "68.99%" in the thread stats must not read as the 99th percentile
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        max_ms=_ms(latency.group(3)) if latency else float("nan"),
        requests=int(total.group(1)) if total else 0,
        errors=(int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    )


# POSTs to many resources as many users: each request takes the next (path, Authorization) from a file,
# round robin, and carries a fresh Idempotency-Key (a run prefix and a counter; wrk runs one thread).
_TARGETS_LUA = """
local targets, i = {}, 0
for line in io.lines(os.getenv("BENCH_TARGETS")) do
  local path, auth = line:match("^([^\t]+)\t(.+)$")
  targets[#targets + 1] = {path, auth}
end
local prefix, body = os.getenv("BENCH_KEY_PREFIX"), os.getenv("BENCH_BODY")
request = function()
  i = i + 1
  local t = targets[(i - 1) % #targets + 1]
  return wrk.format("POST", t[1], {["Content-Type"] = "application/json", ["Authorization"] = t[2],
                                   ["Idempotency-Key"] = prefix .. i}, body)
end
"""


def post_targets(base: str, targets: list[tuple[str, str]], body: str, *, seconds: float, connections: int) -> Load:
    """POST ``body`` to each ``(path, authorization)`` in turn, every request under a new Idempotency-Key."""
    prefix = f"bench-{os.urandom(4).hex()}-"
    if shutil.which("wrk"):
        tmp = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
        (tmp / "targets.lua").write_text(_TARGETS_LUA)
        (tmp / "targets.txt").write_text("".join(f"{p}\t{a}\n" for p, a in targets), encoding="utf-8")
        cmd = [shutil.which("wrk"), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
               "--timeout", "10s", "-s", str(tmp / "targets.lua"), base]
        env = {**os.environ, "BENCH_TARGETS": str(tmp / "targets.txt"), "BENCH_KEY_PREFIX": prefix, "BENCH_BODY": body}
        return _wrk_figures(subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, env=env).stdout)
    return drive({"method": "POST", "url": base, "connections": connections, "body": body,
                  "headers": {"Content-Type": "application/json"}, "targets": targets, "unique_header":
                  ["Idempotency-Key", prefix]}, seconds=seconds)


# Requests signed beforehand (partner signatures need HMAC, WeChat Pay's RSA, which wrk's Lua lacks): each
# line is the path, the headers as name/value pairs and the body, tab-separated; each is sent once, in order.
_SIGNED_LUA = """
local reqs, i = {}, 0
-- each line: path, then header name and value pairs, then the body; tab-separated (compact JSON has no tab)
for line in io.lines(os.getenv("BENCH_SIGNED")) do
  local f = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do f[#f + 1] = field end
  local headers = {["Content-Type"] = "application/json"}
  for k = 2, #f - 2, 2 do headers[f[k]] = f[k + 1] end
  reqs[#reqs + 1] = {f[1], headers, f[#f]}
end
request = function()
  if i < #reqs then i = i + 1 end
  local r = reqs[i]
  return wrk.format("POST", r[1], r[2], r[3])
end
"""


def post_signed(base: str, requests: list[tuple[str, dict, str]], *, seconds: float, connections: int) -> Load:
    """POST each ``(path, signing headers, body)`` once, in order (the last repeats if they run out)."""
    if shutil.which("wrk"):
        tmp = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
        (tmp / "signed.lua").write_text(_SIGNED_LUA)
        (tmp / "signed.txt").write_text("".join(
            "\t".join((p, *(x for pair in h.items() for x in pair), b)) + "\n" for p, h, b in requests),
            encoding="utf-8")
        cmd = [shutil.which("wrk"), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
               "--timeout", "10s", "-s", str(tmp / "signed.lua"), base]
        env = {**os.environ, "BENCH_SIGNED": str(tmp / "signed.txt")}
        return _wrk_figures(subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, env=env).stdout)
    return drive({"method": "POST", "url": base, "connections": connections,
                  "signed": [[p, h, b] for p, h, b in requests]}, seconds=seconds)


def drive(spec: dict, *, seconds: float) -> Load:
    """The Python driver (``bench/drive.py``) in its own process: for POST mixes and per-request bodies."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({**spec, "seconds": seconds}, fh)
    try:
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "drive.py"), fh.name], capture_output=True,
                             text=True, timeout=seconds + 120)
        if out.returncode != 0:
            raise RuntimeError(f"driver failed:\n{out.stderr[-3000:]}")
        return Load(**json.loads(out.stdout))
    finally:
        os.unlink(fh.name)


def load(url: str, *, seconds: float, connections: int, headers: dict | None = None) -> Load:
    if shutil.which("wrk"):
        return wrk(url, seconds=seconds, connections=connections, headers=headers)
    return drive({"method": "GET", "url": url, "headers": headers or {}, "connections": connections}, seconds=seconds)


def post(url: str, bodies: list[str], *, seconds: float, connections: int) -> Load:
    """POST JSON bodies, each once in order (the last repeats if they run out)."""
    if shutil.which("wrk"):
        return wrk(url, seconds=seconds, connections=connections, bodies=bodies)
    return drive({"method": "POST", "url": url, "connections": connections,
                  "headers": {"Content-Type": "application/json"}, "bodies": bodies}, seconds=seconds)


@dataclass
class Result:
    """One scenario: the project's figures, the baseline's, their ratio, and the target."""

    scenario: str
    what: str
    project: dict
    baseline: dict | None = None
    baseline_what: str | None = None
    ratio: float | None = None  # project / baseline throughput (or the scenario's own comparison)
    p99_ratio: float | None = None
    target: str = ""
    met: bool | None = None
    rss_mb: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def interleave(a, b, *, rounds: int) -> tuple[Load, Load]:
    """Run ``a`` and ``b`` alternately (A/B/A/B...) and keep the median round of each: this machine
    drifts by ±25% between runs, so only figures taken side by side are compared."""
    runs_a, runs_b = [], []
    for _ in range(rounds):
        runs_a.append(a())
        runs_b.append(b())
    return _median(runs_a), _median(runs_b)


def _median(runs: list[Load]) -> Load:
    ordered = sorted(runs, key=lambda r: r.rps)
    mid = ordered[len(ordered) // 2]
    return Load(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        max_ms=max(r.max_ms for r in runs),
        requests=sum(r.requests for r in runs),
        errors=sum(r.errors for r in runs),
    ) if len(runs) > 1 else mid
