"""Prices and context windows as data: the bundled ``prices.yaml``, overridable from settings, never fetched.

The table is read from the package on first use and kept in memory, so lookups on the request path never
touch the disk after that (call :meth:`PriceCatalog.load` at startup to read it early).

Cost follows the OpenAI usage format, where ``prompt_tokens`` already **includes** cached tokens and cache
writes, and ``completion_tokens`` already includes reasoning tokens. So the uncached input is
``prompt_tokens - cached_tokens - cache_creation_tokens``; each part is billed at its own price, and
reasoning tokens are billed as output unless the model has a separate reasoning price.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.errors import ConfigError
from modelyard.types import ModelInfo, ModelPrice, Usage

PER_TOKENS = 1_000_000
"""Prices are USD per this many tokens."""

CostSource = Literal["computed", "billed", "none"]

# A dated or versioned snapshot suffix: -2024-08-06, -20250929, -0905, -001, -09-2025, @20250929, -latest.
_SNAPSHOT = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4}|\d{2}-\d{4}|latest)$")
_RESOLVED_CACHE_MAX = 10_000


class PriceTier(BaseModel):
    """USD per 1M tokens for each kind of token (None: billed at the input or output price)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    reasoning: float | None = Field(default=None, ge=0)


class LongContextTier(PriceTier):
    """Prices for a whole request whose prompt exceeds ``threshold`` tokens."""

    threshold: int = Field(ge=1)


class PriceEntry(PriceTier):
    """One row of the price table: prices, the long-context tier and the model's limits."""

    context_window: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    long_context: LongContextTier | None = None

    def tier_for(self, prompt_tokens: int) -> PriceTier:
        """The prices that apply to a request with this many prompt tokens (cached ones included)."""
        tier = self.long_context
        return tier if tier is not None and prompt_tokens > tier.threshold else self

    def to_price(self) -> ModelPrice:
        """The public ``ModelPrice`` (the long-context tier, if any, rides along as an extra field)."""
        data = self.model_dump(include={"input", "output", "cached_input", "cache_write", "reasoning"})
        if self.long_context is not None:
            data["long_context"] = self.long_context.model_dump(exclude_none=True)
        return ModelPrice(**data)


FREE = PriceEntry()
"""The entry of every model of a free (local) provider."""


@dataclass(frozen=True, slots=True)
class Cost:
    """What a call cost in USD, by kind of token, and where the total came from.

    ``source`` is "computed" (from the price table), "billed" (the provider reported the charge; the
    breakdown and ``computed`` still hold modelyard's own figures) or "none" (unknown model: ``known`` is
    False and every amount is 0).
    """

    total: float = 0.0
    input: float = 0.0
    output: float = 0.0
    cached_input: float = 0.0
    cache_write: float = 0.0
    reasoning: float = 0.0
    source: CostSource = "none"
    known: bool = False
    computed: float | None = None
    billed: float | None = None


UNKNOWN = Cost()
#: What any call to a model of a free provider costs: exactly what ``compute_cost`` gives at ``FREE``'s zero prices.
NO_CHARGE = Cost(source="computed", known=True, computed=0.0)


def _per_token(tokens: int, price: float) -> float:
    return tokens * price / PER_TOKENS


def compute_cost(entry: PriceTier | PriceEntry, usage: Usage) -> Cost:
    """The computed cost of ``usage`` at ``entry``'s prices (see the module docstring for the rules)."""
    if entry is FREE:  # every call to a local model, priced for nothing (skips ~3 µs of arithmetic)
        return NO_CHARGE
    tier = entry.tier_for(usage.prompt_tokens) if isinstance(entry, PriceEntry) else entry
    details = usage.prompt_tokens_details
    cached = max(usage.cached_tokens, 0)
    written = max((details.cache_creation_tokens or 0) if details is not None else 0, 0)
    uncached = max(usage.prompt_tokens - cached - written, 0)
    completion = max(usage.completion_tokens, 0)
    reasoning_tokens = min(max(usage.reasoning_tokens, 0), completion)
    input_cost = _per_token(uncached, tier.input)
    cached_cost = _per_token(cached, tier.input if tier.cached_input is None else tier.cached_input)
    write_cost = _per_token(written, tier.input if tier.cache_write is None else tier.cache_write)
    if tier.reasoning is None:
        output_cost, reasoning_cost = _per_token(completion, tier.output), 0.0
    else:
        output_cost = _per_token(completion - reasoning_tokens, tier.output)
        reasoning_cost = _per_token(reasoning_tokens, tier.reasoning)
    total = input_cost + cached_cost + write_cost + output_cost + reasoning_cost
    return Cost(
        total=total,
        input=input_cost,
        output=output_cost,
        cached_input=cached_cost,
        cache_write=write_cost,
        reasoning=reasoning_cost,
        source="computed",
        known=True,
        computed=total,
    )


def combine(computed: Cost, billed: float | None) -> Cost:
    """The provider's billed charge when it reported one (source "billed", computed figures kept)."""
    if billed is None:
        return computed
    return replace(
        computed,
        total=billed,
        source="billed",
        known=True,
        computed=computed.total if computed.known else None,
        billed=billed,
    )


def billed_cost(usage: Usage | None) -> float | None:
    """The charge a provider reported in the usage block (OpenRouter's ``usage.cost``), if any."""
    extra = usage.model_extra if usage is not None else None
    value = extra.get("cost") if extra else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """The parsed table: version, rows by lower-cased ``provider/model`` and the provider rules."""

    version: str
    models: Mapping[str, PriceEntry]
    free_providers: frozenset[str]
    passthrough_providers: frozenset[str]
    provider_aliases: Mapping[str, str]


def parse_table(data: Mapping[str, Any]) -> PriceTable:
    """Build a table from the YAML's data; a malformed row raises ``ConfigError``."""
    rows = data.get("models") or {}
    if not isinstance(rows, Mapping):
        raise ConfigError("price table: 'models' must be a mapping of provider/model to prices")
    models = {str(key).lower(): _entry(str(key), row) for key, row in rows.items()}
    return PriceTable(
        version=str(data.get("version", "unversioned")),
        models=MappingProxyType(models),
        free_providers=frozenset(str(p).lower() for p in data.get("free_providers") or ()),
        passthrough_providers=frozenset(str(p).lower() for p in data.get("passthrough_providers") or ()),
        provider_aliases=MappingProxyType(
            {str(k).lower(): str(v).lower() for k, v in (data.get("provider_aliases") or {}).items()}
        ),
    )


def _entry(key: str, row: Any) -> PriceEntry:
    try:
        return PriceEntry.model_validate(row)
    except ValidationError as exc:
        raise ConfigError(f"price table: bad row for {key!r}: {exc}") from exc


@cache
def bundled_table() -> PriceTable:
    """The table shipped in the package (read once per process)."""
    text = resources.files("modelyard.pricing").joinpath("prices.yaml").read_text(encoding="utf-8")
    return parse_table(yaml.safe_load(text))


def _merge(table: PriceTable, overrides: Mapping[str, Mapping[str, Any]], free: frozenset[str]) -> PriceTable:
    models = dict(table.models)
    for key, fields in overrides.items():
        lowered = key.lower()
        base = models[lowered].model_dump(exclude_none=True) if lowered in models else {}
        models[lowered] = _entry(key, {**base, **fields})
    return replace(table, models=MappingProxyType(models), free_providers=table.free_providers | free)


def _snapshots(name: str) -> Iterator[str]:
    """``name``, then each shorter name left after stripping a dated suffix (and its ``-latest`` alias)."""
    yield name
    while match := _SNAPSHOT.search(name):
        name = name[: match.start()]
        yield name
        yield f"{name}-latest"


class PriceCatalog:
    """Prices, limits and costs by model name, from the bundled table plus settings overrides.

    ``overrides`` maps ``provider/model`` to fields of a row (``input``, ``output``, ``cached_input``,
    ``cache_write``, ``reasoning``, ``context_window``, ``max_output_tokens``, ``long_context``): a bundled row
    is updated field by field, an unknown name is added. ``free_providers`` adds providers whose models cost
    nothing (e.g. custom local servers) to the table's list.

    Names resolve by exact ``provider/model`` (case-insensitive), then the provider rules (free providers cost
    0; ``openrouter/openai/gpt-4o`` is priced as ``openai/gpt-4o``), then the longest dated-snapshot prefix
    (``openai/gpt-4o-2024-08-06`` -> ``openai/gpt-4o``). A bare model name matches when one provider has it.
    """

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        free_providers: Iterable[str] = (),
        table: PriceTable | None = None,
    ) -> None:
        self._overrides = {str(k): dict(v) for k, v in (overrides or {}).items()}
        for key, fields in self._overrides.items():
            _entry(key, fields)  # fail fast on a bad override, before anything is read
        self._free = frozenset(p.lower() for p in free_providers)
        self._base = table
        self._table: PriceTable | None = None
        self._by_name: dict[str, list[str]] = {}
        self._resolved: dict[str, tuple[str, PriceEntry] | None] = {}
        self._lock = threading.Lock()

    def load(self) -> PriceCatalog:
        """Read and merge the table now instead of at the first lookup; returns self."""
        self._data()
        return self

    def _data(self) -> PriceTable:
        table = self._table
        if table is not None:
            return table
        with self._lock:
            if self._table is None:
                merged = _merge(self._base or bundled_table(), self._overrides, self._free)
                by_name: dict[str, list[str]] = {}
                for key in merged.models:
                    by_name.setdefault(key.partition("/")[2], []).append(key)
                self._by_name = by_name
                self._table = merged
            return self._table

    @property
    def version(self) -> str:
        """The price table's version (its ``version:`` line)."""
        return self._data().version

    def models(self) -> list[str]:
        """Every ``provider/model`` the table prices, lower-cased and sorted."""
        return sorted(self._data().models)

    def match(self, model: str) -> str | None:
        """The table row a model name resolves to (its own name for free providers), or None."""
        found = self._lookup(model)
        return found[0] if found is not None else None

    def entry(self, model: str) -> PriceEntry | None:
        """The full price row of a model, or None when it is unknown."""
        found = self._lookup(model)
        return found[1] if found is not None else None

    def price(self, model: str) -> ModelPrice | None:
        """USD per 1M tokens for a model, or None when it is unknown."""
        found = self.entry(model)
        return found.to_price() if found is not None else None

    def context_window(self, model: str) -> int | None:
        """The model's context window in tokens, when known."""
        found = self.entry(model)
        return found.context_window if found is not None else None

    def max_output_tokens(self, model: str) -> int | None:
        """The most tokens the model can generate in one reply, when known."""
        found = self.entry(model)
        return found.max_output_tokens if found is not None else None

    def info(self, model: str) -> ModelInfo:
        """A ``/v1/models`` entry for the model, with its price and limits when known."""
        found = self.entry(model)
        provider = model.partition("/")[0] if "/" in model else ""
        return ModelInfo(
            id=model,
            owned_by=provider or "modelyard",
            provider=provider,
            context_window=found.context_window if found is not None else None,
            max_output_tokens=found.max_output_tokens if found is not None else None,
            price=found.to_price() if found is not None else None,
        )

    def cost(self, model: str, usage: Usage | None) -> Cost:
        """The computed cost of a call; an unknown model (or no usage) gives ``known=False`` and 0."""
        found = self.entry(model)
        if found is None or usage is None:
            return UNKNOWN
        return compute_cost(found, usage)

    def charge(self, model: str, usage: Usage | None) -> Cost:
        """The computed cost, replaced by the provider's billed charge when the usage block carries one."""
        return combine(self.cost(model, usage), billed_cost(usage))

    def _lookup(self, model: str) -> tuple[str, PriceEntry] | None:
        key = model.strip().lower()
        if key in self._resolved:
            return self._resolved[key]
        found = self._resolve(key, self._data())
        if len(self._resolved) >= _RESOLVED_CACHE_MAX:
            self._resolved.clear()
        self._resolved[key] = found
        return found

    def _resolve(self, key: str, table: PriceTable, *, nested: bool = False) -> tuple[str, PriceEntry] | None:
        provider, slash, rest = key.partition("/")
        if not slash:
            return self._bare(key, table)
        for name in _snapshots(key):
            if name in table.models:
                return name, table.models[name]
        if provider in table.free_providers:
            return key, FREE
        if provider in table.passthrough_providers and "/" in rest and not nested:
            return self._upstream(key, rest, table)
        return None

    def _upstream(self, key: str, rest: str, table: PriceTable) -> tuple[str, PriceEntry] | None:
        """A reseller's ``upstream/model[:variant]`` at the upstream's price (``:free`` variants cost 0)."""
        upstream, _, variant = rest.partition(":")
        if variant == "free":
            return key, FREE
        provider, _, model = upstream.partition("/")
        provider = table.provider_aliases.get(provider, provider)
        for name in dict.fromkeys((model, model.replace(".", "-"))):  # claude-sonnet-4.5 -> claude-sonnet-4-5
            found = self._resolve(f"{provider}/{name}", table, nested=True)
            if found is not None:
                return found
        return None

    def _bare(self, name: str, table: PriceTable) -> tuple[str, PriceEntry] | None:
        for candidate in _snapshots(name):
            keys = self._by_name.get(candidate, [])
            if len(keys) == 1:
                return keys[0], table.models[keys[0]]
        return None


__all__ = [
    "FREE",
    "PER_TOKENS",
    "UNKNOWN",
    "Cost",
    "CostSource",
    "LongContextTier",
    "PriceCatalog",
    "PriceEntry",
    "PriceTable",
    "PriceTier",
    "billed_cost",
    "bundled_table",
    "combine",
    "compute_cost",
    "parse_table",
]
