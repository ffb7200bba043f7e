"""Module-level shortcuts, and the blocking ``SyncAgent`` for the synchronous ``Client``.

Example (async)::

    result = await arun(client, "openai/gpt-4o-mini", "Weather in Paris?", tools=[get_weather])

Example (sync)::

    with Client() as client:
        result = run(client, "openai/gpt-4o-mini", "Weather in Paris?", tools=[get_weather])
        for event in SyncAgent(client, "fake/m", tools=[get_weather]).stream("hi"):
            print(event.type)
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from modelyard.agent.agent import Agent, Prompt
from modelyard.agent.events import AgentEvent
from modelyard.agent.state import Decision, Limits, RunResult, RunState
from modelyard.storage.sql_runs import ModelToolMetrics, StoredRun

T = TypeVar("T")


async def arun(client: Any, model: str | None, prompt: Prompt, **options: Any) -> RunResult:
    """Run one task with an ``AsyncClient`` (or ``Gateway``); ``options`` are ``Agent``'s (tools, limits…)."""
    async with Agent(client, model, **options) as agent:
        return await agent.run(prompt)


async def astream(client: Any, model: str | None, prompt: Prompt, **options: Any) -> AsyncGenerator[AgentEvent, None]:
    """``arun`` as events."""
    async with Agent(client, model, **options) as agent, contextlib.aclosing(agent.stream(prompt)) as stream:
        async for event in stream:
            yield event


async def aresume(client: Any, run_id: str, decisions: Sequence[Decision] = (), **options: Any) -> RunResult:
    """Resume a stored run; pass the same ``tools`` it started with."""
    force = bool(options.pop("force", False))
    limits: Limits | None = options.pop("limits", None)
    async with Agent(client, None, **options) as agent:
        return await agent.resume(run_id, decisions, limits=limits, force=force)


class SyncAgent:
    """``Agent`` for the synchronous ``Client``: the same methods, blocking; ``stream`` yields events live.

    Example::

        with Client() as client, SyncAgent(client, "openai/gpt-4o-mini", tools=[get_weather]) as agent:
            result = agent.run("Weather in Paris?")
    """

    def __init__(self, client: Any, model: str | None = None, **options: Any) -> None:
        self._runner = client._runner  # the sync client's event-loop thread, where its gateway lives
        self.agent = Agent(client._async, model, **options)

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        result: T = self._runner.run(work)
        return result

    def runs(self, limit: int = 50, *, status: str | None = None) -> list[StoredRun]:
        return self._run(self.agent.runs(limit, status=status))

    def metrics(self, *, since: datetime | None = None) -> list[ModelToolMetrics]:
        return self._run(self.agent.metrics(since=since))

    def open(self) -> None:
        self._run(self.agent.open())

    def close(self) -> None:
        self._run(self.agent.aclose())

    def __enter__(self) -> SyncAgent:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, prompt: Prompt, *, limits: Limits | None = None) -> RunResult:
        return self._run(self.agent.run(prompt, limits=limits))

    def resume(
        self, run_id: str, decisions: Sequence[Decision] = (), *, limits: Limits | None = None, force: bool = False
    ) -> RunResult:
        return self._run(self.agent.resume(run_id, decisions, limits=limits, force=force))

    def stream(self, prompt: Prompt, *, limits: Limits | None = None) -> Iterator[AgentEvent]:
        return self._iterate(lambda: self.agent.stream(prompt, limits=limits))

    def stream_resume(
        self, run_id: str, decisions: Sequence[Decision] = (), *, limits: Limits | None = None, force: bool = False
    ) -> Iterator[AgentEvent]:
        return self._iterate(lambda: self.agent.stream_resume(run_id, decisions, limits=limits, force=force))

    def decide(self, run_id: str, decisions: Sequence[Decision]) -> None:
        self._run(self.agent.decide(run_id, decisions))

    def state(self, run_id: str) -> RunState:
        return self._run(self.agent.state(run_id))

    def _iterate(self, events: Callable[[], AsyncGenerator[AgentEvent, None]]) -> Iterator[AgentEvent]:
        """Run the whole event stream in one task on the client's loop; hand events over as they come."""
        handoff: queue.Queue[tuple[str, Any]] = queue.Queue()
        finished = threading.Event()

        async def pump() -> None:
            try:
                async with contextlib.aclosing(events()) as stream:
                    async for event in stream:
                        handoff.put(("event", event))
            except BaseException as exc:
                handoff.put(("error", exc))
                raise
            finally:
                finished.set()
            handoff.put(("done", None))

        future = asyncio.run_coroutine_threadsafe(pump(), self._runner.loop)
        try:
            while True:
                kind, value = handoff.get()
                if kind == "done":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            if not future.done():
                future.cancel()  # cancels the task: the run is closed and saved as stopped
            finished.wait(timeout=30)


def run(client: Any, model: str | None, prompt: Prompt, **options: Any) -> RunResult:
    """Run one task with the sync ``Client``; ``options`` are ``Agent``'s (tools, limits, fallbacks…)."""
    with SyncAgent(client, model, **options) as agent:
        return agent.run(prompt)


def resume(client: Any, run_id: str, decisions: Sequence[Decision] = (), **options: Any) -> RunResult:
    """Resume a stored run with the sync ``Client``; pass the same ``tools`` it started with."""
    force = bool(options.pop("force", False))
    limits: Limits | None = options.pop("limits", None)
    with SyncAgent(client, None, **options) as agent:
        return agent.resume(run_id, decisions, limits=limits, force=force)
