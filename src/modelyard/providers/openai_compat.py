"""One adapter for every OpenAI-compatible service; the services themselves are rows in presets.yaml."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from modelyard import errors
from modelyard.errors import openai_error_parser
from modelyard.providers.base import EmbedCall, ProviderCall, ProviderContext
from modelyard.streaming import SSEDecoder, SSEEvent
from modelyard.types.chat import ChatChunk, ChatResponse
from modelyard.types.embeddings import EmbeddingResponse


class OpenAICompatProvider:
    """Speaks the OpenAI wire format to ``spec.base_url``."""

    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        self.spec = context.spec
        self.name = context.spec.name
        self.capabilities = context.spec.capabilities
        if not self.spec.base_url:
            raise errors.ConfigError(f"provider {self.name!r} needs a base_url", provider=self.name)
        self.base_url = self.spec.base_url.rstrip("/")

    def _headers(self, api_key: str | None, extra: Mapping[str, str]) -> dict[str, str]:
        headers = dict(self.spec.headers)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        headers.update(extra)
        return headers

    def _body(self, call: ProviderCall, stream: bool) -> dict[str, Any]:
        body = call.request.model_dump(exclude_none=True)
        body.pop("stream", None)
        if stream:
            body["stream"] = True
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        else:
            body.pop("stream_options", None)
        body.update(call.extra_body)
        return body

    async def chat(self, call: ProviderCall) -> ChatResponse:
        data, _ = await self.context.http.post_json(
            f"{self.base_url}/chat/completions",
            self._body(call, stream=False),
            headers=self._headers(call.api_key, call.headers),
            timeouts=call.timeouts,
            provider=self.name,
            model=call.request.model,
            parse_error=openai_error_parser,
        )
        if isinstance(data, dict) and data.get("error"):
            raise _error_in_body(data, self.name, call.request.model)
        return ChatResponse.model_validate(data)

    async def stream(self, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        async for batch in self.stream_batches(call):
            for chunk in batch:
                yield chunk

    async def stream_batches(self, call: ProviderCall) -> AsyncIterator[list[ChatChunk]]:
        """The stream, as lists of the chunks that one network read delivered (forwarded together)."""
        model = call.request.model
        async with self.context.http.stream(
            "POST",
            f"{self.base_url}/chat/completions",
            json=self._body(call, stream=True),
            headers=self._headers(call.api_key, call.headers),
            timeouts=call.timeouts,
            provider=self.name,
            model=model,
            parse_error=openai_error_parser,
        ) as body:
            progress = _Progress()
            decoder = SSEDecoder()
            async for data in body:
                batch = self._chunks(decoder.feed(data), progress, model)
                if batch:
                    yield batch
                if progress.done:
                    return
            batch = self._chunks(decoder.flush(), progress, model)
            if batch:
                yield batch
            if not progress.done and not progress.finished:
                raise errors.StreamInterruptedError(
                    f"{self.name} closed the stream without finishing ({progress.chunks} chunks received)",
                    provider=self.name,
                    model=model,
                )

    def _chunks(self, events: list[SSEEvent], progress: _Progress, model: str) -> list[ChatChunk]:
        objects: list[dict[str, Any]] = []
        for event in events:
            if event.data == "[DONE]":
                progress.done = True
                break
            if not event.data:
                continue
            data = event.json()
            if isinstance(data, dict) and data.get("error"):
                raise _error_in_body(data, self.name, model, after_output=progress.chunks + len(objects) > 0)
            objects.append(data)
        if not objects:
            return []
        batch = ChatChunk.from_wire_batch(objects)
        progress.add(batch)
        return batch

    async def embed(self, call: EmbedCall) -> EmbeddingResponse:
        if "embed" not in self.capabilities:
            raise errors.UnsupportedOperationError(
                f"{self.name} does not serve embeddings", provider=self.name, model=call.request.model
            )
        body = call.request.model_dump(exclude_none=True)
        body.update(call.extra_body)
        data, _ = await self.context.http.post_json(
            f"{self.base_url}/embeddings",
            body,
            headers=self._headers(call.api_key, call.headers),
            timeouts=call.timeouts,
            provider=self.name,
            model=call.request.model,
            parse_error=openai_error_parser,
        )
        return EmbeddingResponse.model_validate(data)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the gateway."""


def _error_in_body(
    data: dict[str, Any], provider: str, model: str, after_output: bool = False
) -> errors.ModelyardError:
    """An error object sent with HTTP 200 (in a body or mid-stream), translated by its code."""
    err = data.get("error")
    status = err.get("code") if isinstance(err, dict) else None
    status = status if isinstance(status, int) and 400 <= status < 600 else 502
    cls, message, code = openai_error_parser(status, data)
    cls = cls or errors.error_class_for_status(status)
    if after_output and (cls.retryable or issubclass(cls, errors.ProviderError)):
        # Mid-stream failures are never retried (bytes were already delivered), so report them as interruptions.
        cls = errors.StreamInterruptedError
    return cls(message or "upstream reported an error", status=status, provider=provider, model=model, code=code)


class _Progress:
    """Enough of a stream's state to tell a finished answer from a cut one, without rebuilding it."""

    __slots__ = ("_finished", "_open", "chunks", "done")

    def __init__(self) -> None:
        self.chunks = 0
        self.done = False  # [DONE] seen
        self._open: set[int] = set()
        self._finished: set[int] = set()

    def add(self, batch: list[ChatChunk]) -> None:
        self.chunks += len(batch)
        opened, finished = self._open, self._finished
        for chunk in batch:
            for choice in chunk.choices:
                opened.add(choice.index)
                if choice.finish_reason:
                    finished.add(choice.index)

    @property
    def finished(self) -> bool:
        return bool(self._open) and self._open <= self._finished
