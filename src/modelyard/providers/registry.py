"""Find providers: preset rows (data) + settings rows, adapters by ``kind`` (built-ins and entry points).

No branching on provider names: a row names its ``kind``; a kind names a factory ``module:attribute``.
Third-party adapters register a kind through the ``modelyard.providers`` entry-point group.
"""

from __future__ import annotations

import importlib
import importlib.resources
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import yaml

from modelyard.config import ModelRule, Settings
from modelyard.errors import ConfigError, NotFoundError
from modelyard.providers.base import Provider, ProviderContext, ProviderSpec

ENTRY_POINT_GROUP = "modelyard.providers"

BUILTIN_KINDS: dict[str, str] = {
    "openai_compat": "modelyard.providers.openai_compat:OpenAICompatProvider",
    "anthropic": "modelyard.providers.anthropic:AnthropicProvider",
    "gemini": "modelyard.providers.gemini:GeminiProvider",
    "local": "modelyard.providers.local:LocalProvider",
    "fake": "modelyard.providers.fake:FakeProvider",
}

ProviderFactory = Callable[[ProviderContext], Provider]


@cache
def preset_rows() -> dict[str, dict[str, Any]]:
    """The bundled provider rows (read once, on first use)."""
    text = importlib.resources.files("modelyard.providers").joinpath("presets.yaml").read_text()
    rows: dict[str, dict[str, Any]] = yaml.safe_load(text)
    return rows


def _spec_from(name: str, row: dict[str, Any], settings: Settings) -> ProviderSpec:
    fmt = {"app_name": settings.app_name, "app_url": settings.app_url}
    return ProviderSpec(
        name=name,
        kind=row.get("kind") or "openai_compat",
        base_url=row.get("base_url"),
        api_key_env=row.get("api_key_env"),
        api_key=row.get("api_key"),
        requires_key=row.get("requires_key", True),
        headers={k: str(v).format(**fmt) for k, v in (row.get("headers") or {}).items()},
        capabilities=frozenset(row.get("capabilities") or ("chat", "stream", "tools")),
        rules=tuple(ModelRule.model_validate(r) for r in row.get("rules") or ()),
        models=tuple(row.get("models") or ()),
        options=dict(row.get("options") or {}),
    )


def provider_specs(settings: Settings) -> dict[str, ProviderSpec]:
    """Every known provider row: presets, overridden or extended by ``settings.providers``."""
    rows = {name: dict(row) for name, row in preset_rows().items()}
    for name, custom in settings.providers.items():
        override = custom.model_dump(exclude_unset=True)
        row = rows.setdefault(name, {"kind": "openai_compat"})
        if "rules" in override:
            override["rules"] = [r.model_dump() for r in custom.rules] + list(row.get("rules") or [])
        row.update(override)
        if custom.api_key is None and custom.base_url and "api_key_env" not in override and name not in preset_rows():
            row["requires_key"] = False
    return {name: _spec_from(name, row, settings) for name, row in rows.items()}


def _factory(kind: str) -> ProviderFactory:
    target = BUILTIN_KINDS.get(kind)
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == kind:
                factory: ProviderFactory = ep.load()
                return factory
        raise ConfigError(f"no provider adapter of kind {kind!r} (built-in or entry point {ENTRY_POINT_GROUP!r})")
    module, _, attr = target.partition(":")
    loaded: ProviderFactory = getattr(importlib.import_module(module), attr)
    return loaded


def build_provider(spec: ProviderSpec, context: ProviderContext) -> Provider:
    """Instantiate the adapter for a row (imports its module lazily)."""
    return _factory(spec.kind)(context)


def split_model(model: str, known: dict[str, ProviderSpec]) -> tuple[str, str]:
    """``provider/model`` -> (provider, upstream model); unknown providers raise ``NotFoundError``."""
    provider, sep, upstream = model.partition("/")
    if not sep or not upstream:
        raise NotFoundError(
            f"model {model!r} must be named 'provider/model' (e.g. openai/gpt-4o-mini) or be an alias",
            model=model,
            param="model",
        )
    if provider not in known:
        raise NotFoundError(
            f"unknown provider {provider!r} in model {model!r}; known: {', '.join(sorted(known))}",
            model=model,
            param="model",
        )
    return provider, upstream
