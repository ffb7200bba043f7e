"""Response cache stores: in-memory LRU (bounded by entries and bytes), a SQLite file, or Redis.

Values are opaque bytes with a time to live. A store that fails (Redis away, disk error) answers "miss" and
drops writes: the cache never fails a request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

from modelyard.storage.shared import SharedRedis, SharedUnavailable

log = logging.getLogger("modelyard.cache")


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def aclose(self) -> None: ...


class MemoryCache:
    """An LRU bounded by ``max_entries`` and ``max_bytes`` (values only); expired entries count as misses."""

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item[1]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes:
            return
        self._drop(key)
        self._items[key] = (time.monotonic() + ttl, value)
        self.bytes += len(value)
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= len(item[1])

    async def aclose(self) -> None:
        self._items.clear()
        self.bytes = 0


class SQLiteCache:
    """Entries in one SQLite file (survives restarts; shared by processes on one machine)."""

    PURGE_EVERY = 500

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: Any = None
        self._writes = 0

    async def _conn(self) -> Any:
        if self._db is None:
            import aiosqlite

            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(
                "CREATE TABLE IF NOT EXISTS response_cache (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL)"
            )
            await db.commit()
            self._db = db
        return self._db

    async def get(self, key: str) -> bytes | None:
        try:
            db = await self._conn()
            async with db.execute(
                "SELECT value FROM response_cache WHERE key = ? AND expires > ?", (key, time.time())
            ) as cursor:
                row = await cursor.fetchone()
        except Exception as exc:
            log.warning("cache read failed: %s", type(exc).__name__)
            return None
        return bytes(row[0]) if row is not None else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            db = await self._conn()
            await db.execute(
                "INSERT OR REPLACE INTO response_cache (key, value, expires) VALUES (?, ?, ?)",
                (key, value, time.time() + ttl),
            )
            self._writes += 1
            if self._writes % self.PURGE_EVERY == 0:
                await db.execute("DELETE FROM response_cache WHERE expires <= ?", (time.time(),))
            await db.commit()
        except Exception as exc:
            log.warning("cache write failed: %s", type(exc).__name__)

    async def aclose(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None


class RedisCache:
    """Entries as Redis strings with an expiry (shared by every replica)."""

    def __init__(self, shared: SharedRedis) -> None:
        self.shared = shared

    async def get(self, key: str) -> bytes | None:
        with contextlib.suppress(SharedUnavailable):
            value = await self.shared.run(lambda: self.shared.client.get(self.shared.key("cache", key)))
            return bytes(value) if value is not None else None
        return None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        with contextlib.suppress(SharedUnavailable):
            await self.shared.run(
                lambda: self.shared.client.set(self.shared.key("cache", key), value, px=max(1, int(ttl * 1000)))
            )

    async def aclose(self) -> None:
        """The shared connection is closed by its owner."""
