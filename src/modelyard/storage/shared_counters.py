"""Shared counters that fail open: Redis while it answers, else a local share of every limit.

During an outage each replica enforces ``limit / N`` locally (N = live replicas seen by the heartbeat), so the
fleet as a whole stays near the limit (Envoy's ``failure_mode_deny=false``). Budget debits made while Redis
is away are journaled and replayed when it returns, so none is lost; budgets continue locally from the spend
Redis last reported, each replica getting 1/N of what was left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from modelyard.storage.counters import Bucket, BudgetLine, Lease, MemoryCounters, Refusal, Reservation, Slot, TakeResult
from modelyard.storage.redis_counters import RedisCounters
from modelyard.storage.shared import SharedRedis, SharedUnavailable

log = logging.getLogger("modelyard.shared")


class SharedCounters:
    """``Counters`` over Redis with a local fallback and a debit journal."""

    def __init__(self, shared: SharedRedis, lease_seconds: float = 90.0) -> None:
        self.shared = shared
        self.redis = RedisCounters(shared, lease_seconds)
        self.local = MemoryCounters()
        self.journal: list[tuple[tuple[str, ...], str, float]] = []  # (redis budget keys, member, cost)
        self.replayed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        shared.on_outage.append(self._outage)
        shared.on_recovery.append(self.reconcile)

    @property
    def n(self) -> int:
        return max(1, self.shared.replicas)

    def _share(self, bucket: Bucket) -> Bucket:
        capacity = max(bucket.capacity / self.n, min(bucket.cost, bucket.capacity))
        return replace(bucket, capacity=capacity, rate=bucket.rate / self.n)

    async def take(self, buckets: Sequence[Bucket]) -> TakeResult:
        try:
            return await self.redis.take(buckets)
        except SharedUnavailable:
            return await self.local.take([self._share(b) for b in buckets])

    async def adjust(self, buckets: Sequence[Bucket]) -> None:
        try:
            await self.redis.adjust(buckets)
        except SharedUnavailable:
            await self.local.adjust([self._share(b) for b in buckets])

    async def acquire(self, slots: Sequence[Slot], lease_id: str) -> Lease | None:
        try:
            return await self.redis.acquire(slots, lease_id)
        except SharedUnavailable:
            self._undo([self.redis.k(s.key) for s in slots], lease_id)
            return await self.local.acquire([Slot(s.key, max(1, s.limit // self.n)) for s in slots], lease_id)

    async def release(self, lease: Lease) -> None:
        if lease.where == "local":
            await self.local.release(lease)
            return
        try:
            await self.redis.release(lease)
        except SharedUnavailable:
            lease.released = True  # no longer renewed: Redis drops it when its lease expires

    async def in_flight(self, key: str) -> int:
        try:
            return await self.redis.in_flight(key)
        except SharedUnavailable:
            return await self.local.in_flight(key)

    async def reserve(self, lines: Sequence[BudgetLine], estimate: float, lease_id: str) -> Reservation | Refusal:
        try:
            return await self.redis.reserve(lines, estimate, lease_id)
        except SharedUnavailable:
            self._undo([self.redis.k(line.key) for line in lines], f"{lease_id}|{estimate!r}", reservations=True)
            local = []
            for line in lines:
                known = self.redis.last_spent.get(line.key, line.initial or 0.0)
                share = known + max(0.0, line.limit - known) / self.n
                local.append(replace(line, limit=share, initial=known))
            return await self.local.reserve(local, estimate, lease_id)

    async def settle(self, reservation: Reservation, actual: float) -> None:
        if reservation.settled:
            return
        if reservation.where == "local":
            await self.local.settle(reservation, actual)
            if not actual:
                reservation.settled = True
                return  # nothing for Redis: it never saw this reservation
            keys, member = tuple(self.redis.k(k) for k in reservation.keys), f"local|{reservation.lease_id}"
        else:
            keys, member = reservation.keys, reservation.lease_id
        reservation.settled = True
        try:
            await self.redis.settle_keys(keys, member, actual)
        except SharedUnavailable:
            self.journal.append((keys, member, actual))

    async def spent(self, keys: Sequence[str]) -> list[float]:
        try:
            return await self.redis.spent(keys)
        except SharedUnavailable:
            return await self.local.spent(keys)

    def _undo(self, keys: list[str], member: str, reservations: bool = False) -> None:
        """In the background, undo an operation whose reply was lost: it may have happened in Redis."""
        targets = [k + ":r" for k in keys] if reservations else keys

        async def undo() -> None:
            with contextlib.suppress(Exception):
                await self.redis.forget_members(targets, member)

        task = asyncio.get_running_loop().create_task(undo())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _outage(self) -> None:
        self.local = MemoryCounters()  # a fresh local share, seeded from what Redis last reported

    async def reconcile(self) -> None:
        """Replay journaled debits into Redis (called when it is reachable again)."""
        while self.journal:
            keys, member, actual = self.journal[0]
            await self.redis.settle_keys(keys, member, actual)
            self.journal.pop(0)
            self.replayed += 1
        if self.replayed:
            log.warning("replayed %d budget debits made while redis was unreachable", self.replayed)

    def status(self) -> dict[str, Any]:
        return {**self.redis.status(), "journaled_debits": len(self.journal), "replayed_debits": self.replayed}

    async def aclose(self) -> None:
        await self.redis.aclose()
