"""SSE encoding/decoding and the chunk accumulator.

SSE is handled only at the edges (provider HTTP in, server out); in between, a stream is an async iterator of
``ChatChunk``. ``ChunkAccumulator`` rebuilds the complete response from chunks, tool-call argument deltas included.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelyard.types.chat import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    Message,
    ModelyardInfo,
    ToolCall,
    ToolCallDelta,
)
from modelyard.types.usage import Usage

MAX_EVENT_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class SSEEvent:
    """One server-sent event."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class SSEDecoder:
    """Incremental decoder: feed bytes in any split, get complete events out (per the WHATWG rules)."""

    _buffer: bytes = b""
    _data: list[str] = field(default_factory=list)
    _event: str | None = None
    _id: str | None = None
    _retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        if len(self._buffer) > MAX_EVENT_BYTES:
            raise ValueError("SSE line exceeds the size limit")
        if b"\r" not in self._buffer:
            return self._feed_lf_lines()
        events: list[SSEEvent] = []
        buffer, start = self._buffer, 0
        while True:
            end, size = _line_end(buffer, start)
            if size == 0:
                break
            event = self._line(buffer[start:end].decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
            start = end + size
        self._buffer = buffer[start:]
        return events

    def _feed_lf_lines(self) -> list[SSEEvent]:
        """``feed`` for a buffer whose lines all end in LF (what servers send): split in one call, and the
        ``data: `` and blank lines that make up nearly every stream handled without ``_line``."""
        *lines, self._buffer = self._buffer.split(b"\n")
        events: list[SSEEvent] = []
        for raw in lines:
            if raw.startswith(b"data: "):
                self._data.append(raw[6:].decode("utf-8", errors="replace"))
                continue
            event = self._line(raw.decode("utf-8", errors="replace")) if raw else self._dispatch()
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of input: a final event without its blank line still counts."""
        events = []
        if self._buffer:
            event = self._line(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        """A blank line: the event gathered so far, if any (the last event id carries over)."""
        if not self._data and self._event is None:
            return None
        event = SSEEvent("\n".join(self._data), self._event, self._id, self._retry)
        self._data, self._event, self._retry = [], None, None
        return event


def _line_end(buffer: bytes, start: int) -> tuple[int, int]:
    """(index, length) of the first line ending (CRLF, LF or CR) at or after ``start``; length 0 when there is
    none yet (a CR at the very end may be half of a CRLF: wait for more)."""
    lf = buffer.find(b"\n", start)
    cr = buffer.find(b"\r", start, lf if lf != -1 else len(buffer))
    if cr == -1:
        return (lf, 1) if lf != -1 else (-1, 0)
    if cr + 1 == len(buffer):
        return -1, 0
    return (cr, 2) if buffer[cr + 1] == 0x0A else (cr, 1)


async def close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an async iterator if it can be closed (async generators can; plain iterators need nothing)."""
    closer = getattr(iterator, "aclose", None)
    if closer is not None:
        await closer()


async def iter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Decode an async byte stream into SSE events."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


def encode_sse(data: bytes | str, event: str | None = None) -> bytes:
    """Encode one SSE event; ``data`` is already serialized (it must not contain newlines)."""
    payload = data.encode() if isinstance(data, str) else data
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + payload + b"\n\n"


def encode_json_sse(obj: Any, event: str | None = None) -> bytes:
    return encode_sse(orjson.dumps(obj), event)


SSE_DONE = b"data: [DONE]\n\n"


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # provider fields (e.g. thought signatures)


@dataclass
class _ChoiceParts:
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish_reason: str | None = None
    refusal: list[str] = field(default_factory=list)
    reasoning_signature: str | None = None


class ChunkAccumulator:
    """Collects ``ChatChunk``s and rebuilds the complete ``ChatResponse``."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.system_fingerprint: str | None = None
        self.usage: Usage | None = None
        self.modelyard: ModelyardInfo | None = None
        self.chunks = 0
        self._choices: dict[int, _ChoiceParts] = {}

    def add(self, chunk: ChatChunk) -> None:
        self.chunks += 1
        self.id = self.id or chunk.id
        self.model = self.model or chunk.model
        self.created = self.created or chunk.created
        self.system_fingerprint = self.system_fingerprint or chunk.system_fingerprint
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.modelyard is not None:
            self.modelyard = chunk.modelyard
        for choice in chunk.choices:
            parts = self._choices.get(choice.index)
            if parts is None:  # not setdefault: that would build a throwaway _ChoiceParts for every chunk
                parts = self._choices[choice.index] = _ChoiceParts()
            delta = choice.delta
            if delta.role:
                parts.role = delta.role
            if delta.content:
                parts.content.append(delta.content)
            if delta.reasoning_content:
                parts.reasoning.append(delta.reasoning_content)
            if delta.refusal:
                parts.refusal.append(delta.refusal)
            extra = delta.__pydantic_extra__  # not ``model_extra``: a property call on every chunk
            if extra and isinstance(signature := extra.get("reasoning_signature"), str):
                parts.reasoning_signature = signature
            for tc in delta.tool_calls or []:
                call = parts.tool_calls.get(tc.index)
                if call is None:
                    call = parts.tool_calls[tc.index] = _ToolCallParts()
                call.id = tc.id or call.id
                call.extra.update(tc.model_extra or {})
                if tc.function is not None:
                    call.name = tc.function.name or call.name
                    if tc.function.arguments:
                        call.arguments.append(tc.function.arguments)
            if choice.finish_reason:
                parts.finish_reason = choice.finish_reason

    @property
    def finished(self) -> bool:
        """True once every choice seen so far has a finish reason."""
        return bool(self._choices) and all(c.finish_reason for c in self._choices.values())

    @property
    def text(self) -> str:
        first = self._choices.get(0)
        return "".join(first.content) if first else ""

    def response(self) -> ChatResponse:
        choices = []
        for index in sorted(self._choices):
            parts = self._choices[index]
            tool_calls = [
                ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments="".join(c.arguments)), **c.extra)
                for _, c in sorted(parts.tool_calls.items())
            ]
            message = Message(
                role="assistant",
                content="".join(parts.content) if parts.content or not tool_calls else None,
                reasoning_content="".join(parts.reasoning) or None,
                tool_calls=tool_calls or None,
            )
            if parts.refusal:
                message.refusal = "".join(parts.refusal)  # type: ignore[attr-defined]
            if parts.reasoning_signature:
                message.reasoning_signature = parts.reasoning_signature  # type: ignore[attr-defined]
            choices.append(Choice(index=index, message=message, finish_reason=parts.finish_reason))
        response = ChatResponse(
            model=self.model, choices=choices, usage=self.usage, system_fingerprint=self.system_fingerprint
        )
        if self.id:
            response.id = self.id
        if self.created:
            response.created = self.created
        response.modelyard = self.modelyard
        return response


async def stream_from_response(response: ChatResponse) -> AsyncIterator[ChatChunk]:
    """Replay a complete response as a stream (for models that cannot stream, and cache hits)."""
    for choice in response.choices:
        message = choice.message
        calls = [
            ToolCallDelta(
                index=i,
                id=c.id,
                type="function",
                function=FunctionCallDelta(name=c.function.name, arguments=c.function.arguments),
                **(c.model_extra or {}),
            )
            for i, c in enumerate(message.tool_calls or [])
        ]
        delta = Delta(
            role="assistant",
            content=message.text() or None,
            reasoning_content=message.reasoning_content,
            tool_calls=calls or None,
        )
        yield ChatChunk(
            id=response.id,
            created=response.created,
            model=response.model,
            choices=[ChunkChoice(index=choice.index, delta=delta)],
        )
        yield ChatChunk(
            id=response.id,
            created=response.created,
            model=response.model,
            choices=[ChunkChoice(index=choice.index, finish_reason=choice.finish_reason or "stop")],
        )
    yield ChatChunk(id=response.id, created=response.created, model=response.model, usage=response.usage)


async def with_usage(
    first: list[ChatChunk],
    rest: AsyncIterator[list[ChatChunk]],
    prompt_tokens: Callable[[], int],
    count: Callable[[str], int],
) -> AsyncIterator[list[ChatChunk]]:
    """``first`` then the batches of ``rest``; when the stream ends without usage, an estimated usage chunk follows.

    The estimate counts exactly the text delivered (content, reasoning, tool-call arguments) and is marked
    ``"estimated": true`` so nobody mistakes it for the provider's count.
    """
    seen_usage = False
    delivered: list[ChatChunk] = []
    try:
        batch = first
        while True:
            seen_usage = seen_usage or any(chunk.usage is not None for chunk in batch)
            if not seen_usage:
                delivered += batch
            yield batch
            try:
                batch = await rest.__anext__()
            except StopAsyncIteration:
                break
    finally:
        await close_iterator(rest)
    if seen_usage or not delivered:
        return
    pieces = [
        piece
        for chunk in delivered
        for choice in chunk.choices
        for piece in (
            choice.delta.content,
            choice.delta.reasoning_content,
            *(t.function.arguments for t in choice.delta.tool_calls or [] if t.function),
        )
        if piece
    ]
    last = delivered[-1]
    usage = Usage.of(prompt_tokens(), count("".join(pieces)) if pieces else 0)
    usage.estimated = True  # type: ignore[attr-defined]
    yield [ChatChunk(id=last.id, created=last.created, model=last.model, usage=usage)]


def _summed_usage(usages: list[Usage]) -> Usage:
    """The usage of several answers to one prompt: the prompt counted once, the completions added up."""
    first = usages[0]
    return Usage.of(
        first.prompt_tokens,
        sum(u.completion_tokens for u in usages),
        first.cached_tokens,
        sum(u.reasoning_tokens for u in usages),
    )


def merge_choices(responses: list[ChatResponse]) -> ChatResponse:
    """One response holding every choice of ``responses`` (numbered in order) and their summed usage."""
    first = responses[0]
    choices = [c.model_copy(update={"index": i}) for i, c in enumerate(c for r in responses for c in r.choices)]
    usages = [r.usage for r in responses if r.usage is not None]
    usage = _summed_usage(usages) if usages else None
    return first.model_copy(update={"choices": choices, "usage": usage})


def _as_choice(chunk: ChatChunk, index: int, stream_id: str) -> ChatChunk:
    """A one-choice stream's chunk as choice ``index`` of the chained stream (its usage held back)."""
    choices = [c.model_copy(update={"index": index}) for c in chunk.choices]
    return chunk.model_copy(update={"id": stream_id, "choices": choices, "usage": None})


async def chain_choice_streams(
    sources: AsyncIterator[AsyncIterator[list[ChatChunk]]],
) -> AsyncIterator[list[ChatChunk]]:
    """One-choice streams (batches of chunks), one after another, as one stream: the ``i``-th becomes choice ``i``,
    under the first one's id, and one usage chunk (prompt once, completions summed) ends it when every source
    reported usage. ``sources`` may open each stream only when it is asked for the next one. A failing source
    fails the whole; closing it closes the source being read."""
    usages: list[Usage | None] = []
    stream_id, last = "", None
    try:
        async for source in sources:
            index, usage = len(usages), None
            try:
                async for batch in source:
                    for chunk in batch:
                        usage = chunk.usage or usage
                    stream_id = stream_id or batch[0].id
                    last = batch[-1]
                    renumbered = [_as_choice(chunk, index, stream_id) for chunk in batch if chunk.choices]
                    if renumbered:
                        yield renumbered
            finally:
                await close_iterator(source)
            usages.append(usage)
    finally:
        await close_iterator(sources)
    reported = [u for u in usages if u is not None]
    if last is not None and len(reported) == len(usages):
        yield [ChatChunk(id=stream_id, created=last.created, model=last.model, usage=_summed_usage(reported))]
