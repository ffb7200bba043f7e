"""PostgreSQL goes away for 30 s under load: 0 request-log rows lost, memory bounded (issue 3's bar).

The machine's PostgreSQL keeps running (others use it). Instead a TCP proxy (``tests/storage/tcp_proxy.py``, in a
child process so it never shares the gateway's event loop) sits between modelyard and 127.0.0.1:5432; the
script creates a scratch database ``bench_outage`` (dropped at the end), points an in-process ``Gateway`` at the
proxy and runs ``--concurrency`` callers (half plain, half streamed, through the fake provider) for
``--before`` s, then pauses the proxy (every connection is reset, new ones refused) for ``--outage`` s, resumes it
and keeps the load on for ``--after`` s. Every second it samples RSS (``VmRSS``) and the log writer's counters.
Then the load stops, the writer drains (spill files replayed), the gateway closes, and every request id the
callers got back is looked up in the database: missing, duplicated or extra rows are counted.

Run: .venv/bin/python benchmarks/db_outage.py [--outage 30] [--rate 1000] [--concurrency 16]
     (needs PostgreSQL on 127.0.0.1:5432, user postgres, no password; ``--admin-url`` to change)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))  # for load.py's CPU accounting helpers
DB = "bench_outage"
PROMPT = "Please say hello to the benchmark harness in one short friendly sentence"


# ----- the proxy, in a child process ----------------------------------------------------------------------------
def proxy_child(host: str, port: int) -> None:
    """``--proxy-child``: run TcpProxy; SIGUSR1 pauses, SIGUSR2 resumes, SIGTERM stops."""
    sys.path.insert(0, str(REPO / "tests" / "storage"))
    from tcp_proxy import TcpProxy

    async def run() -> None:
        proxy = await TcpProxy(host, port).start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, proxy.pause)
        loop.add_signal_handler(signal.SIGUSR2, proxy.resume)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print(f"READY {proxy.port}", flush=True)
        await stop.wait()
        await proxy.stop()

    asyncio.run(run())


# ----- the load ---------------------------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    phase: str
    calls: int
    errors: int
    rss_mb: float
    queued: int
    written: int
    spilled: int
    replayed: int
    db_errors: int
    healthy: bool
    spill_mb: float


@dataclass
class State:
    phase: str = "before"
    running: bool = True
    ids: list[str] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"before": [], "outage": [], "after": []})
    samples: list[Sample] = field(default_factory=list)
    foreign_pct: float = float("nan")
    revision: str = ""


def rss_mb(key: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(folder: Path) -> float:
    if not folder.is_dir():
        return 0.0
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6


async def caller(gateway: Any, state: State, stream: bool, interval: float) -> None:
    request = {"model": "fake/echo", "messages": [{"role": "user", "content": PROMPT}]}
    next_at = time.perf_counter()
    while state.running:
        started = time.perf_counter()
        try:
            if stream:
                async with await gateway.stream(request) as chunks:
                    async for _ in chunks:
                        pass
                    state.ids.append(chunks.info.request_id)
            else:
                response = await gateway.chat(request)
                state.ids.append(response.modelyard.request_id)
            state.latencies[state.phase].append(time.perf_counter() - started)
        except Exception as exc:
            state.errors += 1
            state.first_error = state.first_error or f"{type(exc).__name__}: {exc}"
        if interval:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        else:
            await asyncio.sleep(0)


async def sampler(gateway: Any, state: State, spill: Path, t0: float) -> None:
    fake = gateway.provider("fake")
    while state.running:
        fake.clear()  # the fake provider keeps every call it saw; not part of what is measured
        stats = gateway.writer.stats
        state.samples.append(
            Sample(
                round(time.perf_counter() - t0, 1),
                state.phase,
                len(state.ids),
                state.errors,
                round(rss_mb(), 1),
                stats.queued,
                stats.written,
                stats.spilled,
                stats.replayed,
                stats.db_errors,
                stats.healthy,
                round(folder_mb(spill), 2),
            )
        )
        await asyncio.sleep(1.0)


async def admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def stored_ids(url: str) -> tuple[int, set[str]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT request_id FROM request_logs")
    finally:
        await conn.close()
    return len(rows), {r["request_id"] for r in rows}


async def run(args: argparse.Namespace, tmp: Path) -> None:
    from load import all_cpu_ticks, foreign_seconds, revision

    from modelyard.config import load_settings
    from modelyard.gateway import Gateway

    admin_url = args.admin_url
    bench_url = admin_url.rsplit("/", 1)[0] + f"/{DB}"
    await admin(admin_url, f"DROP DATABASE IF EXISTS {DB}")
    await admin(admin_url, f"CREATE DATABASE {DB}")
    proxy = subprocess.Popen(
        [sys.executable, __file__, "--proxy-child", "127.0.0.1", str(args.pg_port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proxy.stdout is not None
        port = int(proxy.stdout.readline().split()[1])
        spill = tmp / "spill"
        settings = load_settings(
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{DB}",
            log_requests=True,
            spill_dir=str(spill),
        )
        gateway = Gateway(settings)
        await gateway.start()
        state = State(revision=revision())
        everyone = all_cpu_ticks()
        t0 = time.perf_counter()
        interval = args.concurrency / args.rate if args.rate else 0.0
        tasks = [asyncio.create_task(caller(gateway, state, i % 2 == 1, interval)) for i in range(args.concurrency)]
        tasks.append(asyncio.create_task(sampler(gateway, state, spill, t0)))
        rss_start = rss_mb()
        await asyncio.sleep(args.before)
        state.phase = "outage"
        proxy.send_signal(signal.SIGUSR1)
        outage_at = time.perf_counter() - t0
        await asyncio.sleep(args.outage)
        proxy.send_signal(signal.SIGUSR2)
        resumed_at = time.perf_counter() - t0
        state.phase = "after"
        await asyncio.sleep(args.after)
        state.running = False
        await asyncio.gather(*tasks)
        foreign = foreign_seconds(everyone, all_cpu_ticks(), {os.getpid(), proxy.pid})
        state.foreign_pct = 100 * foreign / ((time.perf_counter() - t0) * (os.cpu_count() or 1))
        calls = len(state.ids)
        drain_started = time.perf_counter()
        while (gateway.writer._spill.has_pending() or gateway.writer.stats.queued) and (
            time.perf_counter() - drain_started < args.drain_timeout
        ):
            await asyncio.sleep(0.5)
        drained_in = time.perf_counter() - drain_started
        stats = gateway.writer.stats
        await gateway.aclose()
        rss_end = rss_mb()
        stored, found = await stored_ids(bench_url)
        print(
            report(
                args, state, calls, stored, found, stats, rss_start, rss_end, outage_at, resumed_at, drained_in, spill
            )
        )
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        with contextlib.suppress(Exception):
            await admin(admin_url, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def report(
    args: argparse.Namespace,
    state: State,
    calls: int,
    stored: int,
    found: set[str],
    stats: Any,
    rss_start: float,
    rss_end: float,
    outage_at: float,
    resumed_at: float,
    drained_in: float,
    spill: Path,
) -> str:
    ids = set(state.ids)
    missing = len(ids - found)
    extra = len(found - ids)
    by_phase = {p: [s for s in state.samples if s.phase == p] for p in ("before", "outage", "after")}
    before_end = by_phase["before"][-1].rss_mb if by_phase["before"] else rss_start

    def peak(phase: str) -> float:
        return max((s.rss_mb for s in by_phase[phase]), default=float("nan"))

    def lat(phase: str, q: int) -> str:
        values = sorted(state.latencies[phase])
        if not values:
            return "—"
        return f"{values[min(len(values) - 1, int(q / 100 * len(values)))] * 1000:.2f}"

    spilled_peak = max((s.spill_mb for s in state.samples), default=0.0)
    lines = [
        f"## PostgreSQL outage under load ({time.strftime('%Y-%m-%d %H:%M %Z')}, load {os.getloadavg()[0]:.2f})\n",
        f"{args.concurrency} callers (half streamed) through the fake provider, target rate "
        f"{args.rate or 'unlimited'} calls/s; proxy paused at t={outage_at:.1f} s for {args.outage:.0f} s "
        f"(resumed at t={resumed_at:.1f} s), load kept on until t={resumed_at + args.after:.1f} s.\n",
        "| | value |",
        "|---|---|",
        f"| calls answered | {calls} (errors: {state.errors}"
        f"{', first: ' + state.first_error if state.first_error else ''}) |",
        f"| rows in PostgreSQL | {stored} ({len(found)} distinct request ids) |",
        f"| rows lost (answered, not stored) | **{missing}** |",
        f"| duplicate rows | {stored - len(found)} |",
        f"| rows with an unknown request id | {extra} |",
        f"| rows spilled to disk / replayed | {stats.spilled} / {stats.replayed} (db errors seen: {stats.db_errors}) |",
        f"| spill folder peak size | {spilled_peak:.1f} MB |",
        f"| drain after the load stopped | {drained_in:.1f} s |",
        f"| code | {state.revision} |",
        f"| CPU used by other processes during the load | {state.foreign_pct:.1f}% of the machine's cores |",
        f"| RSS: start / end of 'before' / peak in outage / peak after / end | {rss_start:.0f} / {before_end:.0f} / "
        f"{peak('outage'):.0f} / {peak('after'):.0f} / {rss_end:.0f} MB |",
        f"| RSS growth during the outage (peak - end of 'before') | {peak('outage') - before_end:+.1f} MB |",
        f"| latency p50 / p99 ms: before / outage / after | {lat('before', 50)}/{lat('before', 99)} / "
        f"{lat('outage', 50)}/{lat('outage', 99)} / {lat('after', 50)}/{lat('after', 99)} |",
        "",
        "Timeline (every 5 s):\n",
        "| t s | phase | calls | RSS MB | queue | written | spilled | replayed | db errors | healthy | spill MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for s in state.samples[::5]:
        lines.append(
            f"| {s.t} | {s.phase} | {s.calls} | {s.rss_mb} | {s.queued} | {s.written} | {s.spilled} "
            f"| {s.replayed} | {s.db_errors} | {s.healthy} | {s.spill_mb} |"
        )
    rates = [b.calls - a.calls for a, b in zip(state.samples, state.samples[1:], strict=False)]
    if rates:
        lines.append(f"\nThroughput: median {statistics.median(rates)} calls/s.")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--proxy-child":
        proxy_child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=float, default=15.0)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--after", type=float, default=45.0, help="load after resuming (the writer backs off <=30 s)")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000.0, help="calls/s over all callers; 0 = as fast as possible")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-outage-") as name:
        tmp = Path(name)
        for key in [k for k in os.environ if k.startswith("MODELYARD_")]:
            del os.environ[key]
        os.environ["XDG_DATA_HOME"] = str(tmp / "data")
        os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
        os.chdir(tmp)
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        asyncio.run(run(args, tmp))


if __name__ == "__main__":
    main()
