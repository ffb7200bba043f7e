"""Numbers for the Usage page: per day and per group (model, key, tag, provider).

Requests, tokens, spend, errors and latency percentiles come from the store's SQL summaries (every row).
Time to first token, fallback rate and tokens/s are not in those summaries, so they are computed here from the
newest ``SAMPLE_ROWS`` rows of the period (the page says when it sampled).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from modelyard.storage.base import LogQuery, RequestLog, SummaryRow
from modelyard.storage.sql import SQLStore

SAMPLE_ROWS = 5000
GroupKey = Literal["model", "caller", "tag", "provider"]
GROUP_KEYS: tuple[GroupKey, ...] = ("model", "caller", "tag", "provider")


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Sampled:
    """What only the sampled rows can tell, for one bucket."""

    ttft: list[float] = field(default_factory=list)
    speed: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    fallbacks: int = 0
    rows: int = 0

    def add(self, log: RequestLog) -> None:
        """Count one logged request."""
        self.rows += 1
        self.fallbacks += int(log.fallback_used)
        if log.ttft_ms is not None:
            self.ttft.append(log.ttft_ms)
        if log.tokens_per_second is not None:
            self.speed.append(log.tokens_per_second)
        if log.latency_ms is not None:
            self.latency.append(log.latency_ms)

    @property
    def ttft_p50(self) -> float | None:
        """Median time to first token (ms)."""
        return percentile(self.ttft, 0.5)

    @property
    def speed_p50(self) -> float | None:
        """Median tokens per second."""
        return percentile(self.speed, 0.5)

    @property
    def fallback_rate(self) -> float | None:
        """Share of requests a fallback model served."""
        return self.fallbacks / self.rows if self.rows else None


@dataclass
class Bucket:
    """One day or one group: the SQL summary plus the sampled extras."""

    key: str
    summary: SummaryRow
    sampled: Sampled = field(default_factory=Sampled)

    @property
    def error_rate(self) -> float | None:
        """Share of requests that failed."""
        return self.summary.errors / self.summary.requests if self.summary.requests else None

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.summary.prompt_tokens + self.summary.completion_tokens


@dataclass
class UsageReport:
    """Everything the Usage page shows for one period."""

    since: datetime
    days: list[Bucket]
    groups: list[Bucket]
    total: Bucket
    sampled_rows: int
    sample_limited: bool


def _group_keys(log: RequestLog, by: GroupKey) -> Iterable[str]:
    if by == "tag":
        return log.tags
    if by == "model":
        return [log.served_model or log.requested_model or "?"]
    value = log.caller if by == "caller" else log.provider
    return [value or "?"]


def _days(since: date, until: date) -> list[str]:
    return [(since + timedelta(days=i)).isoformat() for i in range((until - since).days + 1)]


def _total(days: Sequence[Bucket], sample: Sampled) -> Bucket:
    total = SummaryRow(key="total")
    for bucket in days:
        row = bucket.summary
        total.requests += row.requests
        total.prompt_tokens += row.prompt_tokens
        total.completion_tokens += row.completion_tokens
        total.cost += row.cost
        total.errors += row.errors
    total.p50_latency_ms = percentile(sample.latency, 0.5)
    total.p95_latency_ms = percentile(sample.latency, 0.95)
    return Bucket("total", total, sample)


async def usage_report(store: SQLStore, days: int, by: GroupKey, now: datetime | None = None) -> UsageReport:
    """Per-day series and per-group totals for the last ``days`` days (UTC, today included)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    per_day = {r.key: r for r in await store.logs.summary("day", since=since) if r.key}
    per_group = await store.logs.summary(by, since=since)
    page = await store.logs.query(LogQuery(since=since, limit=SAMPLE_ROWS))
    day_sample: dict[str, Sampled] = defaultdict(Sampled)
    group_sample: dict[str, Sampled] = defaultdict(Sampled)
    overall = Sampled()
    for log in page.items:
        overall.add(log)
        day_sample[log.created_at.astimezone(UTC).date().isoformat()].add(log)
        for key in _group_keys(log, by):
            group_sample[key].add(log)
    day_buckets = [Bucket(d, per_day.get(d) or SummaryRow(key=d), day_sample[d]) for d in _days(first, today)]
    groups = [Bucket(r.key or "?", r, group_sample[r.key or "?"]) for r in per_group]
    return UsageReport(
        since=since,
        days=day_buckets,
        groups=groups,
        total=_total(day_buckets, overall),
        sampled_rows=len(page.items),
        sample_limited=page.next_cursor is not None,
    )
