"""The attempt chain for one deployment: overall deadline -> retries with backoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from modelyard import errors
from modelyard.retry import backoff, should_retry

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    max_retry_after: float = 60.0


class Deadline:
    """One overall deadline for a logical request, retries and fallbacks included."""

    def __init__(self, seconds: float, started: float | None = None) -> None:
        self.seconds = seconds
        self.at = (time.monotonic() if started is None else started) + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired_error(self, provider: str | None = None, model: str | None = None) -> errors.TimeoutError:
        return errors.TimeoutError(
            f"request deadline of {self.seconds:g}s exceeded", provider=provider, model=model, should_retry=False
        )


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    deadline: Deadline,
    on_failure: Callable[[errors.ModelyardError], None] | None = None,
    keep_trying: Callable[[errors.ModelyardError], bool] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, the retry policy says stop, or the deadline passes.

    ``keep_trying(error)`` returning False raises at once instead of retrying here (e.g. because another
    deployment of the same group can take the request without waiting for a backoff).
    """
    retries = 0
    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise deadline.expired_error()
        try:
            async with asyncio.timeout(remaining):
                return await attempt()
        except TimeoutError as exc:  # asyncio.timeout fired: the overall deadline, not an upstream timeout
            error: errors.ModelyardError = deadline.expired_error()
            if on_failure is not None:
                on_failure(error)
            raise error from exc
        except errors.ModelyardError as exc:
            if on_failure is not None:
                on_failure(exc)
            if not should_retry(exc, retries, policy.max_retries, policy.max_retry_after):
                raise
            if keep_trying is not None and not keep_trying(exc):
                raise
            wait = backoff(retries, exc.retry_after, policy.max_retry_after)
            if wait >= deadline.remaining():
                raise
            await asyncio.sleep(wait)
            retries += 1
