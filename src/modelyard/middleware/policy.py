"""Which rate limits and budgets apply to a call: from settings, and from the caller's virtual key.

A key's own fields win over settings (``rpm``, ``tpm``, ``budget``; ``max_parallel``, ``rps``, ``burst`` and
``budget_period`` from its metadata). Settings match a key by id, by name, or ``*``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from modelyard.config import BudgetSettings, LimitsSettings, RateLimitSettings
from modelyard.pipeline import Call
from modelyard.storage.base import LogQuery, VirtualKey
from modelyard.storage.counters import Bucket, BudgetLine, Slot

KeyLookup = Callable[[str], Awaitable[VirtualKey | None]]
_KEY_METADATA = ("max_parallel", "rps", "burst")
_PERIODS = ("daily", "monthly", "total")


def _positive(value: Any, whole: bool = False) -> bool:
    """A usable limit from a key's free-form metadata (anything else is ignored, never a 500)."""
    kinds = int if whole else int | float
    return isinstance(value, kinds) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class LimitScope:
    """One limited thing (a key, a model pattern, a deployment) and its limits."""

    name: str
    rule: RateLimitSettings

    def request_buckets(self) -> list[Bucket]:
        rule, out = self.rule, []
        if rule.rps:
            out.append(Bucket(f"{self.name}:rps", rule.burst or rule.rps, rule.rps))
        if rule.rpm:
            out.append(Bucket(f"{self.name}:rpm", rule.burst or rule.rpm, rule.rpm / 60))
        return out

    def token_buckets(self, tokens: float) -> list[Bucket]:
        if not self.rule.tpm:
            return []
        tpm = self.rule.tpm
        return [Bucket(f"{self.name}:tpm", tpm, tpm / 60, min(tokens, tpm))]

    def slot(self) -> Slot | None:
        return Slot(f"{self.name}:inflight", self.rule.max_parallel) if self.rule.max_parallel else None

    def describe(self, bucket: Bucket) -> str:
        rule, what = self.rule, bucket.key.rpartition(":")[2]
        if what == "rps":
            amount = f"{rule.rps:g} requests per second"
        elif what == "rpm":
            amount = f"{rule.rpm} requests per minute"
        else:
            amount = f"{rule.tpm} tokens per minute"
        return f"{self.name} is over its limit of {amount}"


@dataclass(frozen=True)
class BudgetCheck:
    line: BudgetLine
    label: str
    period: str
    logged: LoggedRows | None = None  # the request-log rows whose cost counts against it, this period


@dataclass(frozen=True)
class LoggedRows:
    """A caller's or a tag's request-log rows since a time (a plain dataclass: made for every budgeted call)."""

    caller: str | None = None
    tag: str | None = None
    since: datetime | None = None

    def query(self) -> LogQuery:
        return LogQuery(caller=self.caller, tag=self.tag, since=self.since)


class LimitPolicy:
    """Builds the scopes and budget lines of a call (reading the caller's key through ``lookup``)."""

    def __init__(self, settings: LimitsSettings, lookup: KeyLookup | None = None) -> None:
        self.settings = settings
        self.lookup = lookup

    def may_limit(self, call: Call) -> bool:
        """False when no rate-limit rule can apply to ``call`` (decided without any lookup)."""
        return call.options.caller.startswith("vk_") or bool(self.settings.keys) or bool(self.settings.models)

    def may_budget(self, call: Call) -> bool:
        """False when no budget can apply to ``call`` (decided without any lookup)."""
        caller = call.options.caller
        tagged = bool(self.settings.tag_budgets) and bool(call.options.tags)
        return caller.startswith("vk_") or bool(self.settings.key_budgets) or tagged

    async def key(self, call: Call) -> VirtualKey | None:
        caller = call.options.caller
        if self.lookup is None or not caller.startswith("vk_"):
            return None
        return await self.lookup(caller)

    def scopes(self, call: Call, key: VirtualKey | None) -> list[LimitScope]:
        scopes = []
        rule = self._key_rule(call.options.caller, key)
        if rule is not None:
            scopes.append(LimitScope(f"key:{call.options.caller}", rule))
        for pattern, model_rule in self.settings.models.items():
            if fnmatch.fnmatchcase(call.request.model, pattern):
                scopes.append(LimitScope(f"model:{pattern}", model_rule))
        return scopes

    def _key_rule(self, caller: str, key: VirtualKey | None) -> RateLimitSettings | None:
        merged: dict[str, Any] = {}
        for name in ("*", key.name if key is not None else None, caller):
            if name is not None and name in self.settings.keys:
                merged.update(self.settings.keys[name].model_dump(exclude_none=True))
        if key is not None:
            merged.update({k: v for k, v in (("rpm", key.rpm), ("tpm", key.tpm)) if v})
            merged.update({k: v for k in _KEY_METADATA if _positive(v := key.metadata.get(k), k == "max_parallel")})
        return RateLimitSettings.model_validate(merged) if any(v for v in merged.values()) else None

    def budgets(self, call: Call, key: VirtualKey | None, now: datetime | None = None) -> list[BudgetCheck]:
        now = now or datetime.now(UTC)
        caller = call.options.caller
        checks: dict[str, BudgetCheck] = {}
        if key is not None and key.budget is not None:
            period = str(key.metadata.get("budget_period") or "total")
            period = period if period in _PERIODS else "total"
            own = BudgetSettings.model_validate({"amount": key.budget, "period": period})
            initial = key.spent if period == "total" else None  # the key's stored spend, else the log's
            self._add(checks, f"key {key.name!r}", f"key:{caller}", own, now, LoggedRows(caller=caller), initial)
        for name in ("*", key.name if key is not None else None, caller):
            if name is not None and name in self.settings.key_budgets:
                label = f"key {key.name!r}" if key is not None else f"caller {caller!r}"
                budget = self.settings.key_budgets[name]
                self._add(checks, label, f"key:{caller}", budget, now, LoggedRows(caller=caller))
        for tag in call.options.tags:
            tagged = self.settings.tag_budgets.get(tag) or self.settings.tag_budgets.get("*")
            if tagged is not None:
                self._add(checks, f"tag {tag!r}", f"tag:{tag}", tagged, now, LoggedRows(tag=tag))
        return list(checks.values())

    @staticmethod
    def _add(
        checks: dict[str, BudgetCheck],
        label: str,
        scope: str,
        budget: BudgetSettings,
        now: datetime,
        rows: LoggedRows,
        initial: float | None = None,
    ) -> None:
        stamp, ttl = period_window(budget.period, now)
        key = f"budget:{scope}:{budget.period}:{stamp}"
        line = BudgetLine(key, budget.amount, ttl, initial)
        logged = replace(rows, since=period_start(budget.period, now)) if initial is None else None
        if key not in checks or checks[key].line.limit > budget.amount:
            checks[key] = BudgetCheck(line, label, budget.period, logged)


def period_start(period: str, now: datetime) -> datetime | None:
    """When the period that ``now`` is in began (None for ``total``)."""
    if period == "daily":
        return datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period == "monthly":
        return datetime(now.year, now.month, 1, tzinfo=UTC)
    return None


def period_window(period: str, now: datetime) -> tuple[str, float | None]:
    """(period stamp, seconds to keep its counter): daily and monthly reset at 00:00 UTC."""
    if period == "daily":
        end = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        return now.strftime("%Y-%m-%d"), (end - now).total_seconds() + 86400
    if period == "monthly":
        end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
        return now.strftime("%Y-%m"), (end - now).total_seconds() + 86400
    return "total", None
