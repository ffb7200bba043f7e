"""CPU the request-log writer spends per row, in-process (no HTTP server, no load generator).

N rows like the ones ``LoggingMiddleware`` makes go through one ``LogWriter`` into a fresh database:

  built      rows built before the clock starts: the storage path alone (row dicts, NUL check, SQL, driver)
  deferred   what a server does: the middleware hands the writer a function, the writer's task builds the row
             (redaction, copies of the bodies, the ``RequestLog`` model) and stores it

Rows are submitted in bursts of ``--burst`` with a yield to the loop between bursts (as a server would), so the
writer's batches are as large as ``--batch-size`` allows. The N pending inputs are frozen out of the garbage
collector (``gc.freeze``) while measuring: a server never holds N of them. CPU is ``time.process_time`` (every
thread: the event loop and the aiosqlite thread); ``loop`` is the event loop thread alone (``time.thread_time``).
Each figure is the median of ``--repeat`` runs, each on a fresh database, which must end with exactly N rows.

Run: .venv/bin/python benchmarks/log_writer_cpu.py [--rows 20000] [--repeat 3] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from modelyard.middleware.logging import LoggingMiddleware
from modelyard.pipeline import Call, CallOptions
from modelyard.redaction import Redactor
from modelyard.storage import LogWriter, RequestLog, SQLStore, open_store
from modelyard.storage.schema import request_logs
from modelyard.types.chat import AttemptInfo, ChatRequest, ChatResponse, Choice, Message
from modelyard.types.usage import Usage

SYSTEM = "You are a concise assistant for the modelyard benchmark. Answer in plain English, no markdown."
PROMPT = (
    "Please say hello to the benchmark harness in one short friendly sentence that has exactly nineteen words "
    "in it, then list three colours of the rainbow."
)
ANSWER = (
    "Hello benchmark harness, it is a real pleasure to greet you today with exactly nineteen friendly words "
    "here. Red, orange and violet are three colours of the rainbow."
)


@dataclass
class Run:
    cpu: float
    loop_cpu: float
    wall: float


def _call(i: int) -> Call:
    request = ChatRequest(
        model="fast",
        messages=[Message(role="system", content=SYSTEM), Message(role="user", content=f"{PROMPT} ({i})")],
        temperature=0.2,
        max_tokens=256,
        user="bench-user",
    )
    options = CallOptions(caller="key_bench", tags=["bench", "nightly"] if i % 4 == 0 else [])
    call = Call(kind="chat", request=request, options=options, request_id=f"req_{uuid.uuid4().hex}")
    call.info.provider, call.info.served_model = "openai", "openai/gpt-4o-mini"
    call.info.attempts = [AttemptInfo(model="openai/gpt-4o-mini", provider="openai", status=200, latency_ms=41.5)]
    call.info.cost, call.info.cost_source = 0.000123, "computed"
    return call


def _response(i: int) -> ChatResponse:
    return ChatResponse(
        model="gpt-4o-mini-2024-07-18",
        choices=[Choice(message=Message(role="assistant", content=f"{ANSWER} ({i})"), finish_reason="stop")],
        usage=Usage.of(48, 31),
    )


def _builders(n: int) -> list[Callable[[], RequestLog]]:
    """What ``LoggingMiddleware`` hands the writer for ``n`` plain calls (its request path is run, not timed)."""
    captured: list[Any] = []
    middleware = LoggingMiddleware(lambda row, _size: captured.append(row), Redactor())

    async def drive() -> None:
        for i in range(n):
            response = _response(i)

            async def handler(_call: Call, response: ChatResponse = response) -> ChatResponse:
                return response

            await middleware(_call(i), handler)

    asyncio.run(drive())
    return captured


async def _count(store: SQLStore) -> int:
    async with store.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(request_logs)) or 0)


async def _measure(url: str, items: list[Any], args: argparse.Namespace, spill: Path) -> Run:
    store = await open_store(url)
    try:
        writer = LogWriter(store.logs, spill_dir=spill, batch_size=args.batch_size, max_queue=args.rows + 1)
        cpu0, loop0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
        for start in range(0, len(items), args.burst):
            for item in items[start : start + args.burst]:
                writer.submit(item)
            await asyncio.sleep(0)
        await writer.close()
        run = Run(time.process_time() - cpu0, time.thread_time() - loop0, time.perf_counter() - wall0)
        rows, stats = await _count(store), writer.stats
        if rows != len(items) or stats.spilled or stats.lost:
            raise SystemExit(f"{rows} rows for {len(items)} submitted ({stats})")
        return run
    finally:
        await store.close()


def _fresh_pg(admin_url: str) -> tuple[str, Callable[[], None]]:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    name = f"modelyard_bench_{uuid.uuid4().hex[:10]}"
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, lambda: asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run_once(mode: str, database: str, args: argparse.Namespace, tmp: Path) -> Run:
    builders = _builders(args.rows)
    items: list[Any] = [b() for b in builders] if mode == "built" else builders
    folder = tmp / uuid.uuid4().hex[:8]
    url, drop = (f"sqlite:///{folder / 'logs.db'}", None) if database == "sqlite" else _fresh_pg(args.pg)
    # N pending calls are far more live objects than a server ever holds: keep them out of the collector's
    # full passes, or the measure is mostly garbage collection of the benchmark's own inputs.
    gc.collect()
    gc.freeze()
    try:
        return asyncio.run(_measure(url, items, args, folder / "spill"))
    finally:
        gc.unfreeze()
        if drop is not None:
            drop()


def _line(mode: str, database: str, runs: list[Run], rows: int) -> str:
    per_k = 1000 / rows
    cpu = [r.cpu * per_k * 1000 for r in runs]
    loop = statistics.median(r.loop_cpu * per_k * 1000 for r in runs)
    wall = statistics.median(r.wall * per_k * 1000 for r in runs)
    return (
        f"| {database} | {mode} | {rows} | {statistics.median(cpu):.1f} ({min(cpu):.1f}-{max(cpu):.1f}) "
        f"| {loop:.1f} | {wall:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--burst", type=int, default=50, help="rows submitted between two yields to the loop")
    parser.add_argument("--modes", default="built,deferred")
    parser.add_argument("--pg", help="also measure PostgreSQL (an admin URL; a scratch database is made and dropped)")
    args = parser.parse_args()
    databases = ["sqlite"] + (["postgresql"] if args.pg else [])
    print(f"load {os.getloadavg()[0]:.2f}, Python {sys.version.split()[0]}, batch {args.batch_size}\n")
    print("| database | mode | rows | CPU ms per 1,000 rows: median (min-max) | loop thread ms | wall ms |")
    print("|---|---|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="modelyard-writer-cpu-") as name:
        for database in databases:
            for mode in args.modes.split(","):
                runs = [_run_once(mode, database, args, Path(name)) for _ in range(args.repeat)]
                print(_line(mode, database, runs, args.rows), flush=True)


if __name__ == "__main__":
    main()
