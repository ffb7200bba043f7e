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

By default the fake answers at once: the event loop is never idle, so the writer's work (building each row, the
SQLite thread's share of the GIL) lands inside the next call whatever path it takes, and the latencies measure CPU
as much as the request path. With ``--upstream-delay-ms D`` the fake waits D ms before it answers (a stream: before
its first chunk), as every real model does, and the report adds the gateway's **own share** of each call: its
latency minus the upstream attempt's (the attempt's latency as the gateway recorded it), which the wait's timer
jitter (~1 ms on uvloop) does not reach.

The fake's wait is a timer in the gateway's own event loop, and epoll counts a timeout in whole milliseconds
(rounded up): whatever the loop does during the wait (the log writer builds its rows then) pushes the wake-up
later by as much, which a socket's answer would not (session 14, ``benchmarks/RESULTS.md``). With ``--mock`` the
upstream is ``mock_upstream.py`` instead, in its own process, reached over sockets (``--upstream-delay-ms`` is then
its ``--first-delay-ms``; a stream is 20 chunks): the whole latency is the measure again.

Run: .venv/bin/python benchmarks/logging_overhead.py [--calls 20000] [--stream-calls 10000] [--block 1000]
     [--upstream-delay-ms 2] [--mock]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # for load.py's CPU accounting helpers
#: The model ``--mock`` calls: provider ``up`` is the mock upstream.
MOCK_MODEL = "up/x"
PROMPT = (
    "Please say hello to the benchmark harness in one short friendly sentence that has exactly nineteen words in it"
)


@dataclass
class Series:
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    block_p50s: list[float] = field(default_factory=list)
    own: list[float] = field(default_factory=list)  # latency minus the upstream attempt's, with --upstream-delay-ms
    own_ttfbs: list[float] = field(default_factory=list)
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


def attempt_seconds(info: Any) -> float:
    return sum(a.latency_ms or 0 for a in info.attempts) / 1000


async def block(gateway: Any, stream: bool, calls: int, series: Series, delay: float = 0.0, mock: bool = False) -> None:
    from modelyard.providers.fake import FakeReply

    request = {"model": MOCK_MODEL if mock else "fake/echo", "messages": [{"role": "user", "content": PROMPT}]}
    fake = None if mock else gateway.provider("fake")
    latencies = []
    cpu0 = time.process_time()
    for _ in range(calls):
        if delay and fake is not None:
            fake.queue(FakeReply(text=PROMPT, delay=delay))
        started = time.perf_counter()
        if stream:
            first = None
            async with await gateway.stream(request) as chunks:
                async for _chunk in chunks:
                    if first is None:
                        first = time.perf_counter() - started
            series.ttfbs.append(first or math.nan)
            info = chunks.info
        else:
            info = (await gateway.chat(request)).modelyard
        latencies.append(time.perf_counter() - started)
        if delay or mock:
            upstream = attempt_seconds(info)
            series.own.append(latencies[-1] - upstream)
            if stream:
                series.own_ttfbs.append(series.ttfbs[-1] - upstream)
        # The fake provider never waits on I/O, so without this the loop would never run the log writer during a
        # block (its queue would fill and overflow to the spill file). A server waits on sockets all the time.
        await asyncio.sleep(0)
    await drain(gateway)
    series.cpu += time.process_time() - cpu0
    series.calls += calls
    series.latencies += latencies
    series.block_p50s.append(statistics.median(latencies))
    if fake is not None:
        fake.clear()  # the fake keeps every call it saw


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
    delay = args.upstream_delay_ms / 1000
    gateways = {
        "off-A": Gateway(load_settings(database_url=f"sqlite+aiosqlite:///{tmp / 'a.db'}", log_requests=False)),
        "off-B": Gateway(load_settings(database_url=f"sqlite+aiosqlite:///{tmp / 'b.db'}", log_requests=False)),
        "on": Gateway(load_settings(database_url=url, log_requests=True, spill_dir=str(tmp / "spill"))),
    }
    results: dict[tuple[str, bool], Series] = {(n, s): Series() for n in gateways for s in (False, True)}
    try:
        for gateway in gateways.values():  # warm up: migrations, first-use imports, caches
            await block(gateway, False, 200, Series(), delay, args.mock)
            await block(gateway, True, 100, Series(), delay, args.mock)
        before = await count_rows(gateways["on"])
        everyone, started = all_cpu_ticks(), time.perf_counter()
        order = list(gateways)
        for stream, total in ((False, args.calls), (True, args.stream_calls)):
            for i in range(math.ceil(total / args.block)):
                shift = i % len(order)
                for name in order[shift:] + order[:shift]:
                    await block(gateways[name], stream, args.block, results[(name, stream)], delay, args.mock)
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
    paced = args.upstream_delay_ms > 0 or args.mock
    upstream = "the mock upstream over sockets" if args.mock else "the fake"
    answering = f"after {args.upstream_delay_ms:g} ms" if args.upstream_delay_ms > 0 else "at once"
    lines = [
        f"## logging overhead ({time.strftime('%Y-%m-%d %H:%M %Z')}, load {os.getloadavg()[0]:.2f}, "
        f"Python {sys.version.split()[0]}, blocks of {args.block} calls, concurrency 1, {upstream} answering "
        f"{answering})\n",
        "| mode | gateway | calls | p50 ms | p90 ms | p99 ms | mean ms | block p50s ms: median (min-max) "
        "| TTFB p50 ms | own p50 ms | own TTFB p50 ms | CPU ms/call |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
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
                f"| {ms(pct(s.ttfbs, 50))} | {ms(pct(s.own, 50))} | {ms(pct(s.own_ttfbs, 50))} "
                f"| {s.cpu * 1000 / s.calls:.3f} |"
            )
    lines.append("")
    for stream in (False, True):
        a, b, on = (results[(n, stream)] for n in ("off-A", "off-B", "on"))
        if not on.calls:
            continue
        kind = "streamed" if stream else "plain"
        cpu_added = on.cpu * 1000 / on.calls - (a.cpu + b.cpu) * 1000 / (a.calls + b.calls)
        lines.append(f"- {kind}: {compare('latency', a.latencies, b.latencies, on.latencies)}, {cpu_added:.3f} ms CPU")
        if paced:
            lines.append(f"- {kind}: {compare('own share', a.own, b.own, on.own)}")
            if stream:
                lines.append(f"- {kind}: {compare('own share of TTFB', a.own_ttfbs, b.own_ttfbs, on.own_ttfbs)}")
    lines.append(
        f"- rows written by the `on` gateway: {rows} of {expected} calls "
        f"({'all there' if rows == expected else 'MISMATCH'})"
    )
    return "\n".join(lines)


def compare(what: str, a: list[float], b: list[float], on: list[float]) -> str:
    """Logging on against off (both off gateways) at p50 and on the mean, with off-A vs off-B as the noise floor."""
    noise = abs(pct(a, 50) - pct(b, 50))
    added = pct(on, 50) - pct(a + b, 50)
    # One-sided, as run_overhead.py's verdict: a gateway that logs and is faster adds nothing.
    verdict = "within the A/A noise" if added <= max(noise, 1e-9) else "above the A/A noise"
    return (
        f"logging on adds {ms(added)} ms to the {what} at p50 ({verdict}: off-A vs off-B differ by {ms(noise)} ms), "
        f"{ms(statistics.fmean(on) - statistics.fmean(a + b))} ms on the mean"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="plain calls per gateway")
    parser.add_argument("--stream-calls", type=int, default=10_000, help="streamed calls per gateway")
    parser.add_argument("--block", type=int, default=1000, help="calls per gateway before switching")
    parser.add_argument("--database-url", help="where the `on` gateway logs (default: SQLite in a temp dir)")
    parser.add_argument(
        "--upstream-delay-ms", type=float, default=0.0, help="the fake waits this long before answering (0: at once)"
    )
    parser.add_argument(
        "--mock", action="store_true", help="call mock_upstream.py over sockets instead of the in-process fake"
    )
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
        with mock_upstream(args.upstream_delay_ms) if args.mock else contextlib.nullcontext():
            asyncio.run(run(args, tmp))


@contextlib.contextmanager
def mock_upstream(first_delay_ms: float) -> Iterator[None]:
    """``mock_upstream.py`` in its own process, as provider ``up`` of every gateway made meanwhile."""
    argv = [sys.executable, str(HERE / "mock_upstream.py"), "--port", "0", "--first-delay-ms", str(first_delay_ms)]
    mock = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert mock.stdout is not None
        ready = mock.stdout.readline().split()
        if ready[:1] != ["READY"]:
            raise RuntimeError(f"the mock upstream did not start: {ready}")
        os.environ["MODELYARD_PROVIDERS__UP__BASE_URL"] = f"http://127.0.0.1:{ready[1]}/v1"
        yield
    finally:
        mock.terminate()
        mock.wait(10)


if __name__ == "__main__":
    main()
