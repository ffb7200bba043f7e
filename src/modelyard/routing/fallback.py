"""Which candidate to try next after a failure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from modelyard.errors import ContextWindowExceededError, ModelyardError

C = TypeVar("C")


def next_candidate(
    error: ModelyardError,
    failed: C,
    remaining: Sequence[C],
    context_window: Callable[[C], int | None],
) -> C | None:
    """The next model to fall back to, or None when this error must be raised.

    Falls back on rate limits, 5xx, timeouts, connection errors, context-window and content-policy errors
    (``error.fallback``). After a context-window error only a model with a larger (or unknown) window is taken.
    """
    if not error.fallback:
        return None
    if isinstance(error, ContextWindowExceededError):
        limit = context_window(failed)
        for candidate in remaining:
            window = context_window(candidate)
            if limit is None or window is None or window > limit:
                return candidate
        return None
    return remaining[0] if remaining else None
