"""One log row per logical request, for every outcome, written off the request path.

The row is built here and handed to a non-blocking sink (the storage writer's ``submit``). Bodies, headers
and error text are redacted first. Streams are logged when they end, with exactly the tokens delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelyard import errors
from modelyard.middleware.accounting import Pricer, apply_price
from modelyard.pipeline import Call, ChatStream, Handler, Outcome, StreamEnd
from modelyard.redaction import Redactor
from modelyard.storage.base import RequestLog, messages_text, response_text
from modelyard.streaming import ChunkAccumulator
from modelyard.types.chat import ChatChunk, ChatRequest, ChatResponse, ContentPart, Message
from modelyard.types.embeddings import EmbeddingResponse
from modelyard.types.usage import Usage

LogSink = Callable[[RequestLog | Callable[[], RequestLog], int], None]
"""Takes a row, or a function that builds it later (off the request path), and about how many bytes it holds."""
TextCounter = Callable[[str, str], int]
"""(model, text) -> tokens; used only when a stream ends before the provider reported usage."""


@dataclass
class _Outcome:
    status: str = "ok"
    response: ChatResponse | None = None
    usage: Usage | None = None
    error: BaseException | None = None
    ttft_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: What one delivered stream chunk keeps alive until its row is built (its text and the accumulator's entry).
CHUNK_BYTES = 128
#: A message's or a choice's own objects, beyond its text.
MESSAGE_BYTES = 512


def held_bytes(call: Call, response: ChatResponse | None = None) -> int:
    """About how much memory a queued row keeps alive: the request's and the response's text, images included.

    An estimate for bounding the writer's queue, cheap enough for every request (no serialization)."""
    size = 1024
    request = call.request
    if isinstance(request, ChatRequest):
        for message in request.messages:
            size += MESSAGE_BYTES + _content_bytes(message.content)
    if response is not None:
        for choice in response.choices:
            size += MESSAGE_BYTES + _content_bytes(choice.message.content)
    return size


def _content_bytes(content: str | list[ContentPart] | None) -> int:
    if isinstance(content, str):
        return len(content)
    if not content:
        return 0
    return sum(len(p.text or "") + (len(p.image_url.url) if p.image_url else 0) + MESSAGE_BYTES for p in content)


class LoggingMiddleware:
    """Builds the ``RequestLog`` row for each call and hands it to ``sink`` (never blocks, never drops)."""

    def __init__(
        self,
        sink: LogSink,
        redactor: Redactor,
        *,
        store_bodies: bool = True,
        count_text: TextCounter | None = None,
        pricer: Pricer | None = None,
    ) -> None:
        self.sink = sink
        self.redactor = redactor
        self.store_bodies = store_bodies
        self.count_text = count_text
        self.pricer = pricer

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        try:
            outcome = await next(call)
        except asyncio.CancelledError:
            self._emit(call, _Outcome(status="client_disconnected"))
            raise
        except BaseException as exc:
            rejected = isinstance(exc, errors.ModelyardError) and not call.attempts
            self._emit(call, _Outcome(status="rejected" if rejected else "error", error=exc))
            raise
        if isinstance(outcome, ChatResponse):
            status = "cache_hit" if outcome.modelyard and outcome.modelyard.cache_hit else "ok"
            self._emit(call, _Outcome(status=status, response=outcome, usage=outcome.usage))
            return outcome
        if isinstance(outcome, EmbeddingResponse):
            self._emit(call, _Outcome(usage=outcome.usage))
            return outcome
        return self._log_stream(call, outcome)

    def _log_stream(self, call: Call, stream: ChatStream) -> ChatStream:
        # Delivered text is collected as it passes; the row is built by the writer's task. Keeping the
        # chunk objects themselves until then cost more: hundreds of live objects per queued row for the GC.
        acc = ChunkAccumulator()
        result = _Outcome(status="client_disconnected")

        def on_first_token(chunk: ChatChunk) -> None:
            result.ttft_ms = (time.monotonic() - call.started) * 1000

        def on_end(end: StreamEnd) -> None:
            if end.completed:
                result.status = "cache_hit" if stream.info.cache_hit else "ok"
            elif end.error is not None and not isinstance(end.error, asyncio.CancelledError | GeneratorExit):
                result.status, result.error = "error", end.error
            latency = (time.monotonic() - call.started) * 1000
            self.sink(lambda: self._stream_row(call, result, acc, latency), held_bytes(call) + acc.chunks * CHUNK_BYTES)

        # The text is collected once each chunk is on its way (never between its arrival and its delivery); the
        # server does it for the last batch after writing [DONE], and hands the row over then too.
        return stream.observe(on_first_token=on_first_token).observe(
            acc.add, on_end, delivered=True, after_last_frame=True
        )

    def _stream_row(self, call: Call, result: _Outcome, acc: ChunkAccumulator, latency: float) -> RequestLog:
        """The row of a finished stream: what was delivered, with the provider's usage or exactly counted."""
        result.response = acc.response() if acc.chunks else None
        result.usage = acc.usage if result.status in ("ok", "cache_hit") else None
        result.usage = result.usage or self._delivered_usage(call, acc)
        return self._row(call, result, latency)

    def _delivered_usage(self, call: Call, acc: ChunkAccumulator) -> Usage | None:
        """Usage for a stream that ended early: the prompt estimate plus exactly the text delivered."""
        if acc.usage is not None:
            return acc.usage
        if self.count_text is None or not acc.chunks:
            return None
        model = call.info.served_model or call.request.model
        delivered = acc.response().choices[0].message if acc.response().choices else None
        text = (delivered.text() + (delivered.reasoning_content or "")) if delivered else ""
        prompt = sum(self.count_text(model, m.text()) for m in call.chat_request.messages)
        call.info.usage_estimated = True
        usage = Usage.of(prompt, self.count_text(model, text) if text else 0)
        if self.pricer is not None and call.info.cost is None:
            apply_price(call.info, usage, self.pricer)
        return usage

    def _emit(self, call: Call, result: _Outcome) -> None:
        # Only the clock is read now; the row (redaction, copies of the bodies) is built by the writer's task.
        latency = (time.monotonic() - call.started) * 1000
        self.sink(lambda: self._row(call, result, latency), held_bytes(call, result.response))

    def _row(self, call: Call, result: _Outcome, latency: float) -> RequestLog:
        info, request, usage = call.info, call.request, result.usage
        completion = usage.completion_tokens if usage else None
        message = result.response.choices[0] if result.response and result.response.choices else None
        generation_s = (latency - (result.ttft_ms or 0)) / 1000
        error = result.error
        run_id = call.options.metadata.get("run_id")
        messages, params, tools = self._request_parts(request)
        # Redacted together: one look at all of them finds nothing to mask in the common case.
        messages, response, params, tools, tool_calls, metadata = self.redactor.data_each(
            (
                messages,
                self._body(result.response),
                params,
                tools,
                self._tool_calls(message.message if message else None),
                {**(getattr(request, "metadata", None) or {}), **call.options.metadata},
            )
        )
        # Every field, each already of its type (see ``RequestLog.from_checked``).
        return RequestLog.from_checked(
            {
                "request_id": call.request_id,
                "created_at": datetime.fromtimestamp(call.created, UTC),
                "caller": call.options.caller,
                "requested_model": request.model,
                "served_model": info.served_model,
                "provider": info.provider,
                "attempts": list(info.attempts),
                "messages": messages,
                "response": response,
                "params": params,
                "tools": tools,
                "tool_calls": tool_calls,
                "finish_reason": message.finish_reason if message else None,
                "prompt_tokens": usage.prompt_tokens if usage else None,
                "completion_tokens": completion,
                "cached_tokens": usage.cached_tokens if usage else None,
                "reasoning_tokens": usage.reasoning_tokens if usage else None,
                "cost": info.cost,
                "cost_source": info.cost_source or "none",
                "billed_cost": info.billed_cost,
                "latency_ms": round(latency, 3),
                "ttft_ms": round(result.ttft_ms, 3) if result.ttft_ms is not None else None,
                "tokens_per_second": round(completion / generation_s, 2) if completion and generation_s > 0 else None,
                "status": result.status,
                "error_type": type(error).__name__ if error is not None else None,
                "error_message": self.redactor.text(str(error))[:2000] if error is not None else None,
                "stream": call.kind == "stream",
                "tags": list(dict.fromkeys(tag for tag in call.options.tags if tag)),
                "metadata": metadata,
                "conversation_id": call.options.conversation_id,
                "cache_hit": info.cache_hit,
                "fallback_used": info.fallbacks > 0,
                "run_id": str(run_id) if run_id is not None else None,
                "feedback": None,
                "prompt_text": messages_text(messages),
                "response_text": response_text(response),
            }
        )

    def _request_parts(self, request: Any) -> tuple[list[dict[str, Any]] | None, dict[str, Any], list[Any] | None]:
        """Messages, model parameters as sent (without transport details: streaming is its own column) and tools,
        from one dump of the request."""
        if not isinstance(request, ChatRequest):
            return None, {}, None
        params = request.model_dump(exclude_none=True)
        messages, tools = params.pop("messages"), params.pop("tools", None)
        for name in ("model", "stream", "stream_options"):
            params.pop(name, None)
        if not self.store_bodies:
            return None, params, None
        return messages, params, tools or None

    def _tool_calls(self, message: Message | None) -> list[Any] | None:
        if not self.store_bodies or message is None or not message.tool_calls:
            return None
        return [c.model_dump() for c in message.tool_calls]

    def _body(self, response: ChatResponse | None) -> dict[str, Any] | None:
        if not self.store_bodies or response is None:
            return None
        return response.model_dump(exclude_none=True, exclude={"modelyard"})
