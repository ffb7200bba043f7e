"""``AsyncClient``: one interface to every model, in-process or through a modelyard server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from modelyard.config import Settings, load_settings
from modelyard.errors import NotFoundError
from modelyard.pipeline import CallOptions, ChatStream
from modelyard.sdk.remote import RemoteTransport
from modelyard.sdk.transport import InProcessTransport, Transport
from modelyard.storage.base import Conversation
from modelyard.types.chat import ChatChunk, ChatRequest, ChatResponse, Message
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelyard.types.models import ModelInfo
from modelyard.types.validation import parse_model

MessagesInput = Sequence[Message | dict[str, Any]]


def build_options(
    *,
    timeout: float | None = None,
    max_retries: int | None = None,
    fallbacks: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    extra_headers: dict[str, str] | None = None,
    extra_body: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    conversation_id: str | None = None,
) -> CallOptions:
    return CallOptions(
        timeout=timeout,
        max_retries=max_retries,
        fallbacks=list(fallbacks) if fallbacks is not None else None,
        metadata=dict(metadata or {}),
        extra_headers=dict(extra_headers or {}),
        extra_body=dict(extra_body or {}),
        tags=list(tags or []),
        conversation_id=conversation_id,
    )


class StreamHandle:
    """A stream that starts on first use; iterate it, or use it as an async context manager.

    The upstream connection is always released: at the end, on error, on ``break`` inside ``async with``,
    or on ``aclose()``.
    """

    def __init__(self, transport: Transport, request: ChatRequest, options: CallOptions) -> None:
        self._transport = transport
        self._request = request
        self._options = options
        self._stream: ChatStream | None = None

    async def start(self) -> ChatStream:
        if self._stream is None:
            self._stream = await self._transport.stream(self._request, self._options)
        return self._stream

    @property
    def info(self) -> Any:
        """What modelyard reports about the stream (served model, attempts) once started."""
        return self._stream.info if self._stream is not None else None

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChatChunk]:
        stream = await self.start()
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    async def __aenter__(self) -> StreamHandle:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncClient:
    """Async SDK. ``AsyncClient()`` runs an in-process gateway; ``AsyncClient(base_url=...)`` uses a server."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        gateway: Any = None,
        **overrides: Any,
    ) -> None:
        if base_url is not None:
            self._transport: Transport = RemoteTransport(base_url, api_key)
        else:
            if settings is None and gateway is None:
                settings = load_settings(**overrides)
            self._transport = InProcessTransport(settings, gateway)
        self.settings = settings

    @property
    def gateway(self) -> Any:
        """The in-process ``Gateway`` (for scripting the fake provider, reading stores…)."""
        if not isinstance(self._transport, InProcessTransport):
            raise AttributeError("a remote client has no in-process gateway")
        return self._transport.gateway

    def _request(self, model: str | None, messages: MessagesInput, params: dict[str, Any]) -> ChatRequest:
        default = self.settings.default_model if self.settings else "local/smollm2"
        data = {"model": model or default, "messages": [_plain(m) for m in messages], **params}
        return parse_model(ChatRequest, data)

    async def chat(self, model: str | None = None, messages: MessagesInput = (), **kwargs: Any) -> ChatResponse:
        """A complete chat completion. Extra keyword arguments are OpenAI parameters or call options
        (``timeout``, ``max_retries``, ``fallbacks``, ``metadata``, ``extra_headers``, ``extra_body``, ``tags``)."""
        options, params = _split(kwargs)
        return await self._transport.chat(self._request(model, messages, params), options)

    def stream(self, model: str | None = None, messages: MessagesInput = (), **kwargs: Any) -> StreamHandle:
        """A stream of ``ChatChunk``: ``async for chunk in client.stream(...)`` or ``async with``."""
        options, params = _split(kwargs)
        return StreamHandle(self._transport, self._request(model, messages, params), options)

    async def embed(self, input: str | list[str], model: str | None = None, **kwargs: Any) -> EmbeddingResponse:
        options, params = _split(kwargs)
        default = self.settings.default_embedding_model if self.settings else "local/smollm2"
        request = parse_model(EmbeddingRequest, {"model": model or default, "input": input, **params})
        return await self._transport.embed(request, options)

    async def models(self) -> list[ModelInfo]:
        """Models usable with the current keys."""
        return await self._transport.models()

    async def create_conversation(
        self, *, title: str = "", model: str | None = None, system_prompt: str | None = None
    ) -> Conversation:
        """Start a saved conversation; pass its ``id`` as ``conversation_id=`` to chat in it."""
        conversation = Conversation(title=title, model=model, system_prompt=system_prompt)
        return await self._transport.create_conversation(conversation)

    async def conversation(self, conversation_id: str) -> Conversation | None:
        """A saved conversation with its messages (reasoning and tool calls included)."""
        return await self._transport.get_conversation(conversation_id)

    async def fork_conversation(self, conversation_id: str, at_message: int) -> Conversation:
        """A copy of a conversation up to and including message ``at_message``; continue it on any model."""
        forked = await self._transport.fork_conversation(conversation_id, at_message)
        if forked is None:
            raise NotFoundError(f"no conversation {conversation_id!r}", param="conversation_id")
        return forked

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_OPTION_NAMES = {
    "timeout",
    "max_retries",
    "fallbacks",
    "metadata",
    "extra_headers",
    "extra_body",
    "tags",
    "conversation_id",
}


def _split(kwargs: dict[str, Any]) -> tuple[CallOptions, dict[str, Any]]:
    options = {k: v for k, v in kwargs.items() if k in _OPTION_NAMES}
    params = {k: v for k, v in kwargs.items() if k not in _OPTION_NAMES}
    if "metadata" in options:
        params["metadata"] = options["metadata"]
    return build_options(**options), params


def _plain(message: Message | dict[str, Any]) -> dict[str, Any]:
    return message.model_dump(exclude_none=True) if isinstance(message, Message) else message
