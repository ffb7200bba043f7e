"""``Counters`` in Redis: one atomic Lua script per operation, shared by every replica.

Operations raise ``SharedUnavailable`` when Redis does not answer in time; ``storage.shared_counters`` turns
that into a local fallback. Held slots and reservations carry an expiry (``lease_seconds``) that a background
task pushes forward while they are held, so a replica that dies frees its slots within one lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from modelyard.storage.counters import Bucket, BudgetLine, Lease, Refusal, Reservation, Slot, TakeResult
from modelyard.storage.lua import ACQUIRE, ADJUST, IN_FLIGHT, RELEASE, RENEW, RESERVE, SETTLE, TAKE
from modelyard.storage.shared import SharedRedis

DEBIT_MEMORY_SECONDS = 600  # how long a settled member is remembered, so a replayed debit is not counted twice


class RedisCounters:
    """Buckets, slots and budgets as Redis keys under ``<prefix>lim:``."""

    def __init__(self, shared: SharedRedis, lease_seconds: float = 90.0) -> None:
        self.shared = shared
        self.lease_ms = int(lease_seconds * 1000)
        client = shared.client
        self._take = client.register_script(TAKE)
        self._adjust = client.register_script(ADJUST)
        self._acquire = client.register_script(ACQUIRE)
        self._release = client.register_script(RELEASE)
        self._in_flight = client.register_script(IN_FLIGHT)
        self._renew = client.register_script(RENEW)
        self._reserve = client.register_script(RESERVE)
        self._settle = client.register_script(SETTLE)
        self._held: dict[str, tuple[str, ...]] = {}  # member -> sorted-set keys (slots and reservations)
        self.last_spent: dict[str, float] = {}  # budget key -> spend Redis last reported (seeds the local share)
        self._renewer: asyncio.Task[None] | None = None

    def k(self, key: str) -> str:
        return self.shared.key("lim", key)

    async def take(self, buckets: Sequence[Bucket]) -> TakeResult:
        keys = [self.k(b.key) for b in buckets]
        args = [v for b in buckets for v in (b.capacity, b.rate, b.cost)]
        raw = await self.shared.run(lambda: self._take(keys=keys, args=args), patient=True)
        return TakeResult(bool(int(raw[0])), float(raw[1]), tuple(float(x) for x in raw[2:]))

    async def adjust(self, buckets: Sequence[Bucket]) -> None:
        keys = [self.k(b.key) for b in buckets]
        args = [v for b in buckets for v in (b.capacity, b.rate, b.cost)]
        await self.shared.run(lambda: self._adjust(keys=keys, args=args))

    async def acquire(self, slots: Sequence[Slot], lease_id: str) -> Lease | None:
        keys = [self.k(s.key) for s in slots]
        args: list[Any] = [lease_id, self.lease_ms, *(s.limit for s in slots)]
        raw = await self.shared.run(lambda: self._acquire(keys=keys, args=args), patient=True)
        if not int(raw[0]):
            return None
        self._hold(lease_id, tuple(keys))
        return Lease(tuple(keys), lease_id, "redis")

    async def release(self, lease: Lease) -> None:
        if lease.released:
            return
        self._held.pop(lease.lease_id, None)
        await self.shared.run(lambda: self._release(keys=list(lease.keys), args=[lease.lease_id]), patient=True)
        lease.released = True

    async def in_flight(self, key: str) -> int:
        count = await self.shared.run(lambda: self._in_flight(keys=[self.k(key)]))
        return int(count)

    async def reserve(self, lines: Sequence[BudgetLine], estimate: float, lease_id: str) -> Reservation | Refusal:
        member = f"{lease_id}|{estimate!r}"
        keys = [key for line in lines for key in (self.k(line.key), self.k(line.key) + ":r")]
        args: list[Any] = [member, estimate, self.lease_ms]
        for line in lines:
            args += [line.limit, line.ttl or -1, -1 if line.initial is None else line.initial]
        raw = await self.shared.run(lambda: self._reserve(keys=keys, args=args), patient=True)
        for line, spent in zip(lines, raw[2:], strict=False):
            self.last_spent[line.key] = float(spent)
        if not int(raw[0]):
            index = int(raw[1]) - 1
            return Refusal(index, float(raw[2 + index]))
        reserved = tuple(keys[0::2])
        self._hold(member, tuple(keys[1::2]))
        return Reservation(reserved, member, estimate, "redis")

    async def settle(self, reservation: Reservation, actual: float) -> None:
        if reservation.settled:
            return
        await self.settle_keys(reservation.keys, reservation.lease_id, actual)
        reservation.settled = True

    async def settle_keys(self, keys: Sequence[str], member: str, actual: float) -> None:
        """Drop ``member``'s reservation (if any) from each budget and add ``actual`` to its spend, once."""
        self._held.pop(member, None)
        flat = [key for k in keys for key in (k, k + ":r")]
        args = [member, repr(float(actual)), DEBIT_MEMORY_SECONDS]
        await self.shared.run(lambda: self._settle(keys=flat, args=args), patient=True)

    async def forget_members(self, keys: Sequence[str], member: str) -> None:
        """Remove ``member`` from sorted sets: undoes an acquire or reserve whose reply was lost."""
        self._held.pop(member, None)
        await self.shared.run(lambda: self._release(keys=list(keys), args=[member]))

    async def spent(self, keys: Sequence[str]) -> list[float]:
        pipe = self.shared.client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(self.k(key), "spent")
        values = await self.shared.run(pipe.execute)
        return [float(v) if v is not None else 0.0 for v in values]

    def status(self) -> dict[str, Any]:
        return {**self.shared.status(), "held_leases": len(self._held)}

    # ----- lease renewal -----------------------------------------------------------------------------------
    def _hold(self, member: str, keys: tuple[str, ...]) -> None:
        self._held[member] = keys
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop(), name="modelyard-lease-renew")

    async def _renew_loop(self) -> None:
        while self._held:
            await asyncio.sleep(self.lease_ms / 3000)
            pairs = [(key, member) for member, keys in list(self._held.items()) for key in keys]
            if not pairs:
                continue
            with contextlib.suppress(Exception):  # an outage: the local share takes over
                await self._renew_pairs(pairs)

    async def _renew_pairs(self, pairs: list[tuple[str, str]]) -> None:
        keys = [k for k, _ in pairs]
        args: list[Any] = [self.lease_ms, *(m for _, m in pairs)]
        await self.shared.run(lambda: self._renew(keys=keys, args=args))

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
