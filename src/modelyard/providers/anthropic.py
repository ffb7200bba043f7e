"""The Anthropic Messages API adapter: OpenAI chat format in, ``POST /v1/messages`` on the wire.

Translation lives in ``anthropic_wire``; this module sends requests and turns the SSE event stream
(message_start, content_block_*, message_delta, message_stop, ping, error) back into ``ChatChunk``s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelyard import errors
from modelyard.providers import anthropic_wire as wire
from modelyard.providers.base import EmbedCall, ProviderCall, ProviderContext
from modelyard.streaming import iter_sse
from modelyard.types.chat import (
    ChatChunk,
    ChatResponse,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
)
from modelyard.types.embeddings import EmbeddingResponse

API_VERSION = "2023-06-01"


class AnthropicProvider:
    """Claude models through the Messages API, over the Gateway's shared HTTP client."""

    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        self.name = context.spec.name
        self.capabilities = context.spec.capabilities
        options = context.spec.options
        self.api_version = str(options.get("anthropic_version", API_VERSION))
        self.default_max_tokens = int(options.get("default_max_tokens", wire.DEFAULT_MAX_TOKENS))

    @property
    def url(self) -> str:
        """``{base_url}/v1/messages`` (a base URL that already ends in ``/v1`` is accepted too)."""
        base = self.context.spec.base_url
        if not base:
            raise errors.ConfigError(f"provider {self.name!r} has no base_url", provider=self.name)
        base = base.rstrip("/")
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def headers(self, call: ProviderCall) -> dict[str, str]:
        """Version, row headers, per-call headers (request id, user extras), then the key."""
        headers = {"anthropic-version": self.api_version, **self.context.spec.headers, **call.headers}
        if call.api_key:
            headers["x-api-key"] = call.api_key
        return headers

    def body(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        """The wire body: the translated request, then ``extra_body`` merged over it."""
        body = wire.request_body(call.request, self.default_max_tokens)
        body.update(call.extra_body)
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return body

    async def chat(self, call: ProviderCall) -> ChatResponse:
        """One complete Messages API call."""
        model = call.request.model
        data, _ = await self.context.http.post_json(
            self.url,
            self.body(call, stream=False),
            headers=self.headers(call),
            timeouts=call.timeouts,
            provider=self.name,
            model=model,
            parse_error=wire.parse_error,
        )
        try:
            return wire.chat_response(data, model)
        except errors.ModelyardError as exc:
            exc.provider = self.name
            raise

    async def stream(self, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        """Stream the answer; the final chunk carries the finish reason and the complete usage."""
        model = call.request.model
        state = _StreamState(provider=self.name, model=model)
        async with self.context.http.stream(
            "POST",
            self.url,
            json=self.body(call, stream=True),
            headers={**self.headers(call), "Accept": "text/event-stream"},
            timeouts=call.timeouts,
            provider=self.name,
            model=model,
            parse_error=wire.parse_error,
        ) as body:
            async for event in iter_sse(body):
                chunk = state.handle(event.event, event.data)
                if chunk is not None:
                    yield chunk
        if not state.finished:
            raise errors.StreamInterruptedError(
                "Anthropic stream ended before message_stop", provider=self.name, model=model
            )

    async def embed(self, call: EmbedCall) -> EmbeddingResponse:
        """Anthropic has no embeddings endpoint."""
        raise errors.UnsupportedOperationError(
            f"{self.name} does not offer embeddings", provider=self.name, model=call.request.model
        )

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the Gateway."""


@dataclass
class _StreamState:
    """Folds Anthropic stream events into OpenAI chunks (at most one chunk per event)."""

    provider: str
    model: str
    id: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    finished: bool = False
    tools: dict[int, int] = field(default_factory=dict)  # content block index -> tool call ordinal
    tool_args: set[int] = field(default_factory=set)  # blocks that sent argument text

    def handle(self, name: str | None, raw: str) -> ChatChunk | None:
        """Dispatch one SSE event by its ``type``."""
        if not raw:
            return None
        try:
            data: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            message = f"Anthropic sent a malformed stream event: {raw[:200]!r}"
            raise errors.ProviderError(message, provider=self.provider, model=self.model) from exc
        kind = data.get("type", name) if isinstance(data, dict) else name
        if kind == "error":
            raise wire.stream_error(data, self.provider, self.model)
        if self.finished or not isinstance(data, dict):
            return None
        handler = _HANDLERS.get(kind or "")
        return handler(self, data) if handler is not None else None  # ping and unknown events: ignored

    def chunk(self, delta: Delta, finish_reason: str | None = None) -> ChatChunk:
        return ChatChunk(id=self.id, model=self.model, choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)])

    def tool_delta(self, index: int, arguments: str) -> ChatChunk:
        self.tool_args.add(index)
        call = ToolCallDelta(index=self.tools[index], function=FunctionCallDelta(arguments=arguments))
        return self.chunk(Delta(tool_calls=[call]))

    def message_start(self, data: dict[str, Any]) -> ChatChunk:
        message = data.get("message") or {}
        self.id = message.get("id") or self.id
        self.model = message.get("model") or self.model
        self.usage.update(message.get("usage") or {})
        return self.chunk(Delta(role="assistant", content=""))

    def block_start(self, data: dict[str, Any]) -> ChatChunk | None:
        block = data.get("content_block") or {}
        index = int(data.get("index", 0))
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return self.chunk(Delta(content=block["text"]))
        if kind == "thinking" and block.get("thinking"):
            return self.chunk(Delta(reasoning_content=block["thinking"]))
        if kind != "tool_use":
            return None
        self.tools[index] = len(self.tools)
        arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
        if arguments:
            self.tool_args.add(index)
        function = FunctionCallDelta(name=block.get("name"), arguments=arguments)
        call = ToolCallDelta(index=self.tools[index], id=block.get("id"), type="function", function=function)
        return self.chunk(Delta(tool_calls=[call]))

    def block_delta(self, data: dict[str, Any]) -> ChatChunk | None:
        delta = data.get("delta") or {}
        index = int(data.get("index", 0))
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self.chunk(Delta(content=delta["text"]))
        if kind == "thinking_delta" and delta.get("thinking"):
            return self.chunk(Delta(reasoning_content=delta["thinking"]))
        if kind == "signature_delta" and delta.get("signature"):
            return self.chunk(Delta.model_validate({wire.SIGNATURE_FIELD: delta["signature"]}))
        if kind == "input_json_delta" and delta.get("partial_json") and index in self.tools:
            return self.tool_delta(index, delta["partial_json"])
        return None  # citations and other deltas have no OpenAI counterpart

    def block_stop(self, data: dict[str, Any]) -> ChatChunk | None:
        index = int(data.get("index", 0))
        if index in self.tools and index not in self.tool_args:
            return self.tool_delta(index, "{}")  # a tool without input still gets valid JSON arguments
        return None

    def message_delta(self, data: dict[str, Any]) -> None:
        self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
        self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})

    def message_stop(self, data: dict[str, Any]) -> ChatChunk:
        self.finished = True
        chunk = self.chunk(Delta(), wire.finish_reason(self.stop_reason) or "stop")
        chunk.usage = wire.usage_from(self.usage)
        return chunk


_HANDLERS: dict[str, Callable[[_StreamState, dict[str, Any]], ChatChunk | None]] = {
    "message_start": _StreamState.message_start,
    "content_block_start": _StreamState.block_start,
    "content_block_delta": _StreamState.block_delta,
    "content_block_stop": _StreamState.block_stop,
    "message_delta": _StreamState.message_delta,
    "message_stop": _StreamState.message_stop,
}
