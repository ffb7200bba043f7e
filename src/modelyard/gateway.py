"""The Gateway: the one place that wires settings, middleware, routing, providers and storage together.

Every shell (SDK, CLI, HTTP server, workbench) calls ``Gateway.chat / stream / embed / models``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from modelyard import errors, tokens
from modelyard.config import Settings, data_dir, load_settings
from modelyard.gateway_middleware import (
    KeyCache,
    OpenedStream,
    build_router,
    check_context,
    deployment_spec,
    estimate_tokens,
    load_middleware,
    open_copies,
    open_shared_state,
    open_stream,
    recorded,
    request_chain,
    rollout_percent,
    route_context,
    routing_status,
    unit_price,
    upstream_headers,
)
from modelyard.middleware.accounting import Priced
from modelyard.middleware.conversations import ConversationMiddleware
from modelyard.middleware.limits import admit, deployment_scope, hold_until_closed, used_tokens
from modelyard.middleware.logging import LoggingMiddleware
from modelyard.pipeline import (
    Call,
    CallKind,
    CallOptions,
    ChatStream,
    Handler,
    Middleware,
    Outcome,
    compose,
    stream_ends_settled,
)
from modelyard.pricing.catalog import PriceCatalog
from modelyard.providers._http import HttpClient
from modelyard.providers.adjust import adjust_request, wants_stream_emulation
from modelyard.providers.base import (
    EmbedCall,
    Provider,
    ProviderCall,
    ProviderContext,
    ProviderSpec,
    Timeouts,
)
from modelyard.providers.registry import build_provider, provider_specs, split_model
from modelyard.redaction import Redactor
from modelyard.routing.attempts import Deadline, RetryPolicy, with_retries
from modelyard.routing.deployments import Deployment
from modelyard.routing.fallback import next_candidate
from modelyard.routing.health import HealthBoard
from modelyard.routing.router import Router
from modelyard.storage.sql import SQLStore, open_store
from modelyard.storage.writer import LogWriter
from modelyard.streaming import merge_choices, with_usage
from modelyard.types.chat import ChatRequest, ChatResponse
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelyard.types.models import ModelInfo
from modelyard.types.usage import Usage
from modelyard.types.validation import parse_model

T = TypeVar("T")
R = TypeVar("R", ChatResponse, EmbeddingResponse, None)


class Gateway:
    """Owns providers, router, middleware chain and the shared HTTP client. Use ``async with`` or ``aclose()``.

    Example::

        async with Gateway(load_settings()) as gateway:
            response = await gateway.chat({"model": "fake/echo", "messages": [{"role": "user", "content": "hi"}]})
    """

    def __init__(self, settings: Settings | None = None, *, middleware: Sequence[Middleware] = ()) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.http = HttpClient(self.settings.http)
        self.specs: dict[str, ProviderSpec] = provider_specs(self.settings)
        self.health = HealthBoard(self.settings.breaker)
        self.shared = open_shared_state(self.settings)
        self.router: Router = build_router(
            self.settings, self.health, self.shared.flags, lambda model: unit_price(self.catalog, model)
        )
        self._providers: dict[str, Provider] = {}
        self._deployment_providers: dict[str, tuple[ProviderSpec, Provider]] = {}
        self.keys = KeyCache(self._key_store)
        free = [name for name, spec in self.specs.items() if not spec.requires_key]
        self.catalog = PriceCatalog(self.settings.prices, free_providers=free)
        self.redactor = Redactor(self.settings.redact_patterns, self.settings.redact_pii)
        self.store: SQLStore | None = None
        self.writer: LogWriter | None = None
        self._extra_middleware = [*load_middleware(self.settings), *middleware]
        self._handle: Handler | None = None
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        """Open the database (running migrations) and the log writer; called on first use."""
        async with self._start_lock:
            if self._handle is not None:
                return
            self.store = await open_store(self.settings.database_url)
            chain: list[Middleware] = [ConversationMiddleware(self.store.conversations)]
            if self.settings.log_requests:
                self.writer = LogWriter(
                    self.store.logs, spill_dir=self.settings.spill_dir, log_file=self.settings.log_file
                )
                self.writer.start()
                chain.append(
                    LoggingMiddleware(
                        self.writer.submit,
                        self.redactor,
                        store_bodies=self.settings.store_bodies,
                        count_text=tokens.count_text,
                        pricer=self.price,
                    )
                )
            chain += self._extra_middleware  # hooks see the final cost: budget -> cost -> limits -> cache follow
            chain += request_chain(
                self.settings, self.shared, self.keys, self.price, self.router, self.store.logs.total_cost
            )
            if self.shared.shared is not None:
                self.shared.shared.start()
            self._handle = compose(chain, self._dispatch)

    async def stores(self) -> SQLStore:
        """The database behind logs, conversations, prompts and keys (opened on first use)."""
        if self._handle is None:
            await self.start()
        assert self.store is not None
        return self.store

    async def _key_store(self) -> Any:
        return (await self.stores()).keys

    def key_secret(self) -> str:
        """The HMAC secret for virtual keys (see ``key_secret_for``)."""
        return self.key_secret_for(self.settings)

    @staticmethod
    def key_secret_for(settings: Settings) -> str:
        """From settings, else generated once into the data folder (shared by every process on the machine)."""
        if settings.key_secret:
            return settings.key_secret
        path = data_dir() / "key_secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process made it first
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
        return path.read_text().strip()

    async def _run(self, call: Call) -> Outcome:
        if self._handle is None:
            await self.start()
        assert self._handle is not None
        return await self._handle(call)

    # ----- public API -------------------------------------------------------------------------------------
    async def chat(self, request: ChatRequest | dict[str, Any], options: CallOptions | None = None) -> ChatResponse:
        """One complete chat completion (retries and fallbacks included)."""
        outcome = await self._run(self._call("chat", parse_model(ChatRequest, request), options))
        assert isinstance(outcome, ChatResponse)
        return outcome

    async def stream(self, request: ChatRequest | dict[str, Any], options: CallOptions | None = None) -> ChatStream:
        """Start a stream; retries and fallbacks happen only before its first chunk. Close it when done."""
        outcome = await self._run(self._call("stream", parse_model(ChatRequest, request), options))
        assert isinstance(outcome, ChatStream)
        return outcome

    async def embed(
        self, request: EmbeddingRequest | dict[str, Any], options: CallOptions | None = None
    ) -> EmbeddingResponse:
        outcome = await self._run(self._call("embed", parse_model(EmbeddingRequest, request), options))
        assert isinstance(outcome, EmbeddingResponse)
        return outcome

    def provider(self, name: str) -> Provider:
        """The provider instance for a row name (built, and its module imported, on first use)."""
        if name not in self._providers:
            spec = self.specs.get(name)
            if spec is None:
                raise errors.NotFoundError(f"unknown provider {name!r}", provider=name)
            self._providers[name] = build_provider(spec, ProviderContext(spec, self.settings, self.http))
        return self._providers[name]

    def api_key(self, spec: ProviderSpec) -> str | None:
        """The key for a provider row; a required but missing key is a ``ConfigError`` naming its variable."""
        key = spec.api_key or (os.environ.get(spec.api_key_env) if spec.api_key_env else None)
        if not key and spec.requires_key:
            where = f"set {spec.api_key_env}" if spec.api_key_env else f"set providers.{spec.name}.api_key"
            raise errors.ConfigError(
                f"no API key for provider {spec.name!r}: {where} (or providers.{spec.name}.api_key in modelyard.yaml)",
                provider=spec.name,
            )
        return key or None

    def readiness(self, model: str) -> str:
        """ "ok" when ``model`` can be served now (provider known, key present, local weights found)."""
        try:
            deployment = min(self.router.group(model).deployments, key=lambda d: d.priority)
            name, upstream = split_model(deployment.model, self.specs)
            spec, provider = self._deployment_provider(deployment, name)
            self.api_key(spec)
            check = getattr(provider, "check", None)
            if check is not None:
                check(upstream)
        except errors.ModelyardError as exc:
            return f"error: {exc.message}"
        return "ok"

    def price(self, model: str, usage: Usage) -> Priced:
        """The cost of ``usage`` on ``provider/model``: billed by the provider when it says, else computed."""
        cost = self.catalog.charge(model, usage)
        return Priced(cost.total if cost.known else None, cost.source, cost.billed)

    async def models(self) -> list[ModelInfo]:
        """Models usable with the current keys, with context window, capabilities and price where known."""
        listed: dict[str, ModelInfo] = {}
        for name, spec in self.specs.items():
            try:
                self.api_key(spec)
            except errors.ConfigError:
                continue
            known = [m for m in self.catalog.models() if m.startswith(f"{name}/")]
            local = getattr(self.provider(name), "available_models", None) if not spec.requires_key else None
            served = [*spec.models, *(local() if local is not None else [])]
            for model in [*known, *(f"{name}/{m}" for m in served)]:
                listed[model] = self._model_info(model, spec)
        for alias in [*self.settings.aliases, *self.router.groups]:
            listed[alias] = self.catalog.info(self.router.resolve(alias)).model_copy(update={"id": alias})
        return sorted(listed.values(), key=lambda m: m.id)

    async def model(self, model_id: str) -> ModelInfo | None:
        """One model's info: a listed one, or an unlisted one its provider can vouch for (``local//path/to.gguf``:
        the file is there). Other unlisted names stay unknown: only their upstream could tell."""
        for info in await self.models():
            if info.id == model_id:
                return info
        try:
            name, upstream = split_model(model_id, self.specs)
            check = getattr(self.provider(name), "check", None)
            if check is None:
                return None
            check(upstream)
        except errors.ModelyardError:
            return None
        return self._model_info(model_id, self.specs[name])

    def _model_info(self, model: str, spec: ProviderSpec) -> ModelInfo:
        info = self.catalog.info(model)
        info.provider, info.capabilities, info.owned_by = spec.name, sorted(spec.capabilities), spec.name
        return info

    # ----- routing state (admin API, /ready, metrics) -------------------------------------------------------
    def routing_status(self) -> dict[str, Any]:
        """Deployments (breaker state, in-flight, latency), groups, rollouts and where shared state lives."""
        return routing_status(self.router, self.health, self.shared)

    async def set_rollout(self, name: str, percent: float | None) -> float:
        """Change a rollout's percentage at run time (every replica, with Redis); None restores the config."""
        if name not in self.router.rollouts:
            raise errors.NotFoundError(f"no rollout named {name!r} in settings.rollouts", code="rollout_not_found")
        if percent is not None and not 0 <= percent <= 100:
            raise errors.BadRequestError("percent must be between 0 and 100", param="percent")
        await self.shared.flags.set(name, percent)
        return rollout_percent(self.router, self.shared, name)

    async def aclose(self) -> None:
        """Flush logs, close the database, providers, shared state and the HTTP client."""
        await stream_ends_settled()  # the rows of streams that just ran out, handed to the writer first
        if self.writer is not None:
            await self.writer.close()
        for provider in [*self._providers.values(), *(p for _, p in self._deployment_providers.values())]:
            await provider.aclose()
        self._providers.clear()
        self._deployment_providers.clear()
        await self.shared.aclose()
        await self.http.aclose()
        if self.store is not None:
            await self.store.close()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ----- the request path -----------------------------------------------------------------------------
    def _call(self, kind: CallKind, request: ChatRequest | EmbeddingRequest, options: CallOptions | None) -> Call:
        if kind != "embed" and isinstance(request, ChatRequest) and request.stream is not None:
            request = request.model_copy(update={"stream": None})
        return Call(kind=kind, request=request, options=options or CallOptions())

    async def _dispatch(self, call: Call) -> Outcome:
        """Try the plan's deployments in order: in-group failover first, then the fallback groups."""
        deadline = Deadline(call.options.timeout or self.settings.timeout, call.started)
        await self.shared.flags.refresh()
        context = route_context(call) if self.router.needs_context else None
        plan = self.router.plan(call.request.model, call.options.fallbacks, context)
        deployment, remaining = plan[0], plan[1:]
        while True:
            try:
                return await self._serve(call, deployment, deadline, remaining)
            except errors.ModelyardError as exc:
                skip_unconfigured = isinstance(exc, errors.ConfigError) and deployment is not plan[0]
                following = remaining[0] if skip_unconfigured and remaining else None
                following = following or next_candidate(exc, deployment, remaining, self._deployment_window)
                if following is None or deadline.remaining() <= 0:
                    exc.upstream_attempts = len(call.attempts)
                    raise
                remaining = remaining[remaining.index(following) + 1 :]
                deployment = following

    def _context_window(self, model: str) -> int | None:
        return self.catalog.context_window(model)

    def _deployment_window(self, deployment: Deployment) -> int | None:
        return self.catalog.context_window(deployment.model)

    def _deployment_provider(self, deployment: Deployment, name: str) -> tuple[ProviderSpec, Provider]:
        """The provider row and adapter for a deployment (its own instance when it has its own URL or key)."""
        if not deployment.has_own_endpoint:
            return self.specs[name], self.provider(name)
        built = self._deployment_providers.get(deployment.id)
        if built is None:
            spec = deployment_spec(self.specs[name], deployment)
            built = spec, build_provider(spec, ProviderContext(spec, self.settings, self.http))
            self._deployment_providers[deployment.id] = built
        return built

    async def _serve(
        self, call: Call, deployment: Deployment, deadline: Deadline, remaining: list[Deployment]
    ) -> Outcome:
        """One deployment: its limits, then the attempt chain (retries here unless a group peer can take over)."""
        scope = deployment_scope(deployment.id, deployment.rpm, deployment.tpm, deployment.max_parallel)
        if scope is None:
            return await self._attempts(call, deployment, deadline, remaining)
        tokens_needed = estimate_tokens(call, self.settings.limits.output_estimate_tokens) if deployment.tpm else 0
        lease_id = f"{call.request_id}:{deployment.id}"
        admission = await admit(self.shared.counters, [scope], lease_id, tokens_needed, call.request_id)
        try:
            outcome = await self._attempts(call, deployment, deadline, remaining)
        except BaseException:
            await admission.finish_shielded(None)
            raise
        if isinstance(outcome, ChatStream):
            return hold_until_closed(outcome, admission)
        await admission.finish_shielded(used_tokens(outcome))
        return outcome

    async def _attempts(
        self, call: Call, deployment: Deployment, deadline: Deadline, remaining: list[Deployment]
    ) -> Outcome:
        provider_name, upstream = split_model(deployment.model, self.specs)
        spec, provider = self._deployment_provider(deployment, provider_name)
        api_key = self.api_key(spec)
        retrying = self._retrying(call, deployment, deadline, remaining)
        headers = {"X-Request-ID": call.request_id, **upstream_headers(call.options.extra_headers)}
        base = self.http.timeouts()
        if isinstance(call.request, EmbeddingRequest):
            timeouts = Timeouts(base.connect, base.read, base.write, base.pool, deadline.remaining())
            request = call.request.model_copy(update={"model": upstream})
            ecall = EmbedCall(request, call.request_id, api_key, timeouts, headers, call.options.extra_body)
            response = await retrying(lambda: provider.embed(ecall))
            return self._served(call, provider_name, deployment.model, response)
        check_context(self._context_window(deployment.model), call.chat_request, deployment.model)
        rules = [*spec.rules_for(upstream), *deployment.rules]
        adjusted, dropped = adjust_request(
            call.chat_request.model_copy(update={"model": upstream}),
            rules,
            strict=self.settings.strict_params,
            provider=provider_name,
        )
        call.info.dropped_params = dropped
        pcall = ProviderCall(adjusted, call.request_id, api_key, base, headers, call.options.extra_body)
        copies = call.chat_request.n or 1 if "n" in dropped else 1  # n > 1 emulated where the upstream ignores n
        if call.kind == "chat":
            pcall.timeouts = Timeouts(base.connect, base.read, base.write, base.pool, deadline.remaining())
            replies = [await retrying(lambda: provider.chat(pcall)) for _ in range(copies)]
            chat = merge_choices(replies) if copies > 1 else replies[0]
            return self._served(call, provider_name, deployment.model, chat)
        emulate = wants_stream_emulation(rules)

        def open_one() -> Awaitable[OpenedStream]:
            return retrying(lambda: open_stream(provider, pcall, emulate))

        first, batches = await (open_copies(open_one, copies) if copies > 1 else open_one())
        self._served(call, provider_name, deployment.model, None)
        model = deployment.model
        counted = with_usage(
            first,
            batches,
            lambda: tokens.estimate_request_tokens(adjusted.model_copy(update={"model": model})),
            lambda text: tokens.count_text(model, text),
        )
        return ChatStream.batched(counted, call.info)

    def _retrying(
        self, call: Call, deployment: Deployment, deadline: Deadline, remaining: list[Deployment]
    ) -> Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]:
        """Runs an attempt with retries; feeds the health board; stops early when a group peer can take over."""
        peers = self.router.peers(deployment)
        others = any(d.group == deployment.group for d in remaining)
        policy = RetryPolicy(
            max_retries=self.settings.max_retries if call.options.max_retries is None else call.options.max_retries,
            max_retry_after=self.settings.max_retry_after,
        )

        def retrying(attempt: Callable[[], Awaitable[T]]) -> Awaitable[T]:
            return with_retries(
                recorded(call, deployment, self.health, attempt, self.writer.upstream_waiting if self.writer else None),
                policy,
                deadline,
                on_failure=lambda exc: self.health.failure(deployment.id, exc, peers),
                keep_trying=lambda exc: not (others and exc.fallback),  # a group peer takes over at once
            )

        return retrying

    @staticmethod
    def _served(call: Call, provider: str, model: str, response: R) -> R:
        call.info.provider = provider
        call.info.served_model = model
        if response is not None:
            response.modelyard = call.info
        return response
