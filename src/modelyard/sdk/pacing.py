"""Client-side pacing: on a rate limit that says when to come back, wait and try again instead of failing.

Opt-in (``AsyncClient(pace_on_rate_limit=True)``). A call is paced only when all of these hold:

- the error is a ``RateLimitError`` (HTTP 429; a spent budget is not: it does not refill in seconds);
- it says how long to wait (``Retry-After`` / ``retry-after-ms`` from a server, ``retry_after`` in-process);
- the server did not answer ``x-should-retry: false`` and, in-process, the gateway has not already retried
  upstream (the same rule by which a server decides that header);
- the wait ends before the call's deadline: its ``timeout``, else the client's default timeout. The deadline
  covers the waits and every attempt, so a paced call never takes longer than an unpaced one may.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from modelyard import errors
from modelyard.pipeline import CallOptions

T = TypeVar("T")


def pacing_wait(error: BaseException) -> float | None:
    """Seconds to wait before trying again after ``error``, or ``None`` when pacing cannot help."""
    if not isinstance(error, errors.RateLimitError):
        return None
    if error.should_retry is False or error.upstream_attempts > 0:
        return None
    if error.retry_after is None or error.retry_after < 0:
        return None
    return error.retry_after


async def paced(attempt: Callable[[CallOptions], Awaitable[T]], options: CallOptions, default_timeout: float) -> T:
    """Run ``attempt``; on a rate limit with a usable wait that fits before the deadline, sleep and run it again.

    A retried attempt gets what is left of the caller's ``timeout`` (when the caller gave one).
    """
    deadline = time.monotonic() + (options.timeout or default_timeout)
    while True:
        try:
            return await attempt(options)
        except errors.RateLimitError as exc:
            wait = pacing_wait(exc)
            if wait is None or time.monotonic() + wait >= deadline:
                raise
        await asyncio.sleep(wait)
        if options.timeout is not None:
            options = dataclasses.replace(options, timeout=max(deadline - time.monotonic(), 0.001))
