"""The counters protocol, in-process and in Redis (atomic Lua): buckets, slots, budgets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from modelyard.config import SharedStateSettings
from modelyard.storage.counters import Bucket, BudgetLine, Counters, MemoryCounters, Refusal, Reservation, Slot
from modelyard.storage.shared import SharedRedis
from modelyard.storage.shared_counters import SharedCounters


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    shared = SharedRedis(request.getfixturevalue("redis_url"), SharedStateSettings(prefix=prefix))
    made = SharedCounters(shared)
    yield made
    await made.aclose()
    await shared.aclose()


async def test_token_bucket_is_all_or_nothing(counters: Counters) -> None:
    a = Bucket("a", capacity=2, rate=1)
    b = Bucket("b", capacity=1, rate=0.001)
    assert (await counters.take([a])).ok
    assert (await counters.take([a, b])).ok
    refused = await counters.take([a, b])
    assert not refused.ok and 0 < refused.wait <= 1000
    assert (await counters.take([Bucket("a", 2, 1, cost=0)])).remaining[0] < 1  # a was not refunded...
    blocked = await counters.take([Bucket("c", 5, 1), b])
    assert not blocked.ok
    assert (await counters.take([Bucket("c", 5, 1, cost=5)])).ok  # ...and c was not charged by the refusal


async def test_adjust_reconciles_debt_and_refunds(counters: Counters) -> None:
    tpm = Bucket("tpm", capacity=100, rate=0.0001, cost=80)
    assert (await counters.take([tpm])).ok
    await counters.adjust([Bucket("tpm", 100, 0.0001, cost=-70)])  # used 10 of the 80 estimated
    assert (await counters.take([Bucket("tpm", 100, 0.0001, cost=80)])).ok
    await counters.adjust([Bucket("tpm", 100, 0.0001, cost=500)])  # used far more: debt, floored at -capacity
    result = await counters.take([Bucket("tpm", 100, 0.0001, cost=1)])
    assert not result.ok and result.remaining[0] == pytest.approx(-100, abs=0.1)


async def test_slots_are_all_or_nothing_and_released(counters: Counters) -> None:
    slots = [Slot("k", 2), Slot("m", 3)]
    first = await counters.acquire(slots, "r1")
    second = await counters.acquire(slots, "r2")
    assert first is not None and second is not None
    assert await counters.acquire(slots, "r3") is None
    assert await counters.in_flight("m") == 2  # the refused request took nothing
    await counters.release(first)
    await counters.release(first)  # idempotent
    assert await counters.in_flight("k") == 1
    assert await counters.acquire(slots, "r3") is not None


async def test_budget_admits_while_spent_plus_reserved_is_below_the_limit(counters: Counters) -> None:
    line = BudgetLine("budget", limit=1.0, ttl=3600)
    first = await counters.reserve([line], 0.6, "r1")
    second = await counters.reserve([line], 0.6, "r2")  # 0.6 < 1.0: admitted, may overshoot by one estimate
    assert isinstance(first, Reservation) and isinstance(second, Reservation)
    third = await counters.reserve([line], 0.6, "r3")
    assert isinstance(third, Refusal) and third.index == 0
    await counters.settle(first, 0.1)
    await counters.settle(first, 0.1)  # idempotent
    await counters.settle(second, 0.2)
    assert await counters.spent(["budget"]) == [pytest.approx(0.3)]
    assert isinstance(await counters.reserve([line], 0.6, "r4"), Reservation)


async def test_budget_counter_is_seeded_once_and_refusal_names_the_budget(counters: Counters) -> None:
    lines = [BudgetLine("ok", 10.0), BudgetLine("seeded", 2.0, initial=1.99)]
    held = await counters.reserve(lines, 0.001, "r1")
    assert isinstance(held, Reservation)
    await counters.settle(held, 0.02)
    again = [BudgetLine("ok", 10.0), BudgetLine("seeded", 2.0, initial=0.0)]  # not re-seeded
    refused = await counters.reserve(again, 0.001, "r2")
    assert isinstance(refused, Refusal) and refused.index == 1 and refused.spent == pytest.approx(2.01)


async def test_a_dead_replicas_slots_expire_and_held_ones_are_renewed(redis_url: str, prefix: str) -> None:
    shared = SharedRedis(redis_url, SharedStateSettings(prefix=prefix))
    alive = SharedCounters(shared, lease_seconds=0.3)
    dead = SharedCounters(shared, lease_seconds=0.3)
    try:
        held = await alive.acquire([Slot("k", 2)], "alive")
        assert held is not None
        assert await dead.acquire([Slot("k", 2)], "dead") is not None
        await dead.redis.aclose()  # the replica dies: nobody renews its lease
        dead.redis._held.clear()
        await asyncio.sleep(0.7)
        assert await alive.in_flight("k") == 1  # the dead one expired, the held one was renewed
        assert await alive.acquire([Slot("k", 2)], "again") is not None
        assert await alive.acquire([Slot("k", 2)], "again") is not None  # idempotent: a retried acquire
        await alive.release(held)
    finally:
        await alive.aclose()
        await shared.aclose()
