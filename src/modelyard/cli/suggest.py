"""Close names for a model that does not exist: known model ids, aliases and provider names."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable


def close_names(name: str, model_ids: Iterable[str], providers: Iterable[str], limit: int = 3) -> list[str]:
    """Up to ``limit`` suggestions: similar model ids, or the model under a similarly named provider."""
    ids = sorted(set(model_ids))
    found = difflib.get_close_matches(name, ids, n=limit, cutoff=0.6)
    provider, sep, rest = name.partition("/")
    names = sorted(set(providers))
    if sep and provider not in names:
        found += [f"{p}/{rest}" for p in difflib.get_close_matches(provider, names, n=limit, cutoff=0.7)]
    elif not sep and name in names:  # a provider without a model: offer its models
        found += [i for i in ids if i.startswith(f"{name}/")]
    elif not sep:
        found += [f"{p}/{name}" for p in difflib.get_close_matches(name, names, n=1, cutoff=0.8)]
    return list(dict.fromkeys(found))[:limit]


async def _known() -> tuple[list[str], list[str]]:
    from modelyard.gateway import Gateway

    async with Gateway() as gateway:
        models = await gateway.models()
        return [m.id for m in models], list(gateway.specs)


def suggest_models(name: str) -> list[str]:
    """Suggestions for an unknown model (empty when settings cannot be read)."""
    try:
        ids, providers = asyncio.run(_known())
    except Exception:  # a suggestion is a nicety: never hide the real error behind a second one
        return []
    return close_names(name, ids, providers)
