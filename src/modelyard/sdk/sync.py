"""``Client``: the synchronous SDK, a thin wrapper that runs ``AsyncClient`` on a private event loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from modelyard.config import Settings
from modelyard.sdk.admin_sync import SyncAdmin
from modelyard.sdk.client import AsyncClient, MessagesInput, StreamHandle
from modelyard.storage.base import Conversation
from modelyard.types.chat import ChatChunk, ChatResponse
from modelyard.types.embeddings import EmbeddingResponse
from modelyard.types.models import ModelInfo

if TYPE_CHECKING:
    from modelyard.agent import Decision, RunResult

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="modelyard-client", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class SyncStream:
    """A synchronous stream: iterate it, or use ``with``; the connection is always released."""

    def __init__(self, runner: _LoopThread, handle: StreamHandle) -> None:
        self._runner = runner
        self._handle = handle

    @property
    def info(self) -> Any:
        return self._handle.info

    def __iter__(self) -> Iterator[ChatChunk]:
        stream = self._runner.run(self._handle.start())
        try:
            while True:
                try:
                    yield self._runner.run(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self.close()

    def close(self) -> None:
        self._runner.run(self._handle.aclose())

    def __enter__(self) -> SyncStream:
        self._runner.run(self._handle.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """Synchronous SDK with the same methods as ``AsyncClient`` (and its options: ``base_url``, ``api_key``,
    ``pace_on_rate_limit``…).

    Example::

        with Client() as client:
            print(client.chat("local/smollm2", [{"role": "user", "content": "hi"}], max_tokens=20).text)
            for chunk in client.stream("local/smollm2", [{"role": "user", "content": "a haiku"}]):
                print(chunk.text, end="")
    """

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        self._runner = _LoopThread()
        self._async = self._runner.run(_make(settings, kwargs))
        self._admin: SyncAdmin | None = None
        self._closed = False

    @property
    def gateway(self) -> Any:
        return self._async.gateway

    @property
    def remote(self) -> bool:
        """Whether this client talks to a modelyard server rather than an in-process gateway."""
        return self._async.remote

    @property
    def admin(self) -> SyncAdmin:
        """Logs, cost, conversations, system prompts, templates and keys (see ``AsyncClient.admin``)."""
        if self._admin is None:
            self._admin = SyncAdmin(self._runner, self._async.admin)
        return self._admin

    def default_model(self) -> str:
        """The model used when a call names none (a server's default, when remote)."""
        return self._runner.run(self._async.default_model())

    def warm_up(self) -> None:
        """Open the database (in-process) or the connection (remote) before timing anything."""
        self._runner.run(self._async.warm_up())

    def chat(self, model: str | None = None, messages: MessagesInput = (), **kwargs: Any) -> ChatResponse:
        """A complete chat completion (see ``AsyncClient.chat``; rate limits are paced with
        ``pace_on_rate_limit``)."""
        return self._runner.run(self._async.chat(model, messages, **kwargs))

    def stream(self, model: str | None = None, messages: MessagesInput = (), **kwargs: Any) -> SyncStream:
        """A stream of ``ChatChunk`` (see ``AsyncClient.stream``)."""
        return SyncStream(self._runner, self._async.stream(model, messages, **kwargs))

    def embed(self, input: str | list[str], model: str | None = None, **kwargs: Any) -> EmbeddingResponse:
        """Embeddings of ``input`` (see ``AsyncClient.embed``)."""
        return self._runner.run(self._async.embed(input, model, **kwargs))

    def models(self) -> list[ModelInfo]:
        return self._runner.run(self._async.models())

    def create_conversation(
        self, *, title: str = "", model: str | None = None, system_prompt: str | None = None
    ) -> Conversation:
        """Start a saved conversation; pass its ``id`` as ``conversation_id=`` to chat in it."""
        return self._runner.run(self._async.create_conversation(title=title, model=model, system_prompt=system_prompt))

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self._runner.run(self._async.conversation(conversation_id))

    def fork_conversation(self, conversation_id: str, at_message: int) -> Conversation:
        return self._runner.run(self._async.fork_conversation(conversation_id, at_message))

    def run_sync(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the client's own loop (where its gateway and database live) and wait for it."""
        return self._runner.run(work)

    def run(self, model: str | None = None, prompt: Any = "", **options: Any) -> RunResult:
        """Run a tool-calling agent (see ``AsyncClient.run``)::

        result = client.run("openai/gpt-4o-mini", "Weather in Paris?", tools=[get_weather])
        """
        from modelyard.agent import run

        return run(self, model, prompt, **options)

    def resume(self, run_id: str, decisions: Sequence[Decision] = (), **options: Any) -> RunResult:
        """Resume a paused or stopped agent run; pass the same ``tools`` it started with."""
        from modelyard.agent import resume

        return resume(self, run_id, decisions, **options)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._runner.run(self._async.aclose())
            self._runner.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _make(settings: Settings | None, kwargs: dict[str, Any]) -> AsyncClient:
    return AsyncClient(settings, **kwargs)
