"""Request-dependent routing: conditional routes on request fields, and sticky percentage rollouts."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelyard.config import RolloutSettings, RouteSettings

BUCKETS = 10_000


@dataclass(frozen=True)
class RouteContext:
    """What routes and rollouts may look at: the caller, the end user, tags and metadata."""

    user: str | None = None
    key: str | None = None
    request_id: str = ""
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def fields(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "user": self.user,
            "key": self.key,
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
        }


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """``metadata.team`` -> data["metadata"]["team"]; None when any step is missing."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _matches(actual: Any, expected: Any) -> bool:
    """Equality; a list of expected values means any of them; a list actual (tags) must contain it."""
    options = expected if isinstance(expected, list) else [expected]
    if isinstance(actual, list):
        return any(o in actual for o in options)
    return any(actual == o or (actual is not None and str(actual) == str(o)) for o in options)


def conditional_route(routes: Sequence[RouteSettings], model: str, context: RouteContext) -> str | None:
    """The first route whose model patterns and every ``when`` condition match, else None."""
    data: dict[str, Any] | None = None
    for route in routes:
        if not any(fnmatch.fnmatchcase(model, p) for p in route.match):
            continue
        data = data if data is not None else context.fields(model)
        if all(_matches(lookup(data, path), want) for path, want in route.when.items()):
            return route.model
    return None


def bucket(name: str, identity: str) -> float:
    """A stable position in [0, 100) for ``identity`` under rollout ``name`` (same on every replica)."""
    digest = hashlib.sha256(f"{name}\0{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS * 100 / BUCKETS


def sticky_identity(rollout: RolloutSettings, context: RouteContext) -> str:
    """The value a rollout sticks to: the end user, else the key, else this one request."""
    if rollout.sticky == "user" and context.user:
        return f"user:{context.user}"
    if rollout.sticky in ("user", "key") and context.key:
        return f"key:{context.key}"
    return f"request:{context.request_id}"


def rollout_target(name: str, rollout: RolloutSettings, percent: float, context: RouteContext) -> str | None:
    """``rollout.model`` when this caller falls inside the first ``percent`` of buckets, else None."""
    if percent <= 0:
        return None
    if percent >= 100 or bucket(name, sticky_identity(rollout, context)) < percent:
        return rollout.model
    return None
