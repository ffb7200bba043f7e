"""Strategies, groups, conditional routes and sticky rollouts (pure routing, no network)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from modelyard import errors
from modelyard.config import ModelGroupSettings, RolloutSettings, RouteSettings
from modelyard.errors import ConfigError
from modelyard.routing import router as router_module
from modelyard.routing.deployments import Deployment, build_groups
from modelyard.routing.health import HealthBoard
from modelyard.routing.rollout import RouteContext, bucket
from modelyard.routing.router import Router
from modelyard.routing.strategies import order

GROUPS = {
    "chat": ModelGroupSettings.model_validate(
        {
            "strategy": "weighted",
            "deployments": [
                {"id": "east", "model": "up/gpt-4o", "weight": 3, "priority": 1},
                {"id": "west", "model": "up/gpt-4o", "weight": 1, "priority": 0},
            ],
        }
    ),
    "cheap": ModelGroupSettings.model_validate(
        {"strategy": "cost", "deployments": [{"model": "up/big"}, {"model": "up/small"}, {"model": "up/free"}]}
    ),
}


class Stats:
    def __init__(self, in_flight: dict[str, int] | None = None, latency: dict[str, float] | None = None) -> None:
        self._in_flight = in_flight or {}
        self._latency = latency or {}

    def in_flight(self, deployment_id: str) -> int:
        return self._in_flight.get(deployment_id, 0)

    def latency(self, deployment_id: str) -> float | None:
        return self._latency.get(deployment_id)


def limited(seconds: float) -> errors.RateLimitError:
    return errors.RateLimitError("slow down", retry_after=seconds)


def deps(*ids: str) -> list[Deployment]:
    return [Deployment(id=i, model=f"up/{i}", group="g", priority=n) for n, i in enumerate(ids)]


def test_strategies_order() -> None:
    a, b, c = deps("a", "b", "c")
    rng = random.Random(1)
    assert order([c, b, a], "priority", Stats()) == [a, b, c]
    assert order([a, b, c], "least_busy", Stats({"a": 5, "b": 0, "c": 2}), rng=rng) == [b, c, a]
    assert order([a, b, c], "latency", Stats(latency={"a": 0.3, "b": 0.1, "c": 0.2}), rng=rng) == [b, c, a]
    assert order([a, b, c], "latency", Stats(latency={"a": 0.3, "b": 0.1}), rng=rng)[0] == c  # unmeasured: sampled
    prices = {"up/a": 10.0, "up/b": None, "up/c": 1.0}
    assert order([a, b, c], "cost", Stats(), cost_of=prices.get) == [c, a, b]


def test_weighted_random_follows_the_weights() -> None:
    router = Router({}, {}, groups=build_groups(GROUPS))
    firsts = Counter(router.plan("chat")[0].id for _ in range(4000))
    assert 0.70 < firsts["east"] / 4000 < 0.80  # weight 3 of 4
    assert {d.id for d in router.plan("chat")} == {"east", "west"}  # the other is the in-group fallback


def test_lowest_cost_first() -> None:
    prices = {"up/big": 30.0, "up/small": 1.0, "up/free": 0.0}
    router = Router({}, {}, groups=build_groups(GROUPS), cost_of=prices.get)
    assert [d.model for d in router.plan("cheap")] == ["up/free", "up/small", "up/big"]


def test_plan_leaves_out_unhealthy_deployments_then_follows_fallbacks() -> None:
    health = HealthBoard()
    router = Router({"fast": "chat"}, {"chat": ["up/backup"]}, groups=build_groups(GROUPS), health=health)
    health.failure("east", limited(10), ["east", "west"])
    assert [d.id for d in router.plan("fast")] == ["west", "up/backup"]
    assert router.resolve("fast") == "up/gpt-4o"  # a group resolves to its first deployment by priority
    assert router.candidates("fast") == ["up/gpt-4o", "up/backup"]


def test_a_group_with_nothing_available_is_tried_soonest_back_first() -> None:
    health = HealthBoard()
    router = Router({}, {}, groups=build_groups(GROUPS), health=health)
    health.failure("east", limited(5), ["east", "west", "x"])
    health.failure("west", limited(2), ["east", "west", "x"])
    assert [d.id for d in router.plan("chat")] == ["west", "east"]


def test_a_plain_models_group_is_kept_and_the_store_of_them_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "IMPLICIT_GROUPS_KEPT", 3)
    health = HealthBoard()
    router = Router({}, {"up/a": ["up/b"]}, health=health)
    first = router.group("up/a")
    assert router.group("up/a") is first  # not built anew for every call
    assert [d.id for d in router.plan("up/a")] == ["up/a", "up/b"]
    health.failure("up/a", limited(5), ["up/a"])
    assert [d.id for d in router.plan("up/a")] == ["up/a", "up/b"]  # a group of one is tried even when ejected
    for name in ("up/c", "up/d", "up/e"):
        router.group(name)
    again = router.group("up/a")  # names come from requests: a full store started over, so it was built anew
    assert again is not first and again == first


def test_plans_need_the_call_only_with_routes_or_rollouts() -> None:
    assert not Router({"fast": "up/a"}, {}, groups=build_groups(GROUPS)).needs_context
    assert Router({}, {}, routes=[RouteSettings(when={"user": "bob"}, model="up/vip")]).needs_context
    rollout = RolloutSettings(model="up/new", percent=10)
    assert Router({}, {}, rollouts={"up/old": rollout}).needs_context


def test_deployment_ids_are_unique() -> None:
    groups = build_groups(
        {"g": ModelGroupSettings.model_validate({"deployments": [{"model": "up/m"}, {"model": "up/m"}]})}
    )
    assert [d.id for d in groups["g"].deployments] == ["up/m", "up/m#2"]
    with pytest.raises(ConfigError):
        build_groups({"g": ModelGroupSettings.model_validate({"deployments": [{"model": "no-provider"}]})})


def test_conditional_routes_on_metadata_user_and_tags() -> None:
    routes = [
        RouteSettings(when={"metadata.team": "research"}, model="up/big"),
        RouteSettings(match=["chat"], when={"tags": ["batch", "offline"]}, model="cheap"),
        RouteSettings(when={"user": ["alice", "bob"]}, model="up/vip"),
    ]
    router = Router({}, {}, groups=build_groups(GROUPS), routes=routes)
    assert router.route("chat", RouteContext(metadata={"team": "research"})) == "up/big"
    assert router.route("chat", RouteContext(metadata={"team": "sales"})) == "chat"
    assert router.route("chat", RouteContext(tags=("offline",))) == "cheap"
    assert router.route("other", RouteContext(tags=("offline",))) == "other"  # match limits it to "chat"
    assert router.route("x", RouteContext(user="bob")) == "up/vip"


def test_rollout_is_sticky_per_user_and_close_to_its_percentage() -> None:
    flags: dict[str, float] = {}
    rollout = RolloutSettings(model="up/new", percent=10)
    router = Router({}, {}, rollouts={"chat": rollout}, rollout_percent=flags.get)
    users = [f"user-{i}" for i in range(5000)]
    first = {u: router.route("chat", RouteContext(user=u)) for u in users}
    share = sum(t == "up/new" for t in first.values()) / len(users)
    assert 0.08 < share < 0.12
    assert all(router.route("chat", RouteContext(user=u, request_id=str(i))) == first[u] for i, u in enumerate(users))
    flags["chat"] = 50  # switched at run time: the first 10 % stay on the new model, more join them
    second = {u: router.route("chat", RouteContext(user=u)) for u in users}
    assert all(second[u] == "up/new" for u in users if first[u] == "up/new")
    assert 0.45 < sum(t == "up/new" for t in second.values()) / len(users) < 0.55
    flags["chat"] = 0
    assert all(router.route("chat", RouteContext(user=u)) == "chat" for u in users[:100])


def test_rollout_sticks_to_the_key_without_a_user() -> None:
    rollout = RolloutSettings(model="up/new", percent=50, sticky="key")
    router = Router({}, {}, rollouts={"chat": rollout})
    seen = {router.route("chat", RouteContext(key="vk_1", request_id=str(i))) for i in range(50)}
    assert len(seen) == 1
    assert bucket("chat", "key:vk_1") == bucket("chat", "key:vk_1")
