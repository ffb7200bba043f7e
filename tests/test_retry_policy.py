"""The retry policy's pure functions, against the official OpenAI SDK's own table."""

from __future__ import annotations

import email.utils

import pytest

from modelyard import errors
from modelyard.retry import backoff, parse_retry_after, parse_should_retry, should_retry


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("20", 20.0),
        ("0", 0.0),
        ("-10", -10.0),
        ("60", 60.0),
        ("1.5", 1.5),
        ("inf", None),
        ("nan", None),
        ("", None),
        ("garbage", None),
    ],
)
def test_parse_retry_after_seconds(header: str, expected: float | None) -> None:
    assert parse_retry_after({"retry-after": header}) == expected


def test_retry_after_ms_wins() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"retry-after": header}, now=now) == pytest.approx(7, abs=1)


def test_should_retry_header() -> None:
    assert parse_should_retry({"x-should-retry": "true"}) is True
    assert parse_should_retry({"x-should-retry": "false"}) is False
    assert parse_should_retry({}) is None


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (errors.RateLimitError("x"), True),
        (errors.ConflictError("x"), True),
        (errors.TimeoutError("x"), True),
        (errors.ConnectionError("x"), True),
        (errors.ProviderError("x", status=500), True),
        (errors.ServiceUnavailableError("x"), True),
        (errors.BadRequestError("x"), False),
        (errors.AuthenticationError("x"), False),
        (errors.NotFoundError("x"), False),
        (errors.BudgetExceededError("x"), False),
        (errors.StreamInterruptedError("x"), False),
        (errors.BadRequestError("x", should_retry=True), True),
        (errors.ProviderError("x", should_retry=False), False),
        (errors.RateLimitError("x", retry_after=61), False),
        (ValueError("not ours"), False),
    ],
)
def test_should_retry(error: BaseException, retry: bool) -> None:
    assert should_retry(error, 0, 2) is retry


def test_should_retry_stops_at_max() -> None:
    assert should_retry(errors.RateLimitError("x"), 2, 2) is False


@pytest.mark.parametrize(
    ("n", "low", "high"), [(0, 0.375, 0.5), (1, 0.75, 1.0), (2, 1.5, 2.0), (3, 3.0, 4.0), (6, 6, 8)]
)
def test_backoff_bounds(n: int, low: float, high: float) -> None:
    assert backoff(n, rand=0.0) == pytest.approx(high)
    assert backoff(n, rand=1.0) == pytest.approx(low)


def test_backoff_honours_retry_after_within_cap() -> None:
    assert backoff(0, retry_after=3) == 3
    assert backoff(0, retry_after=0, rand=0.0) == 0.5  # zero/negative -> normal backoff
    assert backoff(0, retry_after=100, max_retry_after=60, rand=0.0) == 0.5
