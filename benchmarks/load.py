"""A closed-loop aiohttp load generator for OpenAI-style ``/v1/chat/completions`` targets (127.0.0.1 only).

``--concurrency`` workers each send one request at a time over a keep-alive pool. After a warm-up (``--warmup``
seconds, not measured) it measures until ``--requests`` requests are done or ``--duration`` seconds have passed,
whichever comes first, then stops by itself. It reports latency p50/p95/p99 (whole response read), requests/s,
time to first byte for streams (first body bytes after sending; the stream's first SSE frame), errors, and, with
``--pid``, the CPU seconds the target process tree used per request (``/proc/<pid>/stat`` utime+stime deltas over
the measured window) and its peak RSS (``VmHWM`` from ``/proc/<pid>/status``, summed over the process tree).

Run: .venv/bin/python benchmarks/load.py --url http://127.0.0.1:9100/v1/chat/completions --model x \
         --concurrency 16 [--stream] [--pid PID] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----- the target process: CPU and memory from /proc --------------------------------------------------------
def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn/LiteLLM may serve from a child process)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes, in seconds."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / CLK_TCK


def all_cpu_ticks() -> dict[int, int]:
    """utime + stime of every process on the machine, in clock ticks (for CPU used by others meanwhile)."""
    ticks = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


def foreign_seconds(before: dict[int, int], after: dict[int, int], mine: set[int]) -> float:
    """CPU seconds used between two snapshots by processes outside ``mine`` (processes that ended are missed)."""
    used = sum(t - before.get(pid, 0) for pid, t in after.items() if pid not in mine)
    return max(0, used) / CLK_TCK


def revision() -> str:
    """The commit measured, and how many files under src/ differ from it (others edit the tree while we run)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown revision"
    changed = len([line for line in dirty.stdout.splitlines() if line.strip()])
    return f"commit {head.stdout.strip()}" + (f" + {changed} uncommitted file(s) under src/" if changed else "")


def status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def peak_rss_mb(pids: list[int]) -> float:
    """Sum of ``VmHWM`` (peak resident set) over the process tree, in MiB."""
    return sum(status_kb(pid, "VmHWM") for pid in pids) / 1024


# ----- the load ------------------------------------------------------------------------------------------------
@dataclass
class Result:
    target: str
    url: str
    stream: bool
    concurrency: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    mean_ms: float = math.nan
    ttfb_p50_ms: float = math.nan
    ttfb_p95_ms: float = math.nan
    ttfb_p99_ms: float = math.nan
    cpu_ms_per_req: float = math.nan
    peak_rss_mb: float = math.nan
    loadgen_cpu_pct: float = math.nan
    foreign_cpu_pct: float = math.nan
    first_error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class Load:
    def __init__(self, url: str, body: bytes, stream: bool, concurrency: int, headers: dict[str, str]) -> None:
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"load.py only talks to 127.0.0.1 (got {host})")
        self.url = url
        self.body = body
        self.stream = stream
        self.concurrency = concurrency
        self.headers = {"Content-Type": "application/json", **headers}
        self.measuring = False
        self.stop_at = 0.0
        self.max_requests = 0
        self.latencies: list[float] = []
        self.ttfbs: list[float] = []
        self.errors = 0
        self.first_error: str | None = None

    async def one(self, session: aiohttp.ClientSession) -> tuple[float, float]:
        started = time.perf_counter()
        async with session.post(self.url, data=self.body, headers=self.headers) as response:
            if response.status != 200:
                text = await response.text()
                raise RuntimeError(f"HTTP {response.status}: {text[:300]}")
            if not self.stream:
                await response.read()
                done = time.perf_counter()
                return done - started, math.nan
            first = await response.content.readany()
            ttfb = time.perf_counter() - started
            tail = first
            while chunk := await response.content.readany():
                tail = (tail + chunk)[-64:]
            if b"[DONE]" not in tail:
                raise RuntimeError(f"stream ended without [DONE]: ...{tail!r}")
            return time.perf_counter() - started, ttfb

    async def worker(self, session: aiohttp.ClientSession) -> None:
        while True:
            if self.measuring and (time.perf_counter() >= self.stop_at or self.done_count() >= self.max_requests):
                return
            measuring = self.measuring
            try:
                latency, ttfb = await self.one(session)
            except Exception as exc:
                if measuring:
                    self.errors += 1
                    self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.001)
                continue
            if measuring and self.measuring:
                self.latencies.append(latency)
                if not math.isnan(ttfb):
                    self.ttfbs.append(ttfb)

    def done_count(self) -> int:
        return len(self.latencies) + self.errors

    async def run(
        self, warmup: float, duration: float, max_requests: int, pid: int | None, harness: list[int]
    ) -> Result:
        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=False, ttl_dns_cache=None)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            workers = [asyncio.create_task(self.worker(session)) for _ in range(self.concurrency)]
            await asyncio.sleep(warmup)
            pids = process_tree(pid) if pid else []
            mine = {p for h in [*harness, *pids] for p in process_tree(h)} | {os.getpid(), os.getppid()}
            cpu_before = cpu_seconds(pids)
            own_before, everyone_before = cpu_seconds([os.getpid()]), all_cpu_ticks()
            self.max_requests = max_requests
            self.stop_at = time.perf_counter() + duration
            started = time.perf_counter()
            self.measuring = True
            # warm-up requests still in flight finish unmeasured (measuring is read when each one starts)
            await asyncio.gather(*workers)
            seconds = time.perf_counter() - started
            cpu_after = cpu_seconds(pids)
            own_used, foreign = (
                cpu_seconds([os.getpid()]) - own_before,
                foreign_seconds(everyone_before, all_cpu_ticks(), mine),
            )
        lat = sorted(x * 1000 for x in self.latencies)
        ttfb = sorted(x * 1000 for x in self.ttfbs)
        result = Result(target="", url=self.url, stream=self.stream, concurrency=self.concurrency)
        result.requests = len(lat)
        result.errors = self.errors
        result.first_error = self.first_error
        result.seconds = round(seconds, 3)
        result.rps = round(len(lat) / seconds, 1) if seconds else 0.0
        result.p50_ms, result.p95_ms, result.p99_ms = (percentile(lat, q) for q in (50, 95, 99))
        result.mean_ms = sum(lat) / len(lat) if lat else math.nan
        result.ttfb_p50_ms, result.ttfb_p95_ms, result.ttfb_p99_ms = (percentile(ttfb, q) for q in (50, 95, 99))
        capacity = seconds * (os.cpu_count() or 1) / 100
        result.loadgen_cpu_pct = round(own_used / capacity, 1)
        if pids:
            result.foreign_cpu_pct = round(foreign / capacity, 1)
        if pids and lat:
            result.cpu_ms_per_req = (cpu_after - cpu_before) * 1000 / (len(lat) + self.errors)
            result.peak_rss_mb = round(peak_rss_mb(process_tree(pid or pids[0])), 1)
        return result


def request_body(model: str, stream: bool) -> bytes:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
        "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", default="x")
    parser.add_argument("--target", default="", help="a label for the report")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of unmeasured load first")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds at most")
    parser.add_argument("--requests", type=int, default=5000, help="measured requests at most")
    parser.add_argument("--pid", type=int, help="target process: CPU per request and peak RSS")
    parser.add_argument(
        "--harness-pid",
        type=int,
        action="append",
        default=[],
        help="other benchmark processes (the mock...): not counted as foreign CPU (repeatable)",
    )
    parser.add_argument("--header", action="append", default=[], help="Name: value (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    load = Load(args.url, request_body(args.model, args.stream), args.stream, args.concurrency, headers)
    result = asyncio.run(load.run(args.warmup, args.duration, args.requests, args.pid, args.harness_pid))
    result.target = args.target
    if args.json:
        sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")
        return
    for key, value in asdict(result).items():
        print(f"{key:>16}: {round(value, 3) if isinstance(value, float) else value}")


if __name__ == "__main__":
    main()
