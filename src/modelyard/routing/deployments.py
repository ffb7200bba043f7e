"""Deployments: the concrete places a model name can be served from, built from ``model_groups`` settings.

A plain ``provider/model`` name is an implicit group with one deployment whose id is the model itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelyard.config import DeploymentSettings, ModelGroupSettings, ModelRule, Strategy
from modelyard.errors import ConfigError


@dataclass(frozen=True)
class Deployment:
    """One upstream: ``model`` is ``provider/upstream-model``; ``id`` names it in health, limits and logs."""

    id: str
    model: str
    group: str
    weight: float = 1.0
    priority: int = 0
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    rules: tuple[ModelRule, ...] = ()
    settings: DeploymentSettings | None = field(default=None, compare=False)

    @property
    def provider(self) -> str:
        return self.model.partition("/")[0]

    @property
    def upstream(self) -> str:
        return self.model.partition("/")[2]

    @property
    def has_own_endpoint(self) -> bool:
        """True when it overrides the provider row's URL, key or headers (it gets its own adapter instance)."""
        s = self.settings
        return s is not None and bool(s.base_url or s.api_key or s.api_key_env or s.headers)

    @property
    def limited(self) -> bool:
        return bool(self.rpm or self.tpm or self.max_parallel)


@dataclass(frozen=True)
class Group:
    """A model name and its deployments, picked in ``strategy`` order."""

    name: str
    strategy: Strategy
    deployments: tuple[Deployment, ...]


def single(model: str, group: str | None = None) -> Group:
    """The implicit group of a plain ``provider/model`` name."""
    return Group(group or model, "priority", (Deployment(id=model, model=model, group=group or model),))


def build_groups(groups: Mapping[str, ModelGroupSettings]) -> dict[str, Group]:
    """Groups from settings, with every deployment id unique across all groups."""
    built: dict[str, Group] = {}
    seen: dict[str, DeploymentSettings] = {}
    for name, group in groups.items():
        deployments = []
        for index, row in enumerate(group.deployments):
            if "/" not in row.model:
                raise ConfigError(f"model_groups.{name}.deployments[{index}].model must be 'provider/model'")
            ident = row.id or _default_id(row, seen)
            if ident in seen and seen[ident] is not row and row.id:
                raise ConfigError(f"deployment id {ident!r} is used twice in model_groups")
            seen[ident] = row
            deployments.append(
                Deployment(
                    id=ident,
                    model=row.model,
                    group=name,
                    weight=row.weight,
                    priority=row.priority,
                    rpm=row.rpm,
                    tpm=row.tpm,
                    max_parallel=row.max_parallel,
                    rules=tuple(row.rules),
                    settings=row,
                )
            )
        built[name] = Group(name, group.strategy, tuple(deployments))
    return built


def _default_id(row: DeploymentSettings, seen: Mapping[str, DeploymentSettings]) -> str:
    """The model name, numbered (``model#2``) when another deployment already took it."""
    if row.model not in seen:
        return row.model
    number = 2
    while f"{row.model}#{number}" in seen:
        number += 1
    return f"{row.model}#{number}"
