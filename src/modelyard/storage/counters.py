"""Counters behind rate limits, in-flight caps and budgets: the protocol and the in-process implementation.

* Token buckets (RPM, RPS, TPM): ``take`` is all-or-nothing over several buckets; ``adjust`` reconciles
  (more tokens used than estimated goes into debt, fewer gives tokens back).
* In-flight slots: ``acquire`` is all-or-nothing over several caps and returns a ``Lease`` to ``release``.
* Budgets: ``reserve`` admits while ``spent + reserved < limit`` and reserves the estimate; ``settle`` swaps the
  reservation for the real cost. So concurrent requests can overshoot by at most one in-flight estimate.

``storage.redis_counters`` implements the same protocol in Redis (atomic Lua) for many replicas.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` per second; this request needs ``cost``."""

    key: str
    capacity: float
    rate: float
    cost: float = 1.0


@dataclass(frozen=True)
class TakeResult:
    ok: bool
    wait: float = 0.0
    remaining: tuple[float, ...] = ()


@dataclass(frozen=True)
class Slot:
    key: str
    limit: int


@dataclass
class Lease:
    """Held in-flight slots; ``where`` says which backend holds them ("local" or "redis")."""

    keys: tuple[str, ...]
    lease_id: str
    where: str = "local"
    released: bool = False


@dataclass(frozen=True)
class BudgetLine:
    """One budget to check: ``initial`` seeds a missing counter (spend already recorded elsewhere)."""

    key: str
    limit: float
    ttl: float | None = None
    initial: float | None = None


@dataclass
class Reservation:
    keys: tuple[str, ...]
    lease_id: str
    estimate: float
    where: str = "local"
    settled: bool = False


@dataclass(frozen=True)
class Refusal:
    """A budget that is spent: ``index`` into the lines, and what it had spent."""

    index: int
    spent: float


class Counters(Protocol):
    async def take(self, buckets: Sequence[Bucket]) -> TakeResult: ...

    async def adjust(self, buckets: Sequence[Bucket]) -> None: ...

    async def acquire(self, slots: Sequence[Slot], lease_id: str) -> Lease | None: ...

    async def release(self, lease: Lease) -> None: ...

    async def reserve(self, lines: Sequence[BudgetLine], estimate: float, lease_id: str) -> Reservation | Refusal: ...

    async def settle(self, reservation: Reservation, actual: float) -> None: ...

    async def spent(self, keys: Sequence[str]) -> list[float]: ...

    async def in_flight(self, key: str) -> int: ...

    def status(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


@dataclass
class _Level:
    tokens: float
    at: float


@dataclass
class _Budget:
    spent: float = 0.0
    reserved: dict[str, float] = field(default_factory=dict)
    expires: float | None = None


class MemoryCounters:
    """All counters in this process (the default: one replica needs no Redis)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._levels: dict[str, _Level] = {}
        self._slots: dict[str, set[str]] = {}
        self._budgets: dict[str, _Budget] = {}

    def _level(self, bucket: Bucket, now: float) -> float:
        level = self._levels.get(bucket.key)
        if level is None:
            return bucket.capacity
        return min(bucket.capacity, level.tokens + max(0.0, now - level.at) * bucket.rate)

    async def take(self, buckets: Sequence[Bucket]) -> TakeResult:
        now = self.clock()
        levels = [self._level(b, now) for b in buckets]
        wait = max((max(0.0, b.cost - lv) / b.rate for b, lv in zip(buckets, levels, strict=True)), default=0.0)
        if wait > 0:
            return TakeResult(False, wait, tuple(levels))
        for bucket, level in zip(buckets, levels, strict=True):
            self._levels[bucket.key] = _Level(level - bucket.cost, now)
        return TakeResult(True, 0.0, tuple(lv - b.cost for b, lv in zip(buckets, levels, strict=True)))

    async def adjust(self, buckets: Sequence[Bucket]) -> None:
        now = self.clock()
        for bucket in buckets:
            level = self._level(bucket, now) - bucket.cost
            self._levels[bucket.key] = _Level(max(-bucket.capacity, min(bucket.capacity, level)), now)

    async def acquire(self, slots: Sequence[Slot], lease_id: str) -> Lease | None:
        if any(len(self._slots.get(s.key, ())) >= s.limit for s in slots):
            return None
        for slot in slots:
            self._slots.setdefault(slot.key, set()).add(lease_id)
        return Lease(tuple(s.key for s in slots), lease_id, "local")

    async def release(self, lease: Lease) -> None:
        if lease.released:
            return
        lease.released = True
        for key in lease.keys:
            held = self._slots.get(key)
            if held is not None:
                held.discard(lease.lease_id)
                if not held:
                    del self._slots[key]

    async def in_flight(self, key: str) -> int:
        return len(self._slots.get(key, ()))

    def _budget(self, line: BudgetLine, now: float) -> _Budget:
        budget = self._budgets.get(line.key)
        if budget is None or (budget.expires is not None and budget.expires <= now):
            budget = _Budget(spent=line.initial or 0.0)
            self._budgets[line.key] = budget
        if line.ttl is not None:
            budget.expires = now + line.ttl
        return budget

    async def reserve(self, lines: Sequence[BudgetLine], estimate: float, lease_id: str) -> Reservation | Refusal:
        now = self.clock()
        budgets = [self._budget(line, now) for line in lines]
        for index, (line, budget) in enumerate(zip(lines, budgets, strict=True)):
            if budget.spent + sum(budget.reserved.values()) >= line.limit:
                return Refusal(index, budget.spent)
        for budget in budgets:
            budget.reserved[lease_id] = estimate
        return Reservation(tuple(line.key for line in lines), lease_id, estimate, "local")

    async def settle(self, reservation: Reservation, actual: float) -> None:
        if reservation.settled:
            return
        reservation.settled = True
        for key in reservation.keys:
            budget = self._budgets.setdefault(key, _Budget())
            budget.reserved.pop(reservation.lease_id, None)
            budget.spent += actual

    async def spent(self, keys: Sequence[str]) -> list[float]:
        return [self._budgets[k].spent if k in self._budgets else 0.0 for k in keys]

    def status(self) -> dict[str, Any]:
        return {"backend": "memory", "state": "ok"}

    async def aclose(self) -> None:
        """Nothing to release."""
