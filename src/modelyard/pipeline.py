"""The request chain: a per-request ``Call``, the ``ChatStream`` type, and the public middleware protocol.

A middleware is any callable ``(call, next) -> Outcome`` that wraps the next handler. Built-in middleware and
user hooks (from settings or the ``modelyard.middleware`` entry-point group) are composed the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from random import getrandbits
from typing import Any, Literal, Protocol

from modelyard import errors
from modelyard.streaming import close_iterator
from modelyard.types.chat import AttemptInfo, ChatChunk, ChatRequest, ChatResponse, ModelyardInfo
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelyard.watchdog import Watchdog

CallKind = Literal["chat", "stream", "embed"]

log = logging.getLogger("modelyard.pipeline")


_UUID4_BITS = (4 << 76) | (2 << 62)
_UUID4_MASK = ~((0xF << 76) | (3 << 62))


def new_request_id() -> str:
    """A random UUID4: the X-Request-ID format upstream servers (and their middlewares) accept.

    Made from ``random`` rather than ``uuid.uuid4()``: ids need to be unique, not unguessable, and the
    ``os.urandom`` system call showed up in the request path's profile."""
    h = f"{getrandbits(128) & _UUID4_MASK | _UUID4_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


@dataclass(slots=True)
class StreamEnd:
    """How a stream ended: ``completed`` (its source ran out), ``error`` (it failed), or neither (closed early)."""

    completed: bool = False
    error: BaseException | None = None


ChunkHook = Callable[[ChatChunk], None]
EndHook = Callable[[StreamEnd], Awaitable[None] | None]


#: Chunks an ``async for`` consumer has had that late delivered hooks (``after_last_frame``) have not seen yet: they
#: see them all once the consumer's loop has ended, or whenever this many wait (what a long stream may hold).
LATE_CHUNKS = 64


class ChatStream:
    """An async iterator of ``ChatChunk`` that always releases its upstream when closed.

    ``info`` is filled in as the stream is served (provider, served model, attempts).
    Use ``async with`` or call ``aclose()``; iterating to the end closes it too.

    Middleware that only looks at a stream registers hooks with ``observe`` (called for every chunk, and once
    when the stream ends however it ends) instead of wrapping it; ``next_batch`` hands out the chunks that
    arrived together, so the server can write them in one go. Hooks that only record what was delivered (a
    log's text) ask to see each chunk once it is handed out, so their work never delays it, and may ask to run
    after the server's last frame (``after_last_frame``).
    """

    def __init__(self, chunks: AsyncIterator[ChatChunk] | AsyncIterator[list[ChatChunk]], info: ModelyardInfo) -> None:
        self._chunks: AsyncIterator[Any] = chunks
        self._batched = False
        self.info = info
        self.closed = False
        self._pending: deque[ChatChunk] = deque()
        self._chunk_hooks: list[ChunkHook] = []
        self._first_token_hooks: list[ChunkHook] = []
        self._usage_hooks: list[ChunkHook] = []
        self._delivered_hooks: list[ChunkHook] = []
        self._handed: list[ChatChunk] = []  # handed out, not yet shown to the delivered hooks
        self._end_hooks: list[EndHook] = []
        self._end: StreamEnd | None = None
        self._source: ChatStream | None = None  # set by ``wrap``: closed too, even if never iterated
        self._watchdog: Watchdog | None = None  # times ``next_batch`` waits (one timer for the whole stream)
        self._hooks_before_end = False  # a delivered or end hook that must run before the consumer's last frame
        self._iterated = False  # consumed with ``async for`` (its end hooks may then follow the consumer's loop)

    @classmethod
    def batched(cls, batches: AsyncIterator[list[ChatChunk]], info: ModelyardInfo) -> ChatStream:
        """A stream over a source that yields non-empty lists of chunks (those decoded from one network read)."""
        stream = cls(batches, info)
        stream._batched = True
        return stream

    def observe(
        self,
        on_chunk: ChunkHook | None = None,
        on_end: EndHook | None = None,
        *,
        delivered: bool = False,
        on_first_token: ChunkHook | None = None,
        on_usage: ChunkHook | None = None,
        after_last_frame: bool = False,
    ) -> ChatStream:
        """Call ``on_chunk`` for every chunk and ``on_end`` exactly once at the end; hooks must not change chunks.

        ``on_chunk`` sees a chunk as it arrives, before anyone gets it; with ``delivered=True`` it sees only the
        chunks handed out, once the consumer comes back for more (or closes the stream), and before ``on_end``.
        ``on_first_token`` sees the first arriving chunk that has choices, once; ``on_usage`` each arriving chunk
        that carries usage (cheaper than an ``on_chunk`` that looks at every chunk for them).
        Hooks of a kind run in the order they were added (the middleware nearest the provider first); for each
        chunk, ``on_chunk`` hooks run before ``on_first_token`` and ``on_usage`` hooks.

        ``after_last_frame``: these delivered and end hooks may run after a consumer that writes a final frame of
        its own (the server's ``[DONE]``) has written it (see ``next_batch(keep_open=True)``); of a stream read with
        ``async for`` that runs out, they then run in a task of their own once the consumer's loop has ended, the
        delivered ones over every chunk it was handed (``LATE_CHUNKS`` at most wait; ``stream_ends_settled`` waits
        for the task). Leave it False for a hook whose work the client's next request
        must find done (a saved conversation's reply)."""
        if (on_end is not None or (delivered and on_chunk is not None)) and not after_last_frame:
            self._hooks_before_end = True
        if on_chunk is not None:
            (self._delivered_hooks if delivered else self._chunk_hooks).append(on_chunk)
        if on_first_token is not None:
            self._first_token_hooks.append(on_first_token)
        if on_usage is not None:
            self._usage_hooks.append(on_usage)
        if on_end is not None:
            self._end_hooks.append(on_end)
        return self

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatChunk:
        self._iterated = True
        if not self._pending:
            if self._hooks_before_end or len(self._handed) >= LATE_CHUNKS:
                self._show_delivered()
            self._pending.extend(await self._fetch())
        chunk = self._pending.popleft()
        if self._delivered_hooks:
            self._handed.append(chunk)
        return chunk

    async def next_batch(
        self, timeout: float | None = None, waiting_for: str = "chunk", *, keep_open: bool = False
    ) -> list[ChatChunk]:
        """The next chunks that arrived together (at least one); ``StopAsyncIteration`` at the end.

        With ``timeout``, a source silent for that long fails the stream with ``TimeoutError``.
        With ``keep_open``, when every delivered and end hook may run after the consumer's last frame
        (``observe(after_last_frame=True)``), a source that has run out leaves the stream open: the consumer writes
        its last frame, then closes the stream, which runs them. Delivered hooks then see a batch once the next one
        has come (the last one's at the close), so that none of their work sits between the last chunk and the end.
        """
        defer = keep_open and not self._hooks_before_end
        if not defer:
            self._show_delivered()
        if self._pending:
            batch = list(self._pending)
            self._pending.clear()
        else:
            batch = await self._fetch(timeout, waiting_for, close_at_end=not defer)
        if defer:
            self._show_delivered()
        if self._delivered_hooks:
            self._handed = batch
        return batch

    def _show_delivered(self) -> None:
        """Run the delivered hooks over the chunks handed out since they last ran."""
        handed, hooks = self._handed, self._delivered_hooks
        if handed:
            self._handed = []
            for chunk in handed:
                for hook in hooks:
                    hook(chunk)

    async def _fetch(
        self, timeout: float | None = None, waiting_for: str = "chunk", *, close_at_end: bool = True
    ) -> list[ChatChunk]:
        try:
            if timeout is None:
                batch = await self._next()
            else:
                self._watchdog = self._watchdog or Watchdog()
                try:
                    batch = await self._watchdog.wait(self._next(), timeout)
                except TimeoutError:
                    raise errors.TimeoutError(f"no {waiting_for} from the model within {timeout:g}s") from None
        except StopAsyncIteration:
            self._end = self._end or StreamEnd(completed=True)
            if close_at_end:
                await self.aclose()
            raise
        except BaseException as exc:
            self._end = self._end or StreamEnd(error=exc)
            await self.aclose()
            raise
        if self._chunk_hooks or self._first_token_hooks or self._usage_hooks:
            self._show_arrived(batch)
        return batch

    def _show_arrived(self, batch: list[ChatChunk]) -> None:
        hooks, first, usage = self._chunk_hooks, self._first_token_hooks, self._usage_hooks
        for chunk in batch:
            for hook in hooks:
                hook(chunk)
            if first and chunk.choices:
                self._first_token_hooks = []
                for hook in first:
                    hook(chunk)
                first = self._first_token_hooks
            if usage and chunk.usage is not None:
                for hook in usage:
                    hook(chunk)

    async def _next(self) -> list[ChatChunk]:
        if self._batched:
            batch: list[ChatChunk] = await self._chunks.__anext__()
            return batch
        return [await self._chunks.__anext__()]

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.close()
        try:
            await close_iterator(self._chunks)
        finally:
            try:
                # A transform generator closed before its first step never runs its ``finally``: close its source
                # here, so every layer below (limits, logging, the upstream) is released all the same.
                if self._source is not None:
                    await self._source.aclose()
            finally:
                end = self._end or StreamEnd()
                if self._iterated and end.completed and not self._hooks_before_end and self._has_end_work():
                    _after_consumer(self._run_end_hooks(end))
                else:
                    await self._run_end_hooks(end)

    def _has_end_work(self) -> bool:
        return bool(self._end_hooks or self._handed)

    async def _run_end_hooks(self, end: StreamEnd) -> None:
        # Hooks are closures that often hold this stream: dropping them once spent frees the stream by reference
        # counting instead of leaving a cycle per stream for the garbage collector.
        failure: BaseException | None = None
        try:
            self._show_delivered()
        except BaseException as exc:  # the end hooks run all the same
            failure = exc
        hooks, self._end_hooks = self._end_hooks, []
        self._chunk_hooks, self._first_token_hooks, self._usage_hooks, self._delivered_hooks = [], [], [], []
        for hook in hooks:
            try:
                result = hook(end)
                if result is not None:
                    await result
            except BaseException as exc:  # every hook runs; the first failure is raised after them
                failure = failure or exc
        if failure is not None:
            raise failure

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def wrap(self, transform: Callable[[ChatStream], AsyncIterator[ChatChunk]]) -> ChatStream:
        """A new stream whose chunks pass through ``transform`` (which must close its source when done).

        For middleware that changes or adds chunks; to only look at them, use ``observe``."""
        wrapped = ChatStream(_unforwarded(transform(self)), self.info)
        wrapped._source = self
        return wrapped


_ends_after_consumer: set[asyncio.Task[None]] = set()


def _after_consumer(hooks: Coroutine[Any, Any, None]) -> None:
    """Run a whole stream's end hooks in a task of their own, so that the consumer's loop ends without them."""
    task = asyncio.get_running_loop().create_task(hooks)
    _ends_after_consumer.add(task)
    task.add_done_callback(_end_hooks_done)


def _end_hooks_done(task: asyncio.Task[None]) -> None:
    _ends_after_consumer.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("a stream's end hook failed after its consumer had the whole answer", exc_info=task.exception())


async def stream_ends_settled() -> None:
    """Wait until the end hooks of every stream that ran out on this loop have run (the request log's row is then
    with the writer). ``Gateway.aclose`` and reads of the request log wait for this."""
    loop = asyncio.get_running_loop()
    while pending := [task for task in _ends_after_consumer if task.get_loop() is loop]:
        await asyncio.wait(pending)


async def _unforwarded(chunks: AsyncIterator[ChatChunk]) -> AsyncIterator[ChatChunk]:
    """Chunks a transform may have changed: their upstream wire form is no longer theirs to forward."""
    try:
        async for chunk in chunks:
            chunk.forget_wire()
            yield chunk
    finally:
        await close_iterator(chunks)


Outcome = ChatResponse | ChatStream | EmbeddingResponse
Handler = Callable[[Call], Awaitable[Outcome]]


class Middleware(Protocol):
    """Wraps the next handler: ``async def __call__(self, call, next) -> Outcome``.

    A middleware that has nothing to do for many calls may also define ``skips(call) -> bool``: True when it would
    only pass ``call`` on unchanged, and the chain then calls the next handler directly."""

    def __call__(self, call: Call, next: Handler, /) -> Awaitable[Outcome]: ...


MiddlewareFactory = Callable[..., Middleware]


def compose(middleware: Sequence[Middleware], handler: Handler) -> Handler:
    """Chain middleware around ``handler``; the first in the list runs first."""
    for mw in reversed(middleware):
        handler = _bind(mw, handler)
    return handler


def _bind(mw: Middleware, next_handler: Handler) -> Handler:
    skips: Callable[[Call], bool] | None = getattr(mw, "skips", None)
    if skips is None:

        def bound(call: Call) -> Awaitable[Outcome]:
            return mw(call, next_handler)

        return bound

    def bound_unless_skipped(call: Call) -> Awaitable[Outcome]:
        return next_handler(call) if skips(call) else mw(call, next_handler)

    return bound_unless_skipped
