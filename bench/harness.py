"""The load-test harness: gunicorn on a free local port, wrk with a generated Lua script, results.

Every figure here is noisy (the machine is shared); benchmarks compare ratios taken in one run.
wrk reports its numbers through a Lua ``done`` hook as one JSON line, so nothing depends on the
layout of wrk's human-readable output.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"  # scratch space (logs, databases); ignored by git
WRK = shutil.which("wrk") or "/usr/bin/wrk"

# Short runs by default: the machine is shared, and ratios from one run are what we compare.
DEFAULT_DURATION = float(os.environ.get("BENCH_DURATION", "5"))
DEFAULT_CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
DEFAULT_THREADS = int(os.environ.get("BENCH_THREADS", "2"))
RESULT_MARK = "BENCH_RESULT "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_dir(prefix: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=OUT))


# ---------------------------------------------------------------- the server


def child_env(env: dict[str, str]) -> dict[str, str]:
    """Our environment without any HELPDESK_/WAZZUP24_ setting of the caller's, plus ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
    full.update(env)
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full.get("PYTHONPATH")]))
    return full


class _Child:
    """A process of ours with its output in a log file; stopped by its PID (TERM, then KILL)."""

    proc: subprocess.Popen
    log_path: Path

    def _spawn(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        # cwd is a scratch directory so that a developer's .env never changes what is measured.
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=child_env(env), stdout=self._log, stderr=subprocess.STDOUT)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not self._log.closed:
            self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Server(_Child):
    """A gunicorn master with sync workers serving one WSGI app; stop it with :meth:`stop`."""

    def __init__(self, app_spec: str, env: dict[str, str], workers: int = 2, cwd: Path | None = None,
                 ready_path: str = "/", name: str = "server", timeout: float = 30.0):
        self.app_spec = app_spec
        self.ready_path = ready_path
        self.cwd = cwd or scratch_dir(f"{name}-")
        self.log_path = self.cwd / f"{name}.log"
        for attempt in range(3):  # a free port can be taken by someone else before gunicorn binds it
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self._spawn([sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", str(workers),
                         "--worker-class", "sync", "--bind", f"127.0.0.1:{self.port}", "--timeout", "120",
                         "--graceful-timeout", "5", app_spec], env, self.cwd)
            try:
                self._wait_ready(ready_path, timeout, workers)
                return
            except RuntimeError:
                if attempt == 2 or "Address already in use" not in self.log_tail():
                    raise

    def _wait_ready(self, path: str, timeout: float, workers: int) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                requests.get(self.url + path, timeout=2)
                if len(self.worker_pids()) >= workers:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.app_spec} did not start; its log:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each worker (VmRSS), in MiB."""
        sizes = []
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024)
            except OSError:
                continue
        return sizes



@contextmanager
def serving(app_spec: str, env: dict[str, str], **kwargs):
    server = Server(app_spec, env, **kwargs)
    try:
        yield server
    finally:
        server.stop()


class Background(_Child):
    """Any long-running command of ours (a sandbox, an outbox worker)."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str, ready_url: str | None = None,
                 cwd: Path | None = None, timeout: float = 30.0):
        self.cwd = cwd or scratch_dir(f"{name}-")
        self.log_path = self.cwd / f"{name}.log"
        self._spawn(argv, env, self.cwd)
        if ready_url:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    requests.get(ready_url, timeout=2)
                    return
                except requests.RequestException:
                    time.sleep(0.1)
            self.stop()
            raise RuntimeError(f"{name} did not start; its log:\n{self.log_tail()}")


# ---------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    non2xx: int
    socket_errors: int
    per_request: int = 1  # messages carried by each request

    @property
    def msgs_per_s(self) -> float:
        return self.rps * self.per_request

    @property
    def ok(self) -> bool:
        return self.non2xx == 0 and self.socket_errors == 0


ROUNDS = 5  # cases measured side by side: this many short runs each, interleaved


def round_seconds(args) -> float:
    """Each round's run of a case: together the rounds last about twice ``--duration``."""
    return max(1.0, round(2 * args.duration / ROUNDS))


def alternating_rounds(names: list, rounds: int):
    """The order of each round: ``names``, reversed every other round, so that no case always runs
    first (or right after a given other) while the machine's speed drifts."""
    for i in range(rounds):
        yield i, (names if i % 2 == 0 else names[::-1])


def round_ratios(runs: list[WrkResult], baseline: list[WrkResult], attr: str) -> list[float]:
    """``attr`` of each round's run over the baseline's run of the same round."""
    return [getattr(x, attr) / getattr(y, attr) if getattr(y, attr) else 0.0 for x, y in zip(runs, baseline)]


def combine_runs(runs: list[WrkResult]) -> WrkResult:
    """Several short runs of one case as one result: throughput over their summed time; p50 and p99
    the median of the runs' own (percentiles of separate runs cannot be merged exactly)."""
    seconds = sum(r.seconds for r in runs)
    count = sum(r.requests for r in runs)
    return WrkResult(
        requests=count, seconds=seconds, rps=count / seconds if seconds else 0.0,
        p50_ms=statistics.median(r.p50_ms for r in runs), p99_ms=statistics.median(r.p99_ms for r in runs),
        mean_ms=sum(r.mean_ms * r.requests for r in runs) / count if count else 0.0,
        non2xx=sum(r.non2xx for r in runs), socket_errors=sum(r.socket_errors for r in runs),
        per_request=runs[0].per_request)


LUA_COMMON = r"""
-- Generated by bench/harness.py. Each thread numbers its requests, so bodies never repeat.
local threads = {}
tid = 0
counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%f,"status":%d,"socket":%d}\n',
    "BENCH_RESULT ", summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def lua_script(method: str, path: str, headers: dict[str, str], body_lua: str | None = None,
               static_body: str | None = None) -> str:
    """A wrk script. ``body_lua`` defines ``make_body(n)`` (n: this thread's request number)."""
    header_lua = ", ".join(f"[ {_lua_str(k)} ] = {_lua_str(v)}" for k, v in headers.items())
    parts = [LUA_COMMON, f"local HEADERS = {{{header_lua}}}\n"]
    if body_lua:
        parts.append(body_lua)
        parts.append(f"""
request = function()
  counter = counter + 1
  return wrk.format({_lua_str(method)}, {_lua_str(path)}, HEADERS, make_body(counter))
end
""")
    else:
        body = "nil" if static_body is None else _lua_str(static_body)
        parts.append(f"""
local REQ = nil
request = function()
  if REQ == nil then REQ = wrk.format({_lua_str(method)}, {_lua_str(path)}, HEADERS, {body}) end
  return REQ
end
""")
    return "".join(parts)


def _lua_str(text: str) -> str:
    """A Lua long-bracket string literal holding ``text`` byte for byte."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    # A long string drops a first newline; add one so a leading newline survives.
    return f"[{eq}[\n{text}]{eq}]"


def run_wrk(url: str, script: str, duration: float = DEFAULT_DURATION, connections: int = DEFAULT_CONNECTIONS,
            threads: int = DEFAULT_THREADS, per_request: int = 1, timeout_s: int = 30) -> WrkResult:
    workdir = scratch_dir("wrk-")
    script_path = workdir / "script.lua"
    script_path.write_text(script, encoding="utf-8")
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", f"--timeout={timeout_s}s",
           "--latency", "-s", str(script_path), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + timeout_s + 30)
    shutil.rmtree(workdir, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            data = json.loads(line[len(RESULT_MARK):])
            seconds = data["duration_us"] / 1e6
            return WrkResult(
                requests=data["requests"], seconds=seconds, rps=data["requests"] / seconds if seconds else 0.0,
                p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000, mean_ms=data["mean_us"] / 1000,
                non2xx=data["status"], socket_errors=data["socket"], per_request=per_request)
    raise RuntimeError(f"wrk gave no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


# ---------------------------------------------------------------- plain latency sampling


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a list of numbers (0 for an empty list)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def time_calls(call, count: int) -> list[float]:
    """Milliseconds taken by each of ``count`` sequential calls of ``call(i)``."""
    samples = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples
