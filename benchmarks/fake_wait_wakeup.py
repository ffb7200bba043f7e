"""Why ``logging_overhead.py --upstream-delay-ms`` cannot judge a call's whole latency (a diagnostic, session 14).

The fake provider waits with ``asyncio.sleep``: a timer in the gateway's own event loop. epoll counts a timeout in
whole milliseconds, rounded up, from the moment the loop goes to sleep, so whatever the loop does during the wait
(the log writer builds its rows then, on purpose) moves the wake-up later by about as much. An answer on a socket
wakes the loop when it comes, whatever ran before. This measures how late the fake's 2 ms wait ends, request log
off and on (alternating gateways, plain calls, one at a time), with the wait as the fake makes it (``timer``) and
with the same wait ended the way a socket's answer ends it (``socket``: another thread sleeps 2 ms and wakes the
loop through ``call_soon_threadsafe``, the loop's self-pipe). The second needs the fake's ``asyncio.sleep``
replaced, which only this diagnostic does.

Run: .venv/bin/python benchmarks/fake_wait_wakeup.py [--calls 1500] [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

PROMPT = "Please say hello to the benchmark harness in one short friendly sentence"
WAIT = 0.002


class SocketLikeWait:
    """``await wait(seconds)`` that ends when another thread wakes the loop, as a socket's answer would."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[asyncio.AbstractEventLoop, asyncio.Future[None], float]] = queue.Queue()
        threading.Thread(target=self._answer, daemon=True).start()

    def _answer(self) -> None:
        while True:
            loop, done, seconds = self._jobs.get()
            time.sleep(seconds)
            loop.call_soon_threadsafe(done.set_result, None)

    async def __call__(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._jobs.put((loop, done, seconds))
        await done


def timed(wait: Callable[[float], Awaitable[None]], lateness: list[float]) -> Callable[..., Awaitable[None]]:
    async def wait_and_time(seconds: float, *args: Any) -> None:
        if seconds != WAIT:
            await asyncio.sleep(seconds, *args)
            return
        started = time.perf_counter()
        await wait(seconds)
        lateness.append(time.perf_counter() - started - seconds)

    return wait_and_time


async def measure(wake: str, calls: int, home: Path) -> list[str]:
    from modelyard.config import load_settings
    from modelyard.gateway import Gateway
    from modelyard.providers import fake as fake_module
    from modelyard.providers.fake import FakeReply

    lateness: list[float] = []
    wait: Callable[[float], Awaitable[None]] = asyncio.sleep if wake == "timer" else SocketLikeWait()
    original = fake_module.asyncio
    fake_module.asyncio = type("Waits", (), {"sleep": staticmethod(timed(wait, lateness))})  # type: ignore[assignment]
    lines = []
    try:
        for round_, log in enumerate((False, True, False, True)):
            url = f"sqlite+aiosqlite:///{home / f'{wake}-{round_}.db'}"
            gateway = Gateway(load_settings(database_url=url, log_requests=log))
            fake = gateway.provider("fake")
            request = {"model": "fake/echo", "messages": [{"role": "user", "content": PROMPT}]}
            latencies: list[float] = []
            for i in range(calls + 300):
                if i == 300:  # warmed up
                    lateness.clear()
                    latencies.clear()
                fake.queue(FakeReply(text=PROMPT, delay=WAIT))
                started = time.perf_counter()
                await gateway.chat(request)
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0)  # as logging_overhead.py: the loop runs the writer between calls
                if i % 500 == 499:
                    fake.clear()
            await gateway.aclose()
            lines.append(
                f"| {wake} | {'on' if log else 'off'} | {statistics.median(lateness) * 1000:.3f} "
                f"| {statistics.fmean(lateness) * 1000:.3f} | {statistics.median(latencies) * 1000:.3f} |"
            )
    finally:
        fake_module.asyncio = original  # type: ignore[assignment]
    return lines


async def run(calls: int, home: Path) -> None:
    when = time.strftime("%F %H:%M")
    print(f"## how late the fake's {WAIT * 1000:g} ms wait ends ({calls} plain calls a row, {when})\n")
    print("| wait ended by | request log | late by, p50 ms | late by, mean ms | call p50 ms |")
    print("|---|---|---:|---:|---:|")
    for wake in ("timer", "socket"):
        print("\n".join(await measure(wake, calls, home)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-wakeup-") as name:
        home = Path(name)
        for key in [k for k in os.environ if k.startswith("MODELYARD_")]:
            del os.environ[key]
        os.environ["XDG_DATA_HOME"] = str(home / "data")
        os.environ["XDG_CONFIG_HOME"] = str(home / "config")
        os.chdir(home)
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(run(args.calls, home))
        else:
            asyncio.run(run(args.calls, home))


if __name__ == "__main__":
    main()
