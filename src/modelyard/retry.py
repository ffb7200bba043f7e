"""Retry policy as pure functions: the official OpenAI SDK's policy, in one place.

- retried: 408, 409, 429, every 5xx, connection errors and timeouts (``ModelyardError.is_retryable``);
- ``x-should-retry: true|false`` from the upstream overrides the status both ways;
- wait: ``retry-after-ms``, then ``Retry-After`` as seconds or an HTTP date, honoured when ``0 < wait <= cap``;
  above the cap there is no retry at all; otherwise ``min(0.5 * 2**n, 8) * (1 - 0.25 * random())``;
- never after the first streamed byte (the caller enforces that by where it puts the retry loop).
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

from modelyard.errors import ModelyardError

INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
DEFAULT_MAX_RETRY_AFTER = 60.0


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, or None when it gave no usable answer."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
            if math.isfinite(value):
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) else None
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return email.utils.mktime_tz(parsed) - (time.time() if now is None else now)


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    value = headers.get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def should_retry(
    error: BaseException, retries_taken: int, max_retries: int, max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
) -> bool:
    """Whether to make another attempt after ``error``."""
    if retries_taken >= max_retries or not isinstance(error, ModelyardError):
        return False
    if error.retry_after is not None and error.retry_after > max_retry_after:
        return False
    return error.is_retryable


def backoff(
    retries_taken: int,
    retry_after: float | None = None,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    rand: float | None = None,
) -> float:
    """Seconds to wait before retry number ``retries_taken + 1``."""
    if retry_after is not None and 0 < retry_after <= max_retry_after:
        return retry_after
    jitter = 1 - 0.25 * (random.random() if rand is None else rand)
    delay: float = min(INITIAL_RETRY_DELAY * 2.0**retries_taken, MAX_RETRY_DELAY)
    return delay * jitter
