"""A scriptable provider for tests (yours and ours): queue replies, tool calls, errors and delays.

With nothing queued, ``fake/<anything>`` echoes the last user message. Get the instance from a gateway with
``gateway.provider("fake")`` and script it::

    fake.queue(FakeReply(text="hi"))                       # next call to any fake model
    fake.queue(FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]), model="planner")
    fake.queue(FakeReply(error=RateLimitError("slow down", retry_after=1)))
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelyard import errors
from modelyard.providers.base import EmbedCall, ProviderCall, ProviderContext
from modelyard.types.chat import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    Message,
    ToolCall,
    ToolCallDelta,
)
from modelyard.types.embeddings import Embedding, EmbeddingResponse
from modelyard.types.usage import Usage

EMBEDDING_DIMENSIONS = 16


@dataclass
class FakeReply:
    """One scripted answer. ``error`` is raised instead of answering; ``cut_after`` breaks a stream."""

    text: str | None = None
    reasoning: str | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    error: errors.ModelyardError | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def count_words(text: str) -> int:
    """The fake's tokenizer: one token per whitespace-separated word."""
    return len(text.split())


class FakeProvider:
    """Answers from a queue of ``FakeReply`` (per model or for any model), else echoes."""

    def __init__(self, context: ProviderContext) -> None:
        self.name = context.spec.name
        self.capabilities = context.spec.capabilities
        self._queues: dict[str | None, deque[FakeReply]] = defaultdict(deque)
        self.calls: list[ProviderCall] = []

    def queue(self, *replies: FakeReply, model: str | None = None) -> None:
        """Queue replies for ``model`` (the part after ``fake/``), or for any model when None."""
        self._queues[model].extend(replies)

    def clear(self) -> None:
        self._queues.clear()
        self.calls.clear()

    def _next(self, call: ProviderCall) -> FakeReply:
        for key in (call.request.model, None):
            if self._queues.get(key):
                return self._queues[key].popleft()
        last_user = next((m for m in reversed(call.request.messages) if m.role == "user"), None)
        return FakeReply(text=last_user.text() if last_user else "")

    async def _begin(self, call: ProviderCall) -> FakeReply:
        self.calls.append(call)
        reply = self._next(call)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.error is not None:
            raise reply.error
        return reply

    def _usage(self, call: ProviderCall, reply: FakeReply, text: str) -> Usage:
        if reply.usage is not None:
            return reply.usage
        prompt = sum(count_words(m.text()) for m in call.request.messages)
        return Usage.of(prompt, count_words(text) + count_words(reply.reasoning or ""))

    async def chat(self, call: ProviderCall) -> ChatResponse:
        reply = await self._begin(call)
        text = reply.text or ""
        calls = [_tool_call(i, name, args) for i, (name, args) in enumerate(reply.tool_calls)]
        message = Message(
            role="assistant",
            content=text if text or not calls else None,
            reasoning_content=reply.reasoning,
            tool_calls=calls or None,
        )
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        return ChatResponse(
            model=call.request.model,
            choices=[Choice(index=i, message=message, finish_reason=finish) for i in range(call.request.n or 1)],
            usage=self._usage(call, reply, text),
            **reply.extra,
        )

    async def stream(self, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        reply = await self._begin(call)
        text = reply.text or ""
        chunk_id = f"chatcmpl-fake{uuid.uuid4().hex[:12]}"
        deltas = _deltas(reply, text)
        for sent, delta in enumerate(deltas):
            if reply.cut_after is not None and sent >= reply.cut_after:
                raise errors.StreamInterruptedError(
                    f"fake stream cut after {sent} chunks", provider=self.name, model=call.request.model
                )
            yield ChatChunk(id=chunk_id, model=call.request.model, choices=[ChunkChoice(delta=delta)])
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        yield ChatChunk(id=chunk_id, model=call.request.model, choices=[ChunkChoice(finish_reason=finish)])
        yield ChatChunk(id=chunk_id, model=call.request.model, usage=self._usage(call, reply, text))

    async def embed(self, call: EmbedCall) -> EmbeddingResponse:
        texts = call.request.texts()
        data = [Embedding(index=i, embedding=_vector(t)) for i, t in enumerate(texts)]
        tokens = sum(count_words(t) for t in texts)
        return EmbeddingResponse(data=data, model=call.request.model, usage=Usage.of(tokens, 0))

    async def aclose(self) -> None:
        """Nothing to release."""


def _tool_call(index: int, name: str, args: dict[str, Any] | str) -> ToolCall:
    arguments = args if isinstance(args, str) else orjson.dumps(args).decode()
    return ToolCall(id=f"call_fake{index}", function=FunctionCall(name=name, arguments=arguments))


def _deltas(reply: FakeReply, text: str) -> list[Delta]:
    deltas = [Delta(role="assistant", content="")]
    if reply.reasoning:
        deltas += [Delta(reasoning_content=w) for w in _pieces(reply.reasoning)]
    deltas += [Delta(content=w) for w in _pieces(text)]
    for i, (name, args) in enumerate(reply.tool_calls):
        call = _tool_call(i, name, args)
        deltas.append(
            Delta(
                tool_calls=[ToolCallDelta(index=i, id=call.id, type="function", function=FunctionCallDelta(name=name))]
            )
        )
        for piece in _halves(call.function.arguments):
            deltas.append(Delta(tool_calls=[ToolCallDelta(index=i, function=FunctionCallDelta(arguments=piece))]))
    return deltas


def _pieces(text: str) -> list[str]:
    """Split text into word-sized chunks that join back to exactly ``text``."""
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words) if w or i < len(words) - 1]


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [p for p in (text[:middle], text[middle:]) if p]


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b / 255 for b in digest[:EMBEDDING_DIMENSIONS]]
