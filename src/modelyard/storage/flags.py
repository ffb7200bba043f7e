"""Run-time rollout percentages: set through the admin API, read on every request, no restart needed.

In-process by default; with Redis every replica reads the same hash (refreshed at most once per
``refresh_seconds``, and kept as last seen while Redis is away).
"""

from __future__ import annotations

import contextlib
import time

from modelyard.storage.shared import SharedRedis, SharedUnavailable


class RolloutFlags:
    """name -> percent overrides (None: use the configured percent)."""

    def __init__(self, shared: SharedRedis | None = None, refresh_seconds: float = 1.0) -> None:
        self.shared = shared
        self.refresh_seconds = refresh_seconds
        self._values: dict[str, float] = {}
        self._fresh_until = 0.0

    def percent(self, name: str) -> float | None:
        return self._values.get(name)

    def all(self) -> dict[str, float]:
        return dict(self._values)

    async def refresh(self, force: bool = False) -> None:
        """Re-read the shared flags when the local copy is older than ``refresh_seconds``."""
        if self.shared is None or (not force and time.monotonic() < self._fresh_until):
            return
        self._fresh_until = time.monotonic() + self.refresh_seconds
        shared = self.shared
        with contextlib.suppress(SharedUnavailable):
            raw = await shared.run(lambda: shared.client.hgetall(shared.key("rollouts")))
            self._values = {_text(k): float(v) for k, v in raw.items()}

    async def set(self, name: str, percent: float | None) -> None:
        """Set (or with None, clear) the override for ``name`` on every replica."""
        if self.shared is not None:
            shared = self.shared
            key = shared.key("rollouts")
            if percent is None:
                await shared.run(lambda: shared.client.hdel(key, name))
            else:
                await shared.run(lambda: shared.client.hset(key, name, repr(float(percent))))
        if percent is None:
            self._values.pop(name, None)
        else:
            self._values[name] = float(percent)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
