"""Does request logging add latency to a call? (issue 3's bar: "logging adds no measurable latency")

In one process, three in-process ``Gateway`` instances answer through the fake provider (no network):
  off-A, off-B   ``log_requests=False`` (two identical ones: their difference is the noise floor, an A/A test)
  on             ``log_requests=True``, rows written to a SQLite file (or ``--database-url``) by the LogWriter
Calls run one at a time (concurrency 1, uvloop) in interleaved blocks (``--block`` calls per gateway, rotating),
plain and streamed (22 chunks). The log writer runs in the same event loop (each call yields to the loop once
after it returns, as a server waiting on its sockets would), so whatever it costs while a block runs shows up in
that block's latencies; after each block the writer is drained (not timed) so its work cannot
leak into the next gateway's block. CPU per call is process CPU (all threads, the SQLite thread included) over
the block and its drain. At the end the ``on`` database must hold exactly one row per call.

Run: .venv/bin/python benchmarks/logging_overhead.py [--calls 20000] [--stream-calls 10000] [--block 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for load.py's CPU accounting helpers
PROMPT = (
    "Please say hello to the benchmark harness in one short friendly sentence that has exactly nineteen words in it"
)


@dataclass
class Series:
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    block_p50s: list[float] = field(default_factory=list)
    cpu: float = 0.0
    calls: int = 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


async def drain(gateway: Any) -> None:
    """Wait until the gateway's log writer has written everything submitted so far."""
    writer = gateway.writer
    if writer is None:
        return
    while True:
        stats = writer.stats
        if stats.queued == 0 and stats.written + stats.duplicates + stats.spilled >= stats.submitted:
            return
        await asyncio.sleep(0.005)


async def block(gateway: Any, stream: bool, calls: int, series: Series) -> None:
    request = {"model": "fake/echo", "messages": [{"role": "user", "content": PROMPT}]}
    latencies = []
    cpu0 = time.process_time()
    for _ in range(calls):
        started = time.perf_counter()
        if stream:
            first = None
            async with await gateway.stream(request) as chunks:
                async for _chunk in chunks:
                    if first is None:
                        first = time.perf_counter() - started
            series.ttfbs.append(first or math.nan)
        else:
            await gateway.chat(request)
        latencies.append(time.perf_counter() - started)
        # The fake provider never waits on I/O, so without this the loop would never run the log writer during a
        # block (its queue would fill and overflow to the spill file). A server waits on sockets all the time.
        await asyncio.sleep(0)
    await drain(gateway)
    series.cpu += time.process_time() - cpu0
    series.calls += calls
    series.latencies += latencies
    series.block_p50s.append(statistics.median(latencies))
    gateway.provider("fake").clear()  # the fake keeps every call it saw


async def count_rows(gateway: Any) -> int:
    from sqlalchemy import func, select

    from modelyard.storage.schema import request_logs

    store = await gateway.stores()
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(request_logs))).scalar_one())


def ms(value: float) -> str:
    return "—" if value != value else f"{value * 1000:.3f}"


async def run(args: argparse.Namespace, tmp: Path) -> None:
    from load import all_cpu_ticks, foreign_seconds, revision

    from modelyard.config import load_settings
    from modelyard.gateway import Gateway

    url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'on.db'}"
    gateways = {
        "off-A": Gateway(load_settings(database_url=f"sqlite+aiosqlite:///{tmp / 'a.db'}", log_requests=False)),
        "off-B": Gateway(load_settings(database_url=f"sqlite+aiosqlite:///{tmp / 'b.db'}", log_requests=False)),
        "on": Gateway(load_settings(database_url=url, log_requests=True, spill_dir=str(tmp / "spill"))),
    }
    results: dict[tuple[str, bool], Series] = {(n, s): Series() for n in gateways for s in (False, True)}
    try:
        for gateway in gateways.values():  # warm up: migrations, first-use imports, caches
            await block(gateway, False, 200, Series())
            await block(gateway, True, 100, Series())
        before = await count_rows(gateways["on"])
        everyone, started = all_cpu_ticks(), time.perf_counter()
        order = list(gateways)
        for stream, total in ((False, args.calls), (True, args.stream_calls)):
            for i in range(math.ceil(total / args.block)):
                shift = i % len(order)
                for name in order[shift:] + order[:shift]:
                    await block(gateways[name], stream, args.block, results[(name, stream)])
        foreign = foreign_seconds(everyone, all_cpu_ticks(), {os.getpid()})
        foreign_pct = 100 * foreign / ((time.perf_counter() - started) * (os.cpu_count() or 1))
        rows = await count_rows(gateways["on"]) - before
    finally:
        for gateway in gateways.values():
            await gateway.aclose()
    expected = results[("on", False)].calls + results[("on", True)].calls
    print(report(results, args, rows, expected))
    print(f"- code: {revision()}")
    print(f"- CPU used by other processes meanwhile: {foreign_pct:.1f}% of the machine's cores")
    stats = gateways["on"].writer.stats if gateways["on"].writer else None
    if stats is not None:
        print(f"- log writer of `on`: {stats.written} written in batches, {stats.spilled} spilled (queue overflow)")


def report(results: dict[tuple[str, bool], Series], args: argparse.Namespace, rows: int, expected: int) -> str:
    lines = [
        f"## logging overhead ({time.strftime('%Y-%m-%d %H:%M %Z')}, load {os.getloadavg()[0]:.2f}, "
        f"Python {sys.version.split()[0]}, blocks of {args.block} calls, concurrency 1)\n",
        "| mode | gateway | calls | p50 ms | p90 ms | p99 ms | mean ms | block p50s ms: median (min-max) "
        "| TTFB p50 ms | CPU ms/call |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for stream in (False, True):
        for name in ("off-A", "off-B", "on"):
            s = results[(name, stream)]
            if not s.calls:
                continue
            lines.append(
                f"| {'stream' if stream else 'plain'} | {name} | {s.calls} | {ms(pct(s.latencies, 50))} "
                f"| {ms(pct(s.latencies, 90))} | {ms(pct(s.latencies, 99))} | {ms(statistics.fmean(s.latencies))} "
                f"| {ms(statistics.median(s.block_p50s))} ({ms(min(s.block_p50s))}-{ms(max(s.block_p50s))}) "
                f"| {ms(pct(s.ttfbs, 50)) if stream else '—'} | {s.cpu * 1000 / s.calls:.3f} |"
            )
    lines.append("")
    for stream in (False, True):
        a, b, on = (results[(n, stream)] for n in ("off-A", "off-B", "on"))
        if not on.calls:
            continue
        off = a.latencies + b.latencies
        noise = abs(pct(a.latencies, 50) - pct(b.latencies, 50))
        added = pct(on.latencies, 50) - pct(off, 50)
        added_mean = statistics.fmean(on.latencies) - statistics.fmean(off)
        cpu_added = on.cpu * 1000 / on.calls - (a.cpu + b.cpu) * 1000 / (a.calls + b.calls)
        verdict = "within the A/A noise" if abs(added) <= max(noise, 1e-9) else "above the A/A noise"
        lines.append(
            f"- {'streamed' if stream else 'plain'}: logging on adds {ms(added)} ms at p50 ({verdict}: off-A vs off-B "
            f"differ by {ms(noise)} ms), {ms(added_mean)} ms on the mean, {cpu_added:.3f} ms CPU per call"
        )
    lines.append(
        f"- rows written by the `on` gateway: {rows} of {expected} calls "
        f"({'all there' if rows == expected else 'MISMATCH'})"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="plain calls per gateway")
    parser.add_argument("--stream-calls", type=int, default=10_000, help="streamed calls per gateway")
    parser.add_argument("--block", type=int, default=1000, help="calls per gateway before switching")
    parser.add_argument("--database-url", help="where the `on` gateway logs (default: SQLite in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-logbench-") as name:
        tmp = Path(name)
        for key in [k for k in os.environ if k.startswith("MODELYARD_")]:
            del os.environ[key]
        os.environ["XDG_DATA_HOME"] = str(tmp / "data")
        os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
        os.chdir(tmp)  # no modelyard.yaml from the caller's folder
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        asyncio.run(run(args, tmp))


if __name__ == "__main__":
    main()
