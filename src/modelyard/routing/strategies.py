"""Deployment ordering strategies: priority, weighted random, least in-flight, lowest latency, lowest cost.

Each returns every deployment (the first is tried first, the rest are the in-group fallback order).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from modelyard.config import Strategy
from modelyard.routing.deployments import Deployment


class Stats(Protocol):
    """What strategies may read about a deployment (kept by ``routing.health.HealthBoard``)."""

    def in_flight(self, deployment_id: str) -> int: ...

    def latency(self, deployment_id: str) -> float | None: ...


CostOf = Callable[[str], float | None]
"""``provider/model`` -> a comparable price (USD per 1M input + output tokens), None when unknown."""


def order(
    deployments: Sequence[Deployment],
    strategy: Strategy,
    stats: Stats,
    cost_of: CostOf | None = None,
    rng: random.Random | None = None,
) -> list[Deployment]:
    """The deployments in the order ``strategy`` wants them tried."""
    rng = rng or _RNG
    if len(deployments) < 2:
        return list(deployments)
    if strategy == "weighted":
        return weighted(deployments, rng)
    if strategy == "least_busy":
        return sorted(deployments, key=lambda d: (stats.in_flight(d.id), d.priority, rng.random()))
    if strategy == "latency":
        # Unmeasured deployments sort first (0), so every deployment gets sampled.
        return sorted(deployments, key=lambda d: (stats.latency(d.id) or 0.0, d.priority, rng.random()))
    if strategy == "cost":
        return sorted(deployments, key=lambda d: (_cost(cost_of, d), d.priority))
    return sorted(deployments, key=lambda d: d.priority)


def weighted(deployments: Sequence[Deployment], rng: random.Random) -> list[Deployment]:
    """A weighted random permutation (Efraimidis-Spirakis): the first pick follows the weights exactly."""

    def key(d: Deployment) -> float:
        if d.weight <= 0:
            return -math.inf
        return math.log(rng.random() or 1e-300) / d.weight

    return sorted(deployments, key=key, reverse=True)


def _cost(cost_of: CostOf | None, deployment: Deployment) -> float:
    price = cost_of(deployment.model) if cost_of is not None else None
    return math.inf if price is None else price


_RNG = random.Random()
