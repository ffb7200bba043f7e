"""The request chain: a per-request ``Call``, the ``ChatStream`` type, and the public middleware protocol.

A middleware is any callable ``(call, next) -> Outcome`` that wraps the next handler. Built-in middleware and
user hooks (from settings or the ``modelyard.middleware`` entry-point group) are composed the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from modelyard.types.chat import AttemptInfo, ChatChunk, ChatRequest, ChatResponse, ModelyardInfo
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse

CallKind = Literal["chat", "stream", "embed"]


def new_request_id() -> str:
    """A UUID4: the X-Request-ID format upstream servers (and their middlewares) accept."""
    return str(uuid.uuid4())


@dataclass
class CallOptions:
    """Per-call controls that are not part of the OpenAI request body."""

    timeout: float | None = None
    max_retries: int | None = None
    fallbacks: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    caller: str = "local"
    conversation_id: str | None = None


@dataclass
class Call:
    """One logical request as it travels through the chain."""

    kind: CallKind
    request: ChatRequest | EmbeddingRequest
    options: CallOptions = field(default_factory=CallOptions)
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.monotonic)
    created: float = field(default_factory=time.time)
    info: ModelyardInfo = field(default_factory=ModelyardInfo)
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.info.request_id = self.request_id
        self.info.requested_model = self.request.model

    @property
    def chat_request(self) -> ChatRequest:
        assert isinstance(self.request, ChatRequest), "not a chat call"
        return self.request

    @property
    def attempts(self) -> list[AttemptInfo]:
        return self.info.attempts


class ChatStream:
    """An async iterator of ``ChatChunk`` that always releases its upstream when closed.

    ``info`` is filled in as the stream is served (provider, served model, attempts).
    Use ``async with`` or call ``aclose()``; iterating to the end closes it too.
    """

    def __init__(self, chunks: AsyncIterator[ChatChunk], info: ModelyardInfo) -> None:
        self._chunks = chunks
        self.info = info
        self.closed = False
        self._source: ChatStream | None = None  # set by ``wrap``: closed too, even if never iterated

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatChunk:
        try:
            return await self._chunks.__anext__()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        closer = getattr(self._chunks, "aclose", None)
        try:
            if closer is not None:
                await closer()
        finally:
            # A transform generator closed before its first step never runs its ``finally``: close its source
            # here, so every layer below (limits, logging, the upstream) is released all the same.
            if self._source is not None:
                await self._source.aclose()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def wrap(self, transform: Callable[[ChatStream], AsyncIterator[ChatChunk]]) -> ChatStream:
        """A new stream whose chunks pass through ``transform`` (which must close its source when done)."""
        wrapped = ChatStream(transform(self), self.info)
        wrapped._source = self
        return wrapped


Outcome = ChatResponse | ChatStream | EmbeddingResponse
Handler = Callable[[Call], Awaitable[Outcome]]


class Middleware(Protocol):
    """Wraps the next handler: ``async def __call__(self, call, next) -> Outcome``."""

    def __call__(self, call: Call, next: Handler, /) -> Awaitable[Outcome]: ...


MiddlewareFactory = Callable[..., Middleware]


def compose(middleware: Sequence[Middleware], handler: Handler) -> Handler:
    """Chain middleware around ``handler``; the first in the list runs first."""
    for mw in reversed(middleware):
        handler = _bind(mw, handler)
    return handler


def _bind(mw: Middleware, next_handler: Handler) -> Handler:
    def bound(call: Call) -> Awaitable[Outcome]:
        return mw(call, next_handler)

    return bound
