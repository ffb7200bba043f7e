"""Per-deployment health: a circuit breaker (outlier ejection, 429 cool-down) plus in-flight and latency stats.

Numbers follow Envoy's outlier detection: ``failures`` consecutive failures (5xx, timeouts, refused
connections) eject a deployment for ``ejection_seconds``, doubling on each repeat up to
``max_ejection_seconds``. A 429 with ``Retry-After`` cools the deployment for that long. The last available
deployment of a group is never taken out, and "no deployment available" is never counted as a failure.
State is per process (like Envoy's, per host): each replica learns from the traffic it sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modelyard import errors
from modelyard.config import BreakerSettings


@dataclass
class _State:
    consecutive: int = 0
    ejections: int = 0
    until: float = 0.0
    reason: str = ""
    last_ejection_end: float = 0.0
    in_flight: int = 0
    latency: float | None = None
    successes: int = 0
    failures: int = 0


def counts_as_failure(exc: BaseException) -> bool:
    """5xx, timeouts and connection errors count; client errors, limits and "no deployment" do not."""
    if isinstance(exc, errors.NoDeploymentAvailableError) or not isinstance(exc, errors.ModelyardError):
        return False
    if isinstance(exc, errors.TimeoutError | errors.ConnectionError):
        return True
    return exc.status_code >= 500 and not isinstance(exc, errors.ConfigError)


class HealthBoard:
    """Breaker state and stats for every deployment this process has used."""

    def __init__(self, settings: BreakerSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or BreakerSettings()
        self.clock = clock
        self._states: dict[str, _State] = {}

    def _state(self, deployment_id: str) -> _State:
        state = self._states.get(deployment_id)
        if state is None:
            state = self._states[deployment_id] = _State()
        return state

    # ----- reading -----------------------------------------------------------------------------------------
    def available(self, deployment_id: str) -> bool:
        state = self._states.get(deployment_id)
        return state is None or state.until <= self.clock()

    def available_in(self, deployment_id: str) -> float:
        """Seconds until the deployment is back (0 when available)."""
        state = self._states.get(deployment_id)
        return 0.0 if state is None else max(0.0, state.until - self.clock())

    def in_flight(self, deployment_id: str) -> int:
        state = self._states.get(deployment_id)
        return 0 if state is None else state.in_flight

    def latency(self, deployment_id: str) -> float | None:
        state = self._states.get(deployment_id)
        return None if state is None else state.latency

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every known deployment's state: healthy, ejected or cooling, with counters (for /ready and metrics)."""
        now = self.clock()
        out: dict[str, dict[str, Any]] = {}
        for ident, s in sorted(self._states.items()):
            down = s.until > now
            out[ident] = {
                "state": s.reason if down else "healthy",
                "available_in_s": round(s.until - now, 3) if down else 0.0,
                "consecutive_failures": s.consecutive,
                "ejections": s.ejections,
                "in_flight": s.in_flight,
                "latency_ms": round(s.latency * 1000, 3) if s.latency is not None else None,
                "successes": s.successes,
                "failures": s.failures,
            }
        return out

    # ----- recording ---------------------------------------------------------------------------------------
    def started(self, deployment_id: str) -> None:
        self._state(deployment_id).in_flight += 1

    def finished(self, deployment_id: str) -> None:
        state = self._state(deployment_id)
        state.in_flight = max(0, state.in_flight - 1)

    def success(self, deployment_id: str, latency: float) -> None:
        state, now = self._state(deployment_id), self.clock()
        state.successes += 1
        state.consecutive = 0
        if state.reason == "cooling" and state.until > now:
            state.until = now  # it answered: no longer cooling
        if state.ejections and now - state.last_ejection_end >= self.settings.max_ejection_seconds:
            state.ejections = 0  # healthy for a full maximum ejection: the next ejection starts short again
        alpha = self.settings.latency_alpha
        state.latency = latency if state.latency is None else alpha * latency + (1 - alpha) * state.latency

    def failure(self, deployment_id: str, exc: BaseException, peers: Sequence[str] = ()) -> None:
        """Record a failed attempt; ``peers`` are the other deployments of its group."""
        state, now = self._state(deployment_id), self.clock()
        if isinstance(exc, errors.RateLimitError) and exc.retry_after and exc.retry_after > 0:
            if self._others_available(deployment_id, peers):
                cool = min(exc.retry_after, self.settings.max_ejection_seconds)
                self._take_out(state, now + cool, "cooling")
            return
        if not counts_as_failure(exc):
            if isinstance(exc, errors.ModelyardError) and exc.status_code < 500 and exc.status_code != 429:
                state.consecutive = 0  # the upstream answered (a client error): it is up
            return
        state.failures += 1
        state.consecutive += 1
        if state.consecutive >= self.settings.failures and self._others_available(deployment_id, peers):
            state.ejections += 1
            seconds = self.settings.ejection_seconds * 2 ** (state.ejections - 1)
            self._take_out(state, now + min(seconds, self.settings.max_ejection_seconds), "ejected")
            state.consecutive = 0

    def _take_out(self, state: _State, until: float, reason: str) -> None:
        """Out of rotation until ``until``; a new verdict while already out extends to the later deadline."""
        if state.until <= self.clock() or until >= state.until:
            state.until, state.reason = until, reason
        if reason == "ejected":
            state.last_ejection_end = state.until

    def _others_available(self, deployment_id: str, peers: Sequence[str]) -> bool:
        return any(p != deployment_id and self.available(p) for p in peers)
