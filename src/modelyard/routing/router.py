"""Model name or alias -> the ordered list of candidate models to try."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modelyard.errors import BadRequestError

MAX_ALIAS_DEPTH = 8


class Router:
    """Resolves aliases and builds the candidate list: the model, then its fallbacks (deduplicated)."""

    def __init__(
        self,
        aliases: Mapping[str, str],
        fallbacks: Mapping[str, Sequence[str]],
        default_fallbacks: Sequence[str] = (),
    ) -> None:
        self.aliases = dict(aliases)
        self.fallbacks = {k: list(v) for k, v in fallbacks.items()}
        self.default_fallbacks = list(default_fallbacks)

    def resolve(self, model: str) -> str:
        """Follow aliases to a ``provider/model`` name."""
        seen: list[str] = []
        while model in self.aliases:
            if model in seen or len(seen) >= MAX_ALIAS_DEPTH:
                raise BadRequestError(f"alias loop: {' -> '.join([*seen, model])}", param="model")
            seen.append(model)
            model = self.aliases[model]
        return model

    def candidates(self, model: str, fallbacks: Sequence[str] | None = None) -> list[str]:
        """The requested model followed by its fallbacks (per call, else per model, else the default)."""
        if fallbacks is None:
            fallbacks = self.fallbacks.get(model)
            if fallbacks is None:
                fallbacks = self.fallbacks.get(self.resolve(model), self.default_fallbacks)
        ordered: list[str] = []
        for name in [model, *fallbacks]:
            resolved = self.resolve(name)
            if resolved not in ordered:
                ordered.append(resolved)
        return ordered
