"""Model name or alias -> the ordered list of deployments to try.

Steps: conditional routes (request fields) -> rollout (sticky percentage) -> aliases -> model group (strategy
order, unhealthy deployments left out) -> the same for each fallback name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from modelyard.config import RolloutSettings, RouteSettings
from modelyard.errors import BadRequestError
from modelyard.routing.deployments import Deployment, Group, single
from modelyard.routing.health import HealthBoard
from modelyard.routing.rollout import RouteContext, conditional_route, rollout_target
from modelyard.routing.strategies import CostOf, order

MAX_ALIAS_DEPTH = 8
#: Implicit one-deployment groups (plain ``provider/model`` names) kept, so a call does not build its model's anew.
#: Names come from requests, so the store is bounded: when full it starts over.
IMPLICIT_GROUPS_KEPT = 1024
#: The context of a plan when there are no conditional routes or rollouts (nothing then reads one).
_NO_CONTEXT = RouteContext()


class Router:
    """Resolves names and builds plans; holds no per-request state."""

    def __init__(
        self,
        aliases: Mapping[str, str],
        fallbacks: Mapping[str, Sequence[str]],
        default_fallbacks: Sequence[str] = (),
        *,
        groups: Mapping[str, Group] | None = None,
        routes: Sequence[RouteSettings] = (),
        rollouts: Mapping[str, RolloutSettings] | None = None,
        health: HealthBoard | None = None,
        cost_of: CostOf | None = None,
        rollout_percent: Callable[[str], float | None] | None = None,
    ) -> None:
        self.aliases = dict(aliases)
        self.fallbacks = {k: list(v) for k, v in fallbacks.items()}
        self.default_fallbacks = list(default_fallbacks)
        self.groups = dict(groups or {})
        self.routes = list(routes)
        self.rollouts = dict(rollouts or {})
        self.health = health
        self.cost_of = cost_of
        self.rollout_percent = rollout_percent
        self._implicit: dict[str, Group] = {}

    @property
    def needs_context(self) -> bool:
        """Whether plans depend on the call (conditional routes or rollouts exist); else ``plan`` needs no context."""
        return bool(self.routes or self.rollouts)

    def target(self, model: str) -> str:
        """Follow aliases to a model group name or a ``provider/model`` name."""
        seen: list[str] = []
        while model in self.aliases and model not in self.groups:
            if model in seen or len(seen) >= MAX_ALIAS_DEPTH:
                raise BadRequestError(f"alias loop: {' -> '.join([*seen, model])}", param="model")
            seen.append(model)
            model = self.aliases[model]
        return model

    def resolve(self, model: str) -> str:
        """Follow aliases to a ``provider/model`` name (a group's first deployment by priority)."""
        target = self.target(model)
        group = self.groups.get(target)
        if group is None:
            return target
        return min(group.deployments, key=lambda d: d.priority).model

    def group(self, name: str) -> Group:
        """The group a name (alias, group or model) stands for; a plain model is a group of one."""
        target = self.target(name)
        group = self.groups.get(target) or self._implicit.get(target)
        if group is None:
            if len(self._implicit) >= IMPLICIT_GROUPS_KEPT:
                self._implicit.clear()
            group = self._implicit[target] = single(target)
        return group

    def peers(self, deployment: Deployment) -> list[str]:
        """Ids of every deployment in ``deployment``'s group (itself included)."""
        group = self.groups.get(deployment.group)
        return [d.id for d in group.deployments] if group is not None else [deployment.id]

    def candidates(self, model: str, fallbacks: Sequence[str] | None = None) -> list[str]:
        """The requested model followed by its fallbacks (per call, else per model, else the default)."""
        ordered: list[str] = []
        for name in [model, *self._fallbacks_for(model, model, fallbacks)]:
            resolved = self.resolve(name)
            if resolved not in ordered:
                ordered.append(resolved)
        return ordered

    def route(self, model: str, context: RouteContext) -> str:
        """Apply conditional routes, then a rollout, to the requested name."""
        routed = conditional_route(self.routes, model, context) or model
        rollout = self.rollouts.get(routed)
        if rollout is not None:
            override = self.rollout_percent(routed) if self.rollout_percent is not None else None
            percent = rollout.percent if override is None else override
            routed = rollout_target(routed, rollout, percent, context) or routed
        return routed

    def plan(
        self, model: str, fallbacks: Sequence[str] | None = None, context: RouteContext | None = None
    ) -> list[Deployment]:
        """Every deployment to try, in order: the routed group's, then each fallback group's (no repeats)."""
        routed = self.route(model, context or _NO_CONTEXT)
        plan: list[Deployment] = []
        seen: set[str] = set()
        for name in [routed, *self._fallbacks_for(model, routed, fallbacks)]:
            for deployment in self.ordered(self.group(name)):
                if deployment.id not in seen:
                    seen.add(deployment.id)
                    plan.append(deployment)
        return plan

    def ordered(self, group: Group) -> list[Deployment]:
        """A group's deployments in strategy order, without ejected or cooling ones.

        When none is available the whole group is returned, soonest-back first (Envoy's panic mode).
        """
        health = self.health
        if health is None:
            return order(group.deployments, group.strategy, _NoStats(), self.cost_of)
        ordered = order(group.deployments, group.strategy, health, self.cost_of)
        up = [d for d in ordered if health.available(d.id)]
        return up or sorted(ordered, key=lambda d: health.available_in(d.id))

    def _fallbacks_for(self, requested: str, routed: str, fallbacks: Sequence[str] | None) -> list[str]:
        if fallbacks is not None:
            return list(fallbacks)
        for name in (requested, routed, self.target(routed), self.resolve(routed)):
            if name in self.fallbacks:
                return self.fallbacks[name]
        return self.default_fallbacks


class _NoStats:
    def in_flight(self, deployment_id: str) -> int:
        return 0

    def latency(self, deployment_id: str) -> float | None:
        return None
