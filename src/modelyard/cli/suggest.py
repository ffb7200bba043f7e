"""Close names for a model that does not exist: known model ids, aliases and provider names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from modelyard.cli.session import Connection, new_client
from modelyard.errors import AuthenticationError, PermissionDeniedError


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


def _known(connection: Connection) -> tuple[list[str], list[str]]:
    """Model ids and provider names of the gateway the command used (a server's with ``--server``)."""
    with new_client(connection) as client:
        ids = [m.id for m in client.models()]
        try:
            providers = client.admin.info().providers
        except (AuthenticationError, PermissionDeniedError):  # a key without admin rights: what the models say
            providers = sorted({i.partition("/")[0] for i in ids})
    return ids, providers


def suggest_models(name: str, connection: Connection | None = None) -> list[str]:
    """Suggestions for an unknown model (empty when settings cannot be read or the server cannot tell)."""
    try:
        ids, providers = _known(connection or Connection())
    except Exception:  # a suggestion is a nicety: never hide the real error behind a second one
        return []
    return close_names(name, ids, providers)
