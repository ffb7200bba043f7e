"""The Redis connection shared by limits, budgets, the cache and rollout flags, behind a small breaker.

Every call has a short socket timeout (100 ms by default) and is never retried by the client. After
``breaker_failures`` errors in a row the connection is marked down: callers stop waiting on Redis and fall back
to local state at once, while a background probe pings every ``retry_seconds`` and marks it up again (running
the ``on_recovery`` hooks, which reconcile local state) as soon as Redis answers. ``redis`` is imported lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from modelyard.config import SharedStateSettings

T = TypeVar("T")
log = logging.getLogger("modelyard.shared")

HEARTBEAT_SECONDS = 2.0
POOL_WAIT_SECONDS = 1.0
PATIENCE_SECONDS = 1.0  # a patient operation gives up after this long even if the breaker stays closed
RETRY_PAUSE_SECONDS = 0.02
REPLICA_TTL_SECONDS = 10.0


class SharedUnavailable(Exception):
    """Redis is down (or just failed): use local state for this operation."""


class SharedRedis:
    """One ``redis.asyncio.Redis`` client, its breaker, the replica heartbeat and the recovery probe."""

    def __init__(self, url: str, settings: SharedStateSettings | None = None) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.settings = settings or SharedStateSettings()
        self.prefix = self.settings.prefix
        timeout = self.settings.socket_timeout
        # A bounded pool: a burst waits briefly for a connection (a long wait counts as Redis being unhealthy).
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=self.settings.max_connections,
            timeout=POOL_WAIT_SECONDS,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self.client: Any = Redis(connection_pool=pool)
        self.replica_id = uuid.uuid4().hex[:12]
        self.replicas = self.settings.replicas
        self.up = True
        self.failures = 0
        self.streak_started = 0.0
        self.errors = 0  # every failed call, including those that did not open the breaker
        self.outages = 0
        self.down_since: float | None = None
        self.on_recovery: list[Callable[[], Awaitable[None]]] = []
        self.on_outage: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def run(self, operation: Callable[[], Awaitable[T]], *, patient: bool = False) -> T:
        """Run one Redis operation; raise ``SharedUnavailable`` when Redis is down or the operation failed.

        ``patient`` operations (the limiter's: take, acquire, release, reserve, settle) are tried again until
        they succeed or the breaker opens, so a momentary stall of this process (a reply that missed the 100 ms
        timeout) does not send them to the local share: failing open is for outages. The others (cache, flags,
        reads) fail over at once. The limiter scripts are idempotent where a repeat would matter (a slot, a
        reservation, a debit); a repeated ``take`` can only charge one extra token.
        """
        deadline = time.monotonic() + PATIENCE_SECONDS
        while True:
            if not self.up:
                raise SharedUnavailable("redis is down")
            try:
                result = await operation()
            except Exception as exc:  # redis errors, OSError, timeouts: all mean "go local"
                if _is_script_error(exc):
                    raise
                self._failed(exc)
                if not patient or not self.up or time.monotonic() >= deadline:
                    raise SharedUnavailable(str(exc)) from exc
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                continue
            self.failures = 0
            return result

    def _failed(self, exc: BaseException) -> None:
        """Count a failure; open the breaker after ``breaker_failures`` in a row spanning ``breaker_seconds``.

        The time span keeps a short stall of this process (every in-flight call timing out at the same moment
        under a CPU spike) from being taken for an outage; a real outage keeps failing and opens it.
        """
        now = time.monotonic()
        if self.failures == 0:
            self.streak_started = now
        self.failures += 1
        self.errors += 1
        log.debug("redis call failed (%s), %d in a row", type(exc).__name__, self.failures)
        if (
            self.up
            and self.failures >= self.settings.breaker_failures
            and now - self.streak_started >= self.settings.breaker_seconds
        ):
            self.up = False
            self.outages += 1
            self.down_since = time.monotonic()
            log.warning("redis unreachable (%s): limits fall back to a local share", type(exc).__name__)
            for hook in self.on_outage:
                hook()

    def start(self) -> None:
        """Start the heartbeat / recovery loop (needs a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="modelyard-redis-heartbeat")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS if self.up else self.settings.retry_seconds)
            try:
                await self._beat()
            except Exception as exc:
                if self.up:
                    self._failed(exc)
                continue
            if not self.up:
                await self._recover()

    async def _beat(self) -> None:
        """Register this replica and count the live ones (the N of the local share)."""
        now = time.time()
        key = self.key("replicas")
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(key, {self.replica_id: now})
        pipe.zremrangebyscore(key, "-inf", now - REPLICA_TTL_SECONDS)
        pipe.zcard(key)
        pipe.expire(key, int(REPLICA_TTL_SECONDS * 6))
        results = await pipe.execute()
        self.replicas = max(1, int(results[2]))

    async def _recover(self) -> None:
        """Back to shared state, then reconcile (replay journaled debits); a failure re-opens the breaker."""
        self.up, self.failures, self.down_since = True, 0, None
        log.warning("redis reachable again: shared limits resumed")
        for hook in self.on_recovery:
            try:
                await hook()
            except Exception as exc:  # what was not replayed stays journaled for the next recovery
                log.warning("redis recovery step failed (%s)", type(exc).__name__)

    def status(self) -> dict[str, Any]:
        return {
            "backend": "redis",
            "state": "ok" if self.up else "local (redis unreachable)",
            "replicas": self.replicas,
            "outages": self.outages,
            "failed_calls": self.errors,
        }

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await self.client.zrem(self.key("replicas"), self.replica_id)
        await self.client.aclose()
        await self.client.connection_pool.disconnect()


def _is_script_error(exc: BaseException) -> bool:
    """A Lua error is a bug to surface, not an outage to hide."""
    from redis.exceptions import ResponseError

    return isinstance(exc, ResponseError) and "NOSCRIPT" not in str(exc)
