"""The Gateway: the one place that wires settings, middleware, routing, providers and storage together.

Every shell (SDK, CLI, HTTP server, workbench) calls ``Gateway.chat / stream / embed / models``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from modelyard import errors
from modelyard.config import Settings, data_dir, load_settings
from modelyard import tokens
from modelyard.gateway_middleware import load_middleware
from modelyard.middleware.accounting import CostMiddleware, Priced
from modelyard.middleware.conversations import ConversationMiddleware
from modelyard.middleware.logging import LoggingMiddleware
from modelyard.redaction import Redactor
from modelyard.pipeline import Call, CallKind, CallOptions, ChatStream, Handler, Middleware, Outcome, compose
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
from modelyard.routing.attempts import Deadline, RetryPolicy, with_retries
from modelyard.routing.fallback import next_candidate
from modelyard.routing.router import Router
from modelyard.storage.sql import SQLStore, open_store
from modelyard.storage.writer import LogWriter
from modelyard.streaming import ensure_usage, merge_choices, stream_from_response
from modelyard.types.chat import AttemptInfo, ChatChunk, ChatRequest, ChatResponse
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelyard.types.models import ModelInfo
from modelyard.types.usage import Usage
from modelyard.types.validation import parse_model

T = TypeVar("T")


class Gateway:
    """Owns providers, router, middleware chain and the shared HTTP client. Use ``async with`` or ``aclose()``."""

    def __init__(self, settings: Settings | None = None, *, middleware: Sequence[Middleware] = ()) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.http = HttpClient(self.settings.http)
        self.specs: dict[str, ProviderSpec] = provider_specs(self.settings)
        self.router = Router(self.settings.aliases, self.settings.fallbacks, self.settings.default_fallbacks)
        self._providers: dict[str, Provider] = {}
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
            chain += [*self._extra_middleware, CostMiddleware(self.price)]  # hooks see the final cost
            self._handle = compose(chain, self._dispatch)

    async def stores(self) -> SQLStore:
        """The database behind logs, conversations, prompts and keys (opened on first use)."""
        if self._handle is None:
            await self.start()
        assert self.store is not None
        return self.store

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
            name, upstream = split_model(self.router.resolve(model), self.specs)
            self.api_key(self.specs[name])
            check = getattr(self.provider(name), "check", None)
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
                info = self.catalog.info(model)
                info.provider, info.capabilities, info.owned_by = name, sorted(spec.capabilities), name
                listed[model] = info
        for alias, target in self.settings.aliases.items():
            listed[alias] = self.catalog.info(self.router.resolve(target)).model_copy(update={"id": alias})
        return sorted(listed.values(), key=lambda m: m.id)

    async def aclose(self) -> None:
        """Flush logs, close the database, providers and the HTTP client."""
        if self.writer is not None:
            await self.writer.close()
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
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
        deadline = Deadline(call.options.timeout or self.settings.timeout, call.started)
        candidates = self.router.candidates(call.request.model, call.options.fallbacks)
        model, remaining = candidates[0], candidates[1:]
        while True:
            try:
                return await self._serve(call, model, deadline)
            except errors.ModelyardError as exc:
                skip_unconfigured = isinstance(exc, errors.ConfigError) and model != candidates[0]
                following = remaining[0] if skip_unconfigured and remaining else None
                following = following or next_candidate(exc, model, remaining, self._context_window)
                if following is None or deadline.remaining() <= 0:
                    exc.upstream_attempts = len(call.attempts)
                    raise
                remaining = remaining[remaining.index(following) + 1 :]
                model = following

    def _context_window(self, model: str) -> int | None:
        return self.catalog.context_window(model)

    def _check_context(self, request: ChatRequest, model: str) -> None:
        """Fail before any network call when the prompt cannot fit the model's context window."""
        window = self._context_window(model)
        if window is None:
            return
        # Cheap bound first: a token is at least one byte, so a short prompt never needs counting.
        size = sum(len(m.model_dump_json().encode()) for m in [*request.messages, *(request.tools or [])])
        if size < window:
            return
        needed = tokens.estimate_request_tokens(request.model_copy(update={"model": model}))
        if needed > window:
            raise errors.ContextWindowExceededError(
                f"this request needs about {needed} tokens but {model} has a {window}-token context window",
                model=model,
                param="messages",
            )

    async def _serve(self, call: Call, model: str, deadline: Deadline) -> Outcome:
        provider_name, upstream = split_model(model, self.specs)
        spec = self.specs[provider_name]
        api_key = self.api_key(spec)
        provider = self.provider(provider_name)
        policy = RetryPolicy(
            max_retries=self.settings.max_retries if call.options.max_retries is None else call.options.max_retries,
            max_retry_after=self.settings.max_retry_after,
        )
        headers = {"X-Request-ID": call.request_id, **call.options.extra_headers}
        base = self.http.timeouts()
        if isinstance(call.request, EmbeddingRequest):
            ecall = EmbedCall(
                call.request.model_copy(update={"model": upstream}),
                call.request_id,
                api_key,
                Timeouts(base.connect, base.read, base.write, base.pool, deadline.remaining()),
                headers,
                call.options.extra_body,
            )
            response = await with_retries(self._recorded(call, model, lambda: provider.embed(ecall)), policy, deadline)
            self._served(call, provider_name, model)
            response.modelyard = call.info
            return response
        self._check_context(call.chat_request, model)
        rules = spec.rules_for(upstream)
        request, dropped = adjust_request(
            call.chat_request.model_copy(update={"model": upstream}),
            rules,
            strict=self.settings.strict_params,
            provider=provider_name,
        )
        call.info.dropped_params = dropped
        pcall = ProviderCall(request, call.request_id, api_key, base, headers, call.options.extra_body)
        if call.kind == "chat":
            pcall.timeouts = Timeouts(base.connect, base.read, base.write, base.pool, deadline.remaining())
            copies = call.chat_request.n or 1 if "n" in dropped else 1
            replies = [
                await with_retries(self._recorded(call, model, lambda: provider.chat(pcall)), policy, deadline)
                for _ in range(copies)  # n > 1 emulated, one by one, where the upstream ignores n
            ]
            chat = merge_choices(replies) if copies > 1 else replies[0]
            self._served(call, provider_name, model)
            chat.modelyard = call.info
            return chat
        emulate = wants_stream_emulation(rules)
        first, chunks = await with_retries(
            self._recorded(call, model, lambda: _open_stream(provider, pcall, emulate)), policy, deadline
        )
        self._served(call, provider_name, model)
        counted = ensure_usage(
            _prepend(first, chunks),
            lambda: tokens.estimate_request_tokens(request.model_copy(update={"model": model})),
            lambda text: tokens.count_text(model, text),
        )
        return ChatStream(counted, call.info)

    def _recorded(self, call: Call, model: str, attempt: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """Wrap one attempt so its outcome and latency are recorded on the call."""
        provider = model.partition("/")[0]

        async def run() -> T:
            started = time.monotonic()
            try:
                result = await attempt()
            except errors.ModelyardError as exc:
                call.attempts.append(
                    AttemptInfo(
                        model=model,
                        provider=provider,
                        status=exc.status_code,
                        error=type(exc).__name__,
                        latency_ms=round((time.monotonic() - started) * 1000, 2),
                    )
                )
                raise
            call.attempts.append(
                AttemptInfo(
                    model=model, provider=provider, status=200, latency_ms=round((time.monotonic() - started) * 1000, 2)
                )
            )
            return result

        return run

    @staticmethod
    def _served(call: Call, provider: str, model: str) -> None:
        call.info.provider = provider
        call.info.served_model = model


async def _open_stream(
    provider: Provider, call: ProviderCall, emulate: bool
) -> tuple[ChatChunk, AsyncIterator[ChatChunk]]:
    """Start a stream and wait for its first chunk (everything up to here may be retried)."""
    if emulate:
        chunks: AsyncIterator[ChatChunk] = stream_from_response(await provider.chat(call))
    else:
        chunks = provider.stream(call)
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        raise errors.StreamInterruptedError(
            "upstream stream ended before sending anything", provider=provider.name, model=call.request.model
        ) from None
    except BaseException:
        await _close(chunks)
        raise
    return first, chunks


async def _prepend(first: ChatChunk, rest: AsyncIterator[ChatChunk]) -> AsyncIterator[ChatChunk]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await _close(rest)


async def _close(chunks: AsyncIterator[ChatChunk]) -> None:
    closer = getattr(chunks, "aclose", None)
    if closer is not None:
        await closer()
