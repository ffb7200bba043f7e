"""``Agent``: a model, tools and caps; ``run`` / ``stream`` a task, ``resume`` a paused or stopped run.

Works through an ``AsyncClient`` (in-process or remote) or a ``Gateway``. Runs are stored in the gateway's
database (a remote client keeps them in the local one), so a paused run can be resumed after a restart.

Example::

    async with AsyncClient() as client, Agent(client, "openai/gpt-4o-mini", tools=[get_weather],
                                              fallbacks=["anthropic/claude-haiku-4-5"]) as agent:
        result = await agent.run("Weather in Paris?")
        print(result.text, result.cost, result.stop_reason)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from modelyard import errors
from modelyard.agent.engine import Approver, RunEngine, RunSetup
from modelyard.agent.events import AgentEvent, RunFinished
from modelyard.agent.model_step import ChatBackend
from modelyard.agent.state import Decision, Limits, RunResult, RunState
from modelyard.agent.store import RunRecorder
from modelyard.agent.tools import AgentTool, ToolLike, index_tools, split_tools
from modelyard.storage.sql_runs import ModelToolMetrics, SQLRunStore, StoredRun
from modelyard.types.chat import Message

Prompt = str | Sequence[Message | Mapping[str, Any]]
_RESERVED = {"model", "messages", "tools", "tool_choice", "stream", "stream_options", "n"}
_CHOICES = {"auto", "none", "required"}


def backend_of(client: Any) -> ChatBackend:
    """The chat backend behind an ``AsyncClient`` (its transport: in-process or remote) or a ``Gateway``."""
    if hasattr(client, "_async") and hasattr(client, "_runner"):
        raise TypeError("a sync Client runs agents with modelyard.agent.run / SyncAgent, not Agent")
    transport = getattr(client, "_transport", None)  # the SDK's own seam: run ids go in CallOptions.metadata
    if transport is not None:
        return transport  # type: ignore[no-any-return]
    if hasattr(client, "stores") and hasattr(client, "stream"):
        return client  # type: ignore[no-any-return]
    raise TypeError(f"an agent needs an AsyncClient or a Gateway, not {type(client).__name__}")


def _gateway_of(client: Any) -> Any:
    if hasattr(client, "stores"):
        return client
    try:
        return client.gateway
    except AttributeError:
        return None


class Agent:
    """A tool-calling agent. ``tools``: functions, ``AgentTool``s, OpenAI tool JSON, MCP sources.

    ``tool_choice`` (``"auto"``, ``"required"``, ``"none"`` or a tool name) applies to the first step; later
    steps use ``"auto"`` so the run can end. ``params`` are OpenAI parameters for every step (temperature…).
    ``approver`` decides calls that need approval in-process; without it such calls pause the run.

    Example::

        agent = Agent(client, "openai/gpt-4o-mini", tools=[get_weather], limits=Limits(max_steps=5))
        async for event in agent.stream("Weather in Paris?"):
            print(event.type)
    """

    def __init__(
        self,
        client: Any,
        model: str | None = None,
        *,
        tools: Iterable[ToolLike] = (),
        instructions: str | None = None,
        fallbacks: Sequence[str] = (),
        limits: Limits | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        tool_timeout: float | None = 60.0,
        params: Mapping[str, Any] | None = None,
        approver: Approver | None = None,
        store: SQLRunStore | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        setup: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.backend = backend_of(client)
        self.model = model
        self._tools, self._sources = split_tools(tools)
        self._source_tools: list[AgentTool] = []
        self._opened = False
        self.instructions = instructions
        self.fallbacks = list(fallbacks)
        self.limits = limits or Limits()
        self.tool_choice = tool_choice
        self.tool_timeout = tool_timeout
        self.params = _checked_params(params or {})
        self.approver = approver
        self.metadata = dict(metadata or {})
        self.tags = list(tags)
        self.setup = dict(setup or {})
        self._store = store
        self._owned_store: Any = None
        index_tools(self._tools)

    # ----- lifecycle --------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect the MCP sources (done by ``run`` when needed; call it to keep them open across runs)."""
        if self._opened:
            return
        found: list[AgentTool] = []
        try:
            for source in self._sources:
                found += await source.open()
            index_tools([*self._tools, *found])
        except BaseException:
            await self._close_sources()
            raise
        self._source_tools, self._opened = found, True

    async def aclose(self) -> None:
        """Disconnect the MCP sources and close a database this agent opened."""
        await self._close_sources()
        if self._owned_store is not None:
            await self._owned_store.close()
            self._owned_store = None

    async def _close_sources(self) -> None:
        for source in self._sources:
            await source.aclose()
        self._source_tools, self._opened = [], False

    async def __aenter__(self) -> Agent:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def tools(self) -> dict[str, AgentTool]:
        """Every tool by name (MCP tools once ``open``)."""
        return index_tools([*self._tools, *self._source_tools])

    # ----- runs -------------------------------------------------------------------------------------------
    async def run(self, prompt: Prompt, *, limits: Limits | None = None) -> RunResult:
        """Run a task to its end, a cap, a pause for approval, or a model failure (see ``stop_reason``)."""
        return await _last(self._events(self._starter(prompt, limits), (), streaming=False))

    def stream(self, prompt: Prompt, *, limits: Limits | None = None) -> AsyncGenerator[AgentEvent, None]:
        """The run as events (text deltas, tool calls, tool results, step usage); the last is ``RunFinished``."""
        return self._events(self._starter(prompt, limits), (), streaming=True)

    async def resume(
        self, run_id: str, decisions: Sequence[Decision] = (), *, limits: Limits | None = None, force: bool = False
    ) -> RunResult:
        """Continue a paused or stopped run (also one started by another process), applying ``decisions``.

        Example::

            result = await agent.resume(run_id, [Decision.approve(result.pending[0].call_id)])
        """
        return await _last(self._events(self._resumer(run_id, decisions, limits, force), decisions, streaming=False))

    def stream_resume(
        self, run_id: str, decisions: Sequence[Decision] = (), *, limits: Limits | None = None, force: bool = False
    ) -> AsyncGenerator[AgentEvent, None]:
        """``resume`` as events."""
        return self._events(self._resumer(run_id, decisions, limits, force), decisions, streaming=True)

    async def decide(self, run_id: str, decisions: Sequence[Decision]) -> None:
        """Record decisions on a paused run without resuming it (the next resume applies them)."""
        await (await self._recorder()).record_decisions(run_id, decisions)

    async def state(self, run_id: str) -> RunState:
        """The stored state of a run (messages, steps, pending calls)."""
        return await (await self._recorder()).load(run_id)

    async def runs(self, limit: int = 50, *, status: str | None = None) -> list[StoredRun]:
        """Recent runs in this agent's database, newest first (summary columns, without state)."""
        return await (await self._recorder()).store.list(limit, status=status)

    async def metrics(self, *, since: datetime | None = None) -> list[ModelToolMetrics]:
        """Tool-calling metrics per model over the stored runs (validity, success rate, steps and cost per run)."""
        return await (await self._recorder()).store.tool_metrics(since=since)

    async def _events(
        self, prepare: Callable[[RunRecorder], Awaitable[RunState]], decisions: Sequence[Decision], *, streaming: bool
    ) -> AsyncGenerator[AgentEvent, None]:
        opened_here = not self._opened
        await self.open()
        try:
            recorder = await self._recorder()
            state = await prepare(recorder)
            setup = RunSetup(self.backend, self.tools, recorder, streaming, self.tool_timeout, self.approver)
            async with contextlib.aclosing(RunEngine(setup, state).events(decisions)) as stream:
                async for event in stream:
                    yield event
        finally:
            if opened_here:
                await self._close_sources()

    def _starter(self, prompt: Prompt, limits: Limits | None) -> Callable[[RunRecorder], Awaitable[RunState]]:
        async def start(recorder: RunRecorder) -> RunState:
            state = RunState(
                models=[self.model or self._default_model(), *self.fallbacks],
                messages=self._messages(prompt),
                tool_names=sorted(self.tools),
                tool_choice=self._tool_choice(),
                params=self.params,
                limits=limits or self.limits,
                metadata=self.metadata,
                tags=self.tags,
                setup=self.setup,
            )
            await recorder.save(state)
            return state

        return start

    def _resumer(
        self, run_id: str, decisions: Sequence[Decision], limits: Limits | None, force: bool
    ) -> Callable[[RunRecorder], Awaitable[RunState]]:
        async def resume(recorder: RunRecorder) -> RunState:
            _check_resumable(await recorder.load(run_id), self.tools, decisions)
            await recorder.claim(run_id, force=force)
            state = await recorder.load(run_id)
            if limits is not None:
                state.limits = limits
            return state

        return resume

    def _messages(self, prompt: Prompt) -> list[Message]:
        if isinstance(prompt, str):
            messages = [Message(role="user", content=prompt)]
        else:
            messages = [m if isinstance(m, Message) else Message.model_validate(dict(m)) for m in prompt]
        if not messages:
            raise errors.BadRequestError("an agent run needs a prompt", param="messages")
        if self.instructions and messages[0].role not in ("system", "developer"):
            messages.insert(0, Message(role="system", content=self.instructions))
        return messages

    def _tool_choice(self) -> str | dict[str, Any] | None:
        choice = self.tool_choice
        if choice is None or isinstance(choice, dict) or choice in _CHOICES:
            return choice
        if choice not in self.tools:
            raise errors.BadRequestError(f"tool_choice names no tool: {choice!r}", param="tool_choice")
        return {"type": "function", "function": {"name": choice}}

    def _default_model(self) -> str:
        settings = getattr(self.client, "settings", None)
        return settings.default_model if settings is not None else "local/smollm2"

    async def _recorder(self) -> RunRecorder:
        if self._store is None:
            gateway = _gateway_of(self.client)
            if gateway is not None:
                self._store = SQLRunStore((await gateway.stores()).engine)
            else:
                self._store = await self._open_local_store()
        return RunRecorder(self._store)

    async def _open_local_store(self) -> SQLRunStore:
        """A remote client keeps its runs in the local database (settings' ``database_url`` or the default)."""
        from modelyard.storage.sql import open_store

        settings = getattr(self.client, "settings", None)
        self._owned_store = await open_store(settings.database_url if settings is not None else None)
        return SQLRunStore(self._owned_store.engine)


def _check_resumable(state: RunState, tools: Mapping[str, AgentTool], decisions: Sequence[Decision]) -> None:
    """Refuse a resume that cannot work before the run is claimed: missing tools, decisions on unknown calls."""
    missing = sorted(set(state.tool_names) - set(tools))
    if missing:
        hint = state.setup.get("cli")
        again = f"; it was started with: {hint}" if hint else ""
        raise errors.BadRequestError(
            f"run {state.run_id!r} needs the tools it started with; missing: {', '.join(missing)}{again}",
            param="tools",
        )
    unknown = sorted({d.call_id for d in decisions} - {p.call_id for p in state.pending})
    if unknown:
        raise errors.BadRequestError(f"no pending tool call {unknown[0]!r} in run {state.run_id!r}", param="decisions")


def _checked_params(params: Mapping[str, Any]) -> dict[str, Any]:
    reserved = sorted(_RESERVED & set(params))
    if reserved:
        raise errors.BadRequestError(f"set {reserved[0]!r} on the agent, not in params", param=reserved[0])
    return dict(params)


async def _last(events: AsyncIterator[AgentEvent]) -> RunResult:
    result: RunResult | None = None
    async for event in events:
        if isinstance(event, RunFinished):
            result = event.result
    assert result is not None, "a run always ends with RunFinished"
    return result
