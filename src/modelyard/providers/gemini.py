"""The Google Gemini adapter: ``generateContent``, ``streamGenerateContent`` (SSE) and ``batchEmbedContents``.

The key travels in the ``x-goog-api-key`` header, never in the URL (``?key=`` ends up in access logs).
Translation lives in ``gemini_wire``; this module does the HTTP and rebuilds streams as ``ChatChunk`` deltas.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from modelyard import errors
from modelyard.providers import gemini_wire as wire
from modelyard.providers.base import EmbedCall, ProviderCall, ProviderContext
from modelyard.streaming import iter_sse
from modelyard.types.chat import (
    ChatChunk,
    ChatResponse,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCall,
    ToolCallDelta,
    new_completion_id,
)
from modelyard.types.embeddings import Embedding, EmbeddingResponse
from modelyard.types.usage import Usage

KEY_HEADER = "x-goog-api-key"

ERROR_STATUSES: dict[str, type[errors.ModelyardError]] = {
    "INVALID_ARGUMENT": errors.BadRequestError,
    "FAILED_PRECONDITION": errors.BadRequestError,
    "OUT_OF_RANGE": errors.BadRequestError,
    "UNAUTHENTICATED": errors.AuthenticationError,
    "PERMISSION_DENIED": errors.PermissionDeniedError,
    "NOT_FOUND": errors.NotFoundError,
    "RESOURCE_EXHAUSTED": errors.RateLimitError,
    "INTERNAL": errors.ProviderError,
    "UNAVAILABLE": errors.ServiceUnavailableError,
    "DEADLINE_EXCEEDED": errors.TimeoutError,
}
ERROR_REASONS: dict[str, type[errors.ModelyardError]] = {"API_KEY_INVALID": errors.AuthenticationError}


def model_path(model: str) -> str:
    """``gemini-2.5-flash`` -> ``models/gemini-2.5-flash`` (``models/x`` and ``tunedModels/x`` stay)."""
    path = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
    return quote(path, safe="/")


def _add_retry_delay(exc: errors.ModelyardError) -> None:
    """Google puts the wait in the body (``RetryInfo.retryDelay``), not in a ``Retry-After`` header."""
    if exc.retry_after is None:
        exc.retry_after = retry_delay(exc.body)


class GeminiProvider:
    """Speaks the Gemini API (``generativelanguage.googleapis.com/v1beta``) at ``spec.base_url``."""

    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        self.spec = context.spec
        self.name = context.spec.name
        self.capabilities = context.spec.capabilities
        if not self.spec.base_url:
            raise errors.ConfigError(f"provider {self.name!r} needs a base_url", provider=self.name)
        self.base_url = self.spec.base_url.rstrip("/")

    def _headers(self, api_key: str | None, extra: Mapping[str, str]) -> dict[str, str]:
        headers = {**self.spec.headers, **extra}
        headers = {k: v for k, v in headers.items() if k.lower() != KEY_HEADER}
        if api_key:
            headers[KEY_HEADER] = api_key
        return headers

    def _body(self, call: ProviderCall) -> dict[str, Any]:
        return wire.merge_extra(wire.request_body(call.request, self.spec.options), call.extra_body)

    async def chat(self, call: ProviderCall) -> ChatResponse:
        """One ``generateContent`` call."""
        model = call.request.model
        try:
            data, _ = await self.context.http.post_json(
                f"{self.base_url}/{model_path(model)}:generateContent",
                self._body(call),
                headers=self._headers(call.api_key, call.headers),
                timeouts=call.timeouts,
                provider=self.name,
                model=model,
                parse_error=parse_error,
            )
        except errors.ModelyardError as exc:
            _add_retry_delay(exc)
            raise
        if error_object(data) is not None:
            raise error_from_body(data, self.name, model)
        return wire.chat_response(data, model, self.name)

    async def stream(self, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        """``streamGenerateContent?alt=sse``: every event is a whole response; emit its parts as deltas."""
        model = call.request.model
        state = _StreamState(self.name, model)
        try:
            async with self.context.http.stream(
                "POST",
                f"{self.base_url}/{model_path(model)}:streamGenerateContent?alt=sse",
                json=self._body(call),
                headers=self._headers(call.api_key, call.headers),
                timeouts=call.timeouts,
                provider=self.name,
                model=model,
                parse_error=parse_error,
            ) as body:
                async for event in iter_sse(body):
                    if not event.data or event.data == "[DONE]":
                        continue
                    chunk = state.on_event(state.decode(event.data))
                    if chunk is not None:
                        yield chunk
        except errors.ModelyardError as exc:
            _add_retry_delay(exc)
            raise
        for chunk in state.close():
            yield chunk

    async def embed(self, call: EmbedCall) -> EmbeddingResponse:
        """``batchEmbedContents``: one request per input text."""
        model = call.request.model
        if "embed" not in self.capabilities:
            raise errors.UnsupportedOperationError(
                f"{self.name} does not serve embeddings", provider=self.name, model=model
            )
        try:
            texts = call.request.texts()
        except ValueError as exc:
            raise errors.BadRequestError(str(exc), provider=self.name, model=model, param="input") from exc
        path = model_path(model)
        item: dict[str, Any] = {"model": path}
        if call.request.dimensions:
            item["outputDimensionality"] = call.request.dimensions
        item.update(call.extra_body)  # e.g. taskType, title
        body = {"requests": [{**item, "content": {"parts": [{"text": text}]}} for text in texts]}
        try:
            data, _ = await self.context.http.post_json(
                f"{self.base_url}/{path}:batchEmbedContents",
                body,
                headers=self._headers(call.api_key, call.headers),
                timeouts=call.timeouts,
                provider=self.name,
                model=model,
                parse_error=parse_error,
            )
        except errors.ModelyardError as exc:
            _add_retry_delay(exc)
            raise
        return _embeddings(data, model, call.request.encoding_format, self.name)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the gateway."""


def _embeddings(data: Any, model: str, encoding: str | None, provider: str) -> EmbeddingResponse:
    items = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise errors.ProviderError("Gemini answered without embeddings", provider=provider, model=model, body=data)
    out: list[Embedding] = []
    for index, item in enumerate(items):
        values = [float(v) for v in (item.get("values") or [])] if isinstance(item, dict) else []
        vector: list[float] | str = values
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        out.append(Embedding(index=index, embedding=vector))
    usage = wire.usage_from(data.get("usageMetadata")) or Usage()
    return EmbeddingResponse(data=out, model=model, usage=usage)


@dataclass
class _Candidate:
    started: bool = False
    tool_calls: int = 0
    finished: bool = False


class _StreamState:
    """Turns a sequence of ``GenerateContentResponse`` events into ``ChatChunk`` deltas."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.id = ""
        self.candidates: dict[int, _Candidate] = {}
        self.usage: Usage | None = None
        self.sent_usage: Usage | None = None
        self.emitted = False  # any output went out (after that, failures are interruptions)

    @property
    def finished(self) -> bool:
        return bool(self.candidates) and all(c.finished for c in self.candidates.values())

    def decode(self, raw: str) -> Any:
        """One event's JSON; garbage is a provider fault (an interruption once output went out)."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            cls = errors.StreamInterruptedError if self.emitted else errors.ProviderError
            raise cls(
                f"{self.provider} sent an event that is not JSON: {raw[:200]!r}",
                provider=self.provider,
                model=self.model,
            ) from exc

    def on_event(self, data: Any) -> ChatChunk | None:
        """One SSE event -> one chunk (or nothing for an event without candidates)."""
        if not isinstance(data, dict) or error_object(data) is not None:
            raise error_from_body(data, self.provider, self.model, after_output=self.emitted)
        response_id = data.get("responseId")
        self.id = self.id or (response_id if isinstance(response_id, str) else "")
        self.usage = wire.usage_from(data.get("usageMetadata")) or self.usage
        wire.check_prompt_blocked(data, self.provider, self.model)
        candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
        if not candidates:
            return None
        choices = [self._choice(candidate, position) for position, candidate in enumerate(candidates)]
        chunk = ChatChunk(id=self._chunk_id(), model=self.model, choices=choices)
        if self.finished:
            chunk.usage = self.sent_usage = self.usage
        self.emitted = True
        return chunk

    def _chunk_id(self) -> str:
        self.id = self.id or new_completion_id()
        return self.id

    def _choice(self, candidate: dict[str, Any], position: int) -> ChunkChoice:
        index = candidate.get("index", position)
        state = self.candidates.setdefault(index, _Candidate())
        if not self.emitted and wire.is_blocked_empty(candidate):
            raise errors.ContentPolicyError(
                f"Gemini withheld the answer ({candidate.get('finishReason')})",
                provider=self.provider,
                model=self.model,
                body=candidate,
            )
        texts, thoughts, calls = wire.candidate_parts(candidate)
        delta = Delta(content="".join(texts) or None, reasoning_content="".join(thoughts) or None)
        if not state.started:
            delta.role = "assistant"
            state.started = True
        if calls:
            delta.tool_calls = [_call_delta(state.tool_calls + i, call) for i, call in enumerate(calls)]
            state.tool_calls += len(calls)
        finish = wire.finish_reason(candidate.get("finishReason"), state.tool_calls > 0)
        state.finished = state.finished or finish is not None
        logprobs = wire.logprobs_from(candidate.get("logprobsResult"))
        return ChunkChoice(index=index, delta=delta, finish_reason=finish, logprobs=logprobs)

    def close(self) -> list[ChatChunk]:
        """End of the SSE stream: a trailing usage chunk if the usage changed, or an error if unfinished."""
        if not self.finished:
            raise errors.StreamInterruptedError(
                f"{self.provider} closed the stream before any candidate finished",
                provider=self.provider,
                model=self.model,
            )
        if self.usage is not None and self.usage != self.sent_usage:
            return [ChatChunk(id=self._chunk_id(), model=self.model, choices=[], usage=self.usage)]
        return []


def _call_delta(index: int, call: ToolCall) -> ToolCallDelta:
    fields: dict[str, Any] = {
        "index": index,
        "id": call.id,
        "type": "function",
        "function": FunctionCallDelta(name=call.function.name, arguments=call.function.arguments),
    }
    extra = (call.model_extra or {}).get("extra_content")
    if extra is not None:
        fields["extra_content"] = extra
    return ToolCallDelta.model_validate(fields)


# ---------------------------------------------------------------- errors


def error_object(body: Any) -> dict[str, Any] | None:
    """The ``error`` object of a Google error envelope, if ``body`` is one."""
    if isinstance(body, list) and body:
        body = body[0]  # some Google endpoints wrap the envelope in a list
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else None


def parse_error(status: int, body: Any) -> tuple[type[errors.ModelyardError] | None, str | None, str | None]:
    """Read Google's error envelope: the class comes from ``details[].reason``, then ``error.status``."""
    err = error_object(body)
    if err is None:
        return None, None, None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    details = err.get("details")
    items = details if isinstance(details, list) else []
    reasons = [d.get("reason") for d in items if isinstance(d, dict)]
    cls = next((ERROR_REASONS[r] for r in reasons if r in ERROR_REASONS), None)
    return cls or ERROR_STATUSES.get(str(err.get("status"))), message, None


def retry_delay(body: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "37s"``), if the error carries one."""
    details = (error_object(body) or {}).get("details")
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        match = re.fullmatch(r"(\d+(?:\.\d+)?)s", delay) if isinstance(delay, str) else None
        if match:
            return float(match.group(1))
    return None


def error_from_body(data: Any, provider: str, model: str, after_output: bool = False) -> errors.ModelyardError:
    """An error envelope sent with HTTP 200 (mid-stream), translated like an HTTP error."""
    err = error_object(data) or {}
    status = err.get("code")
    status = status if isinstance(status, int) and 400 <= status < 600 else 502
    cls, message, code = parse_error(status, data)
    cls = cls or errors.error_class_for_status(status)
    if after_output and (cls.retryable or issubclass(cls, errors.ProviderError)):
        cls = errors.StreamInterruptedError  # output already went out: never retried, reported as cut short
    return cls(
        message or "Gemini reported an error",
        status=status,
        provider=provider,
        model=model,
        code=code,
        retry_after=retry_delay(data),
        body=data,
    )
