"""Reliability test 33: Redis goes away. Traffic keeps flowing on a local share of each limit, fast, and the
budget debits made meanwhile reach Redis when it returns (none lost, none counted twice)."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator

import pytest

from modelyard.gateway import Gateway
from modelyard.middleware.limits import LimitExceededError
from modelyard.storage.shared import SharedRedis
from modelyard.storage.shared_counters import SharedCounters
from tests.routing.conftest import gateway_settings
from tests.storage.tcp_proxy import TcpProxy

HELLO = [{"role": "user", "content": "a b c d e"}]
PRICES = {"fake/paid": {"input": 1000, "output": 1000}}  # $0.01 a request
BUDGET = "budget:key:local:total:total"


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    started = await TcpProxy("127.0.0.1", 6379).start()
    yield started
    await started.stop()


async def test_redis_outage_fails_open_to_a_local_share_and_replays_debits(
    tmp_path: pathlib.Path, proxy: TcpProxy, prefix: str
) -> None:
    settings = gateway_settings(
        tmp_path,
        prices=PRICES,
        redis_url=f"redis://127.0.0.1:{proxy.port}/0",
        shared={"prefix": prefix},
        limits={
            "keys": {"local": {"rps": 20, "burst": 20}},
            "key_budgets": {"local": {"amount": 100.0, "period": "total"}},
            "output_estimate_tokens": 5,
        },
    )
    async with Gateway(settings) as gw:
        shared = gw.shared.shared
        assert isinstance(shared, SharedRedis) and isinstance(gw.shared.counters, SharedCounters)
        await gw.start()
        await shared.client.zadd(shared.key("replicas"), {"another-replica": time.time()})
        await shared._beat()
        assert shared.replicas == 2
        for _ in range(5):
            await gw.chat({"model": "fake/paid", "messages": HELLO})
        assert await gw.shared.counters.spent([BUDGET]) == [pytest.approx(0.05)]

        proxy.pause()
        tripped, early = await _until_local(gw, shared)
        assert 0.25 <= tripped < 1.5  # 5 failures in a row over at least shared.breaker_seconds
        latencies, admitted = await _burst(gw, 40)
        assert gw.routing_status()["shared_state"]["state"] == "local (redis unreachable)"
        assert 9 <= admitted <= 12  # the local share: a fresh bucket of 20 / 2 replicas (the call that opened
        # the breaker may have taken one), refilling at 10 rps
        assert sorted(latencies)[int(len(latencies) * 0.99) - 1] < 0.005  # nobody waits for Redis any more
        assert len(gw.shared.counters.journal) == early + admitted  # every debit made meanwhile is kept

        proxy.resume()
        started = time.monotonic()
        while not shared.up or gw.shared.counters.journal:
            assert time.monotonic() - started < 2.5, "counters did not agree within 2 s of Redis returning"
            await asyncio.sleep(0.05)
        total = 0.05 + 0.01 * (early + admitted)
        assert await gw.shared.counters.spent([BUDGET]) == [pytest.approx(total)]
        await gw.shared.counters.reconcile()  # replaying again changes nothing
        assert await gw.shared.counters.spent([BUDGET]) == [pytest.approx(total)]
        await asyncio.sleep(1.1)  # the shared bucket refilled
        await gw.chat({"model": "fake/paid", "messages": HELLO})
        assert gw.routing_status()["shared_state"]["state"] == "ok"


async def _until_local(gw: Gateway, shared: SharedRedis) -> tuple[float, int]:
    """Calls every 20 ms until the breaker opens: (seconds it took, calls admitted meanwhile)."""
    started, admitted = time.monotonic(), 0
    while shared.up and time.monotonic() - started < 3:
        try:
            await gw.chat({"model": "fake/paid", "messages": HELLO})
            admitted += 1
        except LimitExceededError:
            pass
        await asyncio.sleep(0.02)
    return time.monotonic() - started, admitted


async def _burst(gw: Gateway, count: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    admitted = 0
    for _ in range(count):
        started = time.monotonic()
        try:
            await gw.chat({"model": "fake/paid", "messages": HELLO})
            admitted += 1
        except LimitExceededError:
            pass
        latencies.append(time.monotonic() - started)
    return latencies, admitted
