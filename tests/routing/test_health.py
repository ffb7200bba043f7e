"""The circuit breaker's numbers (Envoy outlier detection): 5 failures eject for 30 s, doubling to 5 min."""

from __future__ import annotations

import pytest

from modelyard import errors
from modelyard.config import BreakerSettings
from modelyard.routing.health import HealthBoard, counts_as_failure


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PEERS = ["a", "b"]


def board() -> tuple[HealthBoard, Clock]:
    clock = Clock()
    return HealthBoard(BreakerSettings(), clock=clock), clock


def fail(health: HealthBoard, times: int, exc: errors.ModelyardError | None = None, peers: list[str] = PEERS) -> None:
    for _ in range(times):
        health.failure("a", exc or errors.ServiceUnavailableError("down", status=503), peers)


def test_five_consecutive_failures_eject_for_30s_then_60s_then_capped_at_5min() -> None:
    health, clock = board()
    fail(health, 4)
    assert health.available("a")
    fail(health, 1)
    assert not health.available("a")
    assert health.available_in("a") == pytest.approx(30)
    assert health.snapshot()["a"]["state"] == "ejected"
    clock.now += 30
    assert health.available("a")
    fail(health, 5)
    assert health.available_in("a") == pytest.approx(60)
    durations = []
    for _ in range(5):
        clock.now += health.available_in("a")
        fail(health, 5)
        durations.append(health.available_in("a"))
    assert durations == [pytest.approx(d) for d in (120, 240, 300, 300, 300)]


def test_a_success_resets_the_consecutive_count() -> None:
    health, _ = board()
    fail(health, 4)
    health.success("a", 0.1)
    fail(health, 4)
    assert health.available("a")


def test_the_last_available_deployment_is_never_ejected() -> None:
    health, _ = board()
    fail(health, 5)  # a ejected, b left
    assert not health.available("a")
    for _ in range(20):
        health.failure("b", errors.ProviderError("boom", status=500), PEERS)
    assert health.available("b")
    health2, _ = board()
    fail(health2, 50, peers=["a"])  # a group of one keeps serving and passes errors through
    assert health2.available("a")


def test_429_with_retry_after_cools_for_that_long() -> None:
    health, clock = board()
    health.failure("a", errors.RateLimitError("slow down", retry_after=7), PEERS)
    assert health.snapshot()["a"]["state"] == "cooling"
    assert health.available_in("a") == pytest.approx(7)
    health.failure("a", errors.RateLimitError("slow down", retry_after=3), PEERS)
    assert health.available_in("a") == pytest.approx(7)  # extended to the later deadline, never shortened
    clock.now += 7
    assert health.available("a")
    health.failure("a", errors.RateLimitError("no header"), PEERS)
    assert health.available("a")  # a 429 without Retry-After neither cools nor counts


def test_what_counts_as_a_failure() -> None:
    assert counts_as_failure(errors.ProviderError("x", status=500))
    assert counts_as_failure(errors.TimeoutError("x"))
    assert counts_as_failure(errors.ConnectionError("refused"))
    assert not counts_as_failure(errors.NoDeploymentAvailableError("none"))
    assert not counts_as_failure(errors.BadRequestError("x"))
    assert not counts_as_failure(errors.RateLimitError("x"))
    health, _ = board()
    fail(health, 20, errors.NoDeploymentAvailableError("none"))
    assert health.available("a")


def test_a_client_error_means_the_upstream_is_up() -> None:
    health, _ = board()
    fail(health, 4)
    health.failure("a", errors.BadRequestError("bad"), PEERS)
    fail(health, 4)
    assert health.available("a")


def test_latency_is_a_moving_average_and_in_flight_is_counted() -> None:
    health, _ = board()
    health.success("a", 1.0)
    health.success("a", 2.0)
    assert health.latency("a") == pytest.approx(0.2 * 2.0 + 0.8 * 1.0)
    health.started("a")
    health.started("a")
    health.finished("a")
    assert health.in_flight("a") == 1
