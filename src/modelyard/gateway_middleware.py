"""Composition helpers for ``gateway.py``: the built-in request chain and the state it shares, and user middleware.

User middleware is named in settings: ``module:factory`` paths or ``modelyard.middleware`` entry points. A
factory is called with the settings and returns a middleware (see ``modelyard.pipeline.Middleware``).
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

from modelyard import errors, tokens
from modelyard.config import Settings, data_dir
from modelyard.errors import ConfigError
from modelyard.middleware.accounting import CostMiddleware, Pricer
from modelyard.middleware.budgets import BudgetMiddleware, LoggedCost, LoggedSpend
from modelyard.middleware.cache import CacheMiddleware
from modelyard.middleware.limits import RateLimitMiddleware
from modelyard.middleware.policy import LimitPolicy
from modelyard.pipeline import Call, Middleware, MiddlewareFactory
from modelyard.pricing.catalog import PriceCatalog
from modelyard.providers.base import Provider, ProviderCall, ProviderSpec
from modelyard.routing.deployments import Deployment, build_groups
from modelyard.routing.health import HealthBoard
from modelyard.routing.rollout import RouteContext
from modelyard.routing.router import Router
from modelyard.storage.base import KeyStore, VirtualKey
from modelyard.storage.cache_store import CacheStore, MemoryCache, RedisCache, SQLiteCache
from modelyard.storage.counters import Counters, MemoryCounters
from modelyard.storage.flags import RolloutFlags
from modelyard.storage.shared import SharedRedis
from modelyard.storage.shared_counters import SharedCounters
from modelyard.streaming import chain_choice_streams, close_iterator, stream_from_response
from modelyard.types.chat import AttemptInfo, ChatChunk, ChatRequest
from modelyard.types.embeddings import EmbeddingRequest
from modelyard.types.usage import Usage

ENTRY_POINT_GROUP = "modelyard.middleware"
T = TypeVar("T")


def _factory(name: str) -> MiddlewareFactory:
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            loaded: MiddlewareFactory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load middleware {name!r}: {exc}") from exc
        return loaded
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            found: MiddlewareFactory = ep.load()
            return found
    raise ConfigError(f"no middleware {name!r}: use 'module:factory' or a {ENTRY_POINT_GROUP!r} entry point")


def load_middleware(settings: Settings) -> list[Middleware]:
    """Instantiate the user's middleware in the configured order."""
    return [_factory(name)(settings) for name in settings.middleware]


# ----- built-in request chain: shared state, limits, budgets, cache -------------------------------------------
@dataclass
class SharedState:
    """Where limits, budgets, cache and rollout flags live: this process, or Redis (``redis_url``)."""

    shared: SharedRedis | None
    counters: Counters
    flags: RolloutFlags
    cache: CacheStore | None

    def status(self) -> dict[str, Any]:
        return self.counters.status()

    async def aclose(self) -> None:
        if self.cache is not None:
            await self.cache.aclose()
        await self.counters.aclose()
        if self.shared is not None:
            await self.shared.aclose()


def build_router(
    settings: Settings, health: HealthBoard, flags: RolloutFlags, cost_of: Callable[[str], float | None]
) -> Router:
    """Aliases, fallbacks, model groups, conditional routes and rollouts, over the health board."""
    return Router(
        settings.aliases,
        settings.fallbacks,
        settings.default_fallbacks,
        groups=build_groups(settings.model_groups),
        routes=settings.routes,
        rollouts=settings.rollouts,
        health=health,
        cost_of=cost_of,
        rollout_percent=flags.percent,
    )


def unit_price(catalog: PriceCatalog, model: str) -> float | None:
    """Input + output USD per 1M tokens (what the lowest-cost strategy compares); None when unknown."""
    cost = catalog.charge(model, Usage.of(1_000_000, 1_000_000))
    return cost.total if cost.known else None


def open_shared_state(settings: Settings) -> SharedState:
    """Counters, flags and the cache store for these settings (no network until first use)."""
    shared = SharedRedis(settings.redis_url, settings.shared) if settings.redis_url else None
    lease = settings.limits.lease_seconds
    counters: Counters = SharedCounters(shared, lease) if shared is not None else MemoryCounters()
    return SharedState(shared, counters, RolloutFlags(shared), _cache_store(settings, shared))


def _cache_store(settings: Settings, shared: SharedRedis | None) -> CacheStore | None:
    cache = settings.cache
    if not cache.enabled:
        return None
    if cache.backend == "redis":
        if shared is None:
            raise ConfigError("cache.backend 'redis' needs redis_url")
        return RedisCache(shared)
    if cache.backend == "sqlite":
        return SQLiteCache(cache.path or data_dir() / "cache.db")
    return MemoryCache(cache.max_entries, cache.max_bytes)


class KeyCache:
    """Virtual keys by id for limit and budget policies, cached briefly (a database hiccup is not a 401)."""

    def __init__(self, keys: Callable[[], Awaitable[KeyStore]], ttl: float = 30.0) -> None:
        self._keys = keys
        self.ttl = ttl
        self._cache: dict[str, tuple[float, VirtualKey | None]] = {}

    async def __call__(self, key_id: str) -> VirtualKey | None:
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            key = await (await self._keys()).get(key_id)
        except Exception:
            if cached is not None:
                return cached[1]
            raise
        self._cache[key_id] = (time.monotonic() + self.ttl, key)
        return key


def estimate_tokens(call: Call, output_default: int) -> int:
    """Tokens a call will likely use: the prompt estimate plus its output cap (or ``output_default``)."""
    cached = call.state.get("token_estimate")
    if isinstance(cached, int):
        return cached
    request = call.request
    if isinstance(request, EmbeddingRequest):
        estimate = sum(len(text) // 4 + 1 for text in request.texts())
    else:
        prompt = tokens.estimate_request_tokens(request)
        estimate = prompt + (request.output_limit() or output_default) * (request.n or 1)
    call.state["token_estimate"] = estimate
    return estimate


def request_chain(
    settings: Settings,
    state: SharedState,
    keys: KeyCache,
    price: Pricer,
    router: Router,
    logged_cost: LoggedCost | None = None,
) -> list[Middleware]:
    """budget -> cost -> rate limit -> cache (DESIGN.md's order), around the router."""
    resolve = router.resolve
    policy = LimitPolicy(settings.limits, keys)
    output = settings.limits.output_estimate_tokens

    def cost_estimate(call: Call) -> float:
        total = estimate_tokens(call, output)
        prompt = total if isinstance(call.request, EmbeddingRequest) else tokens.estimate_request_tokens(call.request)
        try:
            priced = price(resolve(call.request.model), Usage.of(prompt, total - prompt))
        except errors.ModelyardError:
            return 0.0
        return priced.cost or 0.0

    chain: list[Middleware] = [
        BudgetMiddleware(
            state.counters, policy, cost_estimate, LoggedSpend(logged_cost) if logged_cost is not None else None
        ),
        CostMiddleware(price),
        RateLimitMiddleware(state.counters, policy, lambda call: estimate_tokens(call, output)),
    ]
    chain.append(
        CacheMiddleware(
            state.cache, settings.cache, price, lambda name: [d.model for d in router.group(name).deployments]
        )
    )
    return chain


# ----- helpers of the gateway's attempt chain -------------------------------------------------------------------
def route_context(call: Call) -> RouteContext:
    """What conditional routes and rollouts may look at in a call."""
    request = call.request
    metadata = {**(getattr(request, "metadata", None) or {}), **call.options.metadata}
    return RouteContext(
        user=getattr(request, "user", None),
        key=call.options.caller,
        request_id=call.request_id,
        tags=tuple(call.options.tags),
        metadata=metadata,
    )


def check_context(window: int | None, request: ChatRequest, model: str) -> None:
    """Fail before any network call when the prompt cannot fit the model's context window."""
    if window is None:
        return
    if _token_bound(request) < window:  # a short prompt never needs counting
        return
    needed = tokens.estimate_request_tokens(request.model_copy(update={"model": model}))
    if needed > window:
        raise errors.ContextWindowExceededError(
            f"this request needs about {needed} tokens but {model} has a {window}-token context window",
            model=model,
            param="messages",
        )


def _token_bound(request: ChatRequest) -> int:
    """An upper bound on the prompt's tokens, without serializing it: a token is at least one byte, a character
    at most four bytes; every message, tool and image part gets a generous fixed allowance on top."""
    chars, parts = 0, 0
    for m in request.messages:
        chars += len(m.text()) + len(m.reasoning_content or "")
        chars += sum(len(c.function.name) + len(c.function.arguments) for c in m.tool_calls or [])
        parts += sum(1 for p in m.content if p.type != "text") if isinstance(m.content, list) else 0
    tools = sum(len(t.model_dump_json()) for t in request.tools or [])
    return 4 * (chars + tools) + 16 * len(request.messages) + 1000 * parts


def rollout_percent(router: Router, state: SharedState, name: str) -> float:
    """A rollout's effective percentage: the run-time override, else the configured one."""
    override = state.flags.percent(name)
    return router.rollouts[name].percent if override is None else override


def routing_status(router: Router, health: HealthBoard, state: SharedState) -> dict[str, Any]:
    """Deployments (breaker state, in-flight, latency), groups, rollouts and where shared state lives."""
    rollouts = {
        name: {
            "model": rollout.model,
            "percent": rollout_percent(router, state, name),
            "configured_percent": rollout.percent,
            "sticky": rollout.sticky,
        }
        for name, rollout in router.rollouts.items()
    }
    groups = {
        name: {"strategy": group.strategy, "deployments": [d.id for d in group.deployments]}
        for name, group in router.groups.items()
    }
    return {"deployments": health.snapshot(), "groups": groups, "rollouts": rollouts, "shared_state": state.status()}


def upstream_headers(extra: dict[str, str]) -> dict[str, str]:
    """Per-call headers to send upstream: never modelyard's own controls (``x-modelyard-*``)."""
    return {k: v for k, v in extra.items() if not k.lower().startswith("x-modelyard-")}


def deployment_spec(base: ProviderSpec, deployment: Deployment) -> ProviderSpec:
    """A provider row with a deployment's own base URL, key and headers."""
    own = deployment.settings
    assert own is not None
    keyed = own.api_key or own.api_key_env
    return dataclasses.replace(
        base,
        base_url=own.base_url or base.base_url,
        api_key=own.api_key if keyed else base.api_key,
        api_key_env=own.api_key_env if keyed else base.api_key_env,
        headers={**base.headers, **own.headers},
    )


def recorded(
    call: Call,
    deployment: Deployment,
    health: HealthBoard,
    attempt: Callable[[], Awaitable[T]],
    on_start: Callable[[], None] | None = None,
) -> Callable[[], Awaitable[T]]:
    """Wrap one attempt so its outcome and latency are recorded on the call and the health board; ``on_start`` is
    told as each attempt begins."""
    model = deployment.model
    provider = model.partition("/")[0]
    extra = {"deployment": deployment.id} if deployment.id != model else {}

    async def run() -> T:
        started = time.monotonic()
        health.started(deployment.id)
        if on_start is not None:
            on_start()
        try:
            result = await attempt()
        except errors.ModelyardError as exc:
            latency_ms = round((time.monotonic() - started) * 1000, 2)
            error = type(exc).__name__
            call.attempts.append(
                AttemptInfo(
                    model=model, provider=provider, status=exc.status_code, error=error, latency_ms=latency_ms, **extra
                )
            )
            raise
        finally:
            health.finished(deployment.id)
        latency = time.monotonic() - started
        health.success(deployment.id, latency)
        call.attempts.append(
            AttemptInfo(model=model, provider=provider, status=200, latency_ms=round(latency * 1000, 2), **extra)
        )
        return result

    return run


async def open_stream(
    provider: Provider, call: ProviderCall, emulate: bool
) -> tuple[list[ChatChunk], AsyncIterator[list[ChatChunk]]]:
    """Start a stream and wait for its first chunks (everything up to here may be retried)."""
    batches: AsyncIterator[list[ChatChunk]]
    if emulate:
        batches = one_by_one(stream_from_response(await provider.chat(call)))
    else:
        native = getattr(provider, "stream_batches", None)
        batches = native(call) if native is not None else one_by_one(provider.stream(call))
    try:
        first = await batches.__anext__()
    except StopAsyncIteration:
        raise errors.StreamInterruptedError(
            "upstream stream ended before sending anything", provider=provider.name, model=call.request.model
        ) from None
    except BaseException:
        await close_iterator(batches)
        raise
    return first, batches


OpenedStream = tuple[list[ChatChunk], AsyncIterator[list[ChatChunk]]]


async def open_copies(open_one: Callable[[], Awaitable[OpenedStream]], copies: int) -> OpenedStream:
    """``n`` emulated for a stream: ``copies`` one-choice streams chained, choice ``i`` from stream ``i``.

    One after another, each opened when the previous one ends: the servers that ignore ``n`` (llama.cpp's) serve one
    request at a time, so concurrent streams would queue behind, or interrupt, each other. Only the first can still
    fail over; a later one that cannot be opened fails the stream midway."""
    first, rest = await open_one()

    async def sources() -> AsyncIterator[AsyncIterator[list[ChatChunk]]]:
        yield _prepended(first, rest)
        for _ in range(copies - 1):
            yield _prepended(*await open_one())

    chained = chain_choice_streams(sources())
    return await chained.__anext__(), chained


async def _prepended(first: list[ChatChunk], rest: AsyncIterator[list[ChatChunk]]) -> AsyncIterator[list[ChatChunk]]:
    try:
        yield first
        async for batch in rest:
            yield batch
    finally:
        await close_iterator(rest)


async def one_by_one(chunks: AsyncIterator[ChatChunk]) -> AsyncIterator[list[ChatChunk]]:
    """A chunk stream as batches of one (for providers that yield chunks one at a time)."""
    try:
        async for chunk in chunks:
            yield [chunk]
    finally:
        await close_iterator(chunks)
