"""``AsyncClient``: one interface to every model, in-process or through a modelyard server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from modelyard import errors
from modelyard.config import Settings, load_settings
from modelyard.errors import NotFoundError
from modelyard.pipeline import CallOptions, ChatStream
from modelyard.sdk.admin import Admin
from modelyard.sdk.pacing import paced
from modelyard.sdk.remote import RemoteTransport
from modelyard.sdk.transport import InProcessTransport, Transport
from modelyard.storage.base import Conversation
from modelyard.types.chat import ChatChunk, ChatRequest, ChatResponse, Message
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelyard.types.models import ModelInfo
from modelyard.types.validation import parse_model

T = TypeVar("T")

if TYPE_CHECKING:
    from modelyard.agent import Decision, RunResult

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

    def __init__(self, opener: Callable[[], Awaitable[ChatStream]]) -> None:
        self._opener = opener
        self._stream: ChatStream | None = None

    async def start(self) -> ChatStream:
        """Open the stream (the request is sent now); calling it again returns the same stream."""
        if self._stream is None:
            self._stream = await self._opener()
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


#: What a client falls back to when a server will not say its default model (a key without admin rights).
FALLBACK_DEFAULT_MODEL = str(Settings.model_fields["default_model"].default)
FALLBACK_DEFAULT_EMBEDDING_MODEL = str(Settings.model_fields["default_embedding_model"].default)
DEFAULT_TIMEOUT = float(Settings.model_fields["timeout"].default)


class AsyncClient:
    """Async SDK. ``AsyncClient()`` runs an in-process gateway; ``AsyncClient(base_url=...)`` uses a server.

    ``pace_on_rate_limit=True`` makes ``chat``, ``stream`` and ``embed`` wait out a rate limit that says when to
    come back (a 429 with ``Retry-After``) and try again, within the call's ``timeout``, instead of raising
    ``RateLimitError`` at once (see ``modelyard.sdk.pacing``).

    Example::

        async with AsyncClient() as client:
            response = await client.chat("local/smollm2", [{"role": "user", "content": "hi"}], max_tokens=20)
            async for chunk in client.stream("local/smollm2", [{"role": "user", "content": "a haiku"}]):
                print(chunk.text, end="")
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        gateway: Any = None,
        pace_on_rate_limit: bool = False,
        **overrides: Any,
    ) -> None:
        if base_url is not None:
            self._transport: Transport = RemoteTransport(base_url, api_key)
        else:
            if settings is None and gateway is None:
                settings = load_settings(**overrides)
            self._transport = InProcessTransport(settings, gateway)
        self.settings = settings
        self.pace_on_rate_limit = pace_on_rate_limit
        self._admin: Admin | None = None
        self._default_models: tuple[str, str] | None = None

    @property
    def gateway(self) -> Any:
        """The in-process ``Gateway`` (for scripting the fake provider, reading stores…)."""
        if not isinstance(self._transport, InProcessTransport):
            raise AttributeError("a remote client has no in-process gateway")
        return self._transport.gateway

    @property
    def remote(self) -> bool:
        """Whether this client talks to a modelyard server (``base_url``) rather than an in-process gateway."""
        return isinstance(self._transport, RemoteTransport)

    @property
    def admin(self) -> Admin:
        """Logs, cost, conversations, system prompts, templates and keys: the same methods in-process and remote.

        Remote, they use the server's admin API, which needs the server's master key as ``api_key``.
        """
        if self._admin is None:
            if isinstance(self._transport, RemoteTransport):
                from modelyard.sdk.admin_remote import RemoteAdmin

                self._admin = RemoteAdmin(self._transport)
            else:
                from modelyard.sdk.admin_local import InProcessAdmin

                transport = self._transport
                assert isinstance(transport, InProcessTransport)
                self._admin = InProcessAdmin(lambda: transport.gateway)
        return self._admin

    async def default_model(self) -> str:
        """The model used when a call names none: the gateway's ``default_model`` (a server's, when remote).

        A server that will not tell (a key without admin rights) leaves the built-in default.
        """
        return (await self._defaults())[0]

    async def _defaults(self) -> tuple[str, str]:
        """(default chat model, default embedding model) of the gateway, asked once."""
        if self._default_models is None:
            settings = self.settings
            if settings is None and not self.remote:
                settings = self.gateway.settings
            if settings is not None:
                self._default_models = (settings.default_model, settings.default_embedding_model)
            else:
                try:
                    info = await self.admin.info()
                    self._default_models = (info.default_model, info.default_embedding_model)
                except (errors.AuthenticationError, errors.PermissionDeniedError):
                    self._default_models = (FALLBACK_DEFAULT_MODEL, FALLBACK_DEFAULT_EMBEDDING_MODEL)
        return self._default_models

    async def warm_up(self) -> None:
        """Open what the first call would open (the database in-process, the connection remote), so that
        timings taken afterwards measure the models rather than the start-up."""
        if self.remote:
            await self.admin.ready()
        else:
            await self.gateway.stores()

    def _deadline(self) -> float:
        return self.settings.timeout if self.settings is not None else DEFAULT_TIMEOUT

    async def _request(self, model: str | None, messages: MessagesInput, params: dict[str, Any]) -> ChatRequest:
        data = {"model": model or await self.default_model(), "messages": [_plain(m) for m in messages], **params}
        return parse_model(ChatRequest, data)

    async def chat(self, model: str | None = None, messages: MessagesInput = (), **kwargs: Any) -> ChatResponse:
        """A complete chat completion. Extra keyword arguments are OpenAI parameters or call options
        (``timeout``, ``max_retries``, ``fallbacks``, ``metadata``, ``extra_headers``, ``extra_body``, ``tags``,
        ``conversation_id``).

        With ``pace_on_rate_limit`` a rate limit that says when to come back is waited out (within ``timeout``)
        and the call made again; otherwise it raises ``RateLimitError`` with ``retry_after`` set.
        """
        options, params = _split(kwargs)
        request = await self._request(model, messages, params)
        return await self._call(lambda o: self._transport.chat(request, o), options)

    def stream(self, model: str | None = None, messages: MessagesInput = (), **kwargs: Any) -> StreamHandle:
        """A stream of ``ChatChunk``: ``async for chunk in client.stream(...)`` or ``async with``.

        Nothing is sent until the stream is first used. With ``pace_on_rate_limit`` a rate limit before the
        first chunk is waited out as in ``chat``; once chunks flow, nothing is retried.
        """
        options, params = _split(kwargs)

        async def opener() -> ChatStream:
            request = await self._request(model, messages, params)
            return await self._call(lambda o: self._transport.stream(request, o), options)

        return StreamHandle(opener)

    async def embed(self, input: str | list[str], model: str | None = None, **kwargs: Any) -> EmbeddingResponse:
        """Embeddings of ``input``; rate limits are paced as in ``chat`` when ``pace_on_rate_limit`` is set."""
        options, params = _split(kwargs)
        chosen = model or (await self._defaults())[1]
        request = parse_model(EmbeddingRequest, {"model": chosen, "input": input, **params})
        return await self._call(lambda o: self._transport.embed(request, o), options)

    async def _call(self, attempt: Callable[[CallOptions], Awaitable[T]], options: CallOptions) -> T:
        if not self.pace_on_rate_limit:
            return await attempt(options)
        return await paced(attempt, options, self._deadline())

    async def models(self) -> list[ModelInfo]:
        """Models usable with the current keys."""
        return await self._transport.models()

    async def create_conversation(
        self, *, title: str = "", model: str | None = None, system_prompt: str | None = None
    ) -> Conversation:
        """Start a saved conversation; pass its ``id`` as ``conversation_id=`` to chat in it."""
        conversation = Conversation(title=title, model=model, system_prompt=system_prompt)
        return await self.admin.create_conversation(conversation)

    async def conversation(self, conversation_id: str) -> Conversation | None:
        """A saved conversation with its messages (reasoning and tool calls included)."""
        return await self.admin.conversation(conversation_id)

    async def fork_conversation(self, conversation_id: str, at_message: int) -> Conversation:
        """A copy of a conversation up to and including message ``at_message``; continue it on any model."""
        forked = await self.admin.fork_conversation(conversation_id, at_message)
        if forked is None:
            raise NotFoundError(f"no conversation {conversation_id!r}", param="conversation_id")
        return forked

    async def run(self, model: str | None = None, prompt: Any = "", **options: Any) -> RunResult:
        """Run a tool-calling agent to the end (or a cap, or an approval pause).

        ``options`` are ``modelyard.agent.Agent``'s: ``tools``, ``limits``, ``fallbacks``, ``tool_choice``…::

            result = await client.run("openai/gpt-4o-mini", "Weather in Paris?", tools=[get_weather])
        """
        from modelyard.agent import arun

        return await arun(self, model, prompt, **options)

    async def resume(self, run_id: str, decisions: Sequence[Decision] = (), **options: Any) -> RunResult:
        """Resume a paused or stopped agent run (after a restart too); pass the same ``tools``."""
        from modelyard.agent import aresume

        return await aresume(self, run_id, decisions, **options)

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
