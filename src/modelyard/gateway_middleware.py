"""Load middleware named in settings: ``module:factory`` paths or ``modelyard.middleware`` entry points.

A factory is called with the settings and returns a middleware (see ``modelyard.pipeline.Middleware``).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from modelyard.config import Settings
from modelyard.errors import ConfigError
from modelyard.pipeline import Middleware, MiddlewareFactory

ENTRY_POINT_GROUP = "modelyard.middleware"


def _factory(name: str) -> MiddlewareFactory:
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            loaded: MiddlewareFactory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load middleware {name!r}: {exc}") from exc
        return loaded
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            found: MiddlewareFactory = ep.load()
            return found
    raise ConfigError(f"no middleware {name!r}: use 'module:factory' or a {ENTRY_POINT_GROUP!r} entry point")


def load_middleware(settings: Settings) -> list[Middleware]:
    """Instantiate the user's middleware in the configured order."""
    return [_factory(name)(settings) for name in settings.middleware]
