"""One model call of a run: build the request, stream (or fetch) the answer, and fall back to the run's next
model when the current one fails with a rate limit, a 5xx, a timeout or a cut stream — or cannot call tools.

Example::

    step = StepCall(backend, tool_definitions, streaming=True)
    async for event in step.run(state, index=1, deadline=None):
        ...
    step.message, step.record   # the assistant message and what the step cost
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Protocol

from modelyard import errors
from modelyard.agent.events import AgentEvent, ModelFallback, ReasoningDelta, TextDelta
from modelyard.agent.state import ErrorInfo, RunState, StepRecord
from modelyard.pipeline import CallOptions, ChatStream
from modelyard.streaming import ChunkAccumulator
from modelyard.types.chat import ChatRequest, ChatResponse, Message, ModelyardInfo, Tool


class ChatBackend(Protocol):
    """What a run calls: a ``Gateway``, or an SDK transport (in-process or remote)."""

    async def chat(self, request: ChatRequest, options: CallOptions) -> ChatResponse: ...

    async def stream(self, request: ChatRequest, options: CallOptions) -> ChatStream: ...


class RunTimeout(Exception):
    """The run's time cap ran out during a model call."""


def can_fall_back(exc: errors.ModelyardError) -> bool:
    """Whether the run should go on with its next model after ``exc``."""
    if isinstance(exc, errors.UnsupportedOperationError):
        return exc.param == "tools"
    return exc.fallback or isinstance(exc, errors.StreamInterruptedError | errors.ConfigError)


def remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


class StepCall:
    """Runs one step's model call; afterwards ``message`` and ``record`` hold its outcome."""

    def __init__(self, backend: ChatBackend, tools: Sequence[Tool], *, streaming: bool) -> None:
        self.backend = backend
        self.tools = list(tools)
        self.streaming = streaming
        self.message = Message(role="assistant")
        self.record: StepRecord | None = None

    def request(self, state: RunState, model: str, first: bool) -> ChatRequest:
        data: dict[str, Any] = {**state.params, "model": model, "messages": state.messages}
        if self.tools:
            data["tools"] = self.tools
            choice = state.tool_choice if first else None
            data["tool_choice"] = choice if choice is not None else "auto"
        return ChatRequest.model_validate(data)

    def options(self, state: RunState, index: int, deadline: float | None) -> CallOptions:
        left = remaining(deadline)
        return CallOptions(
            timeout=max(left, 0.001) if left is not None else None,
            metadata={**state.metadata, "run_id": state.run_id, "run_step": index},
            tags=list(state.tags),
        )

    async def run(self, state: RunState, index: int, deadline: float | None) -> AsyncGenerator[AgentEvent, None]:
        """Call the current model; on a fall-back-able error move to the next one and try again."""
        fell_back: list[str] = []
        while True:
            model = state.model
            try:
                async with contextlib.aclosing(self._attempt(state, model, index, deadline)) as stream:
                    async for event in stream:
                        yield event
            except errors.ModelyardError as exc:
                left = remaining(deadline)
                if left is not None and left <= 0:
                    raise RunTimeout from exc
                if not can_fall_back(exc) or state.model_index + 1 >= len(state.models):
                    raise
                state.model_index += 1
                fell_back.append(model)
                yield ModelFallback(
                    run_id=state.run_id,
                    step=index,
                    from_model=model,
                    to_model=state.model,
                    error=ErrorInfo.of(exc, model),
                )
                continue
            assert self.record is not None
            self.record.fell_back_from = fell_back
            return

    async def _attempt(
        self, state: RunState, model: str, index: int, deadline: float | None
    ) -> AsyncGenerator[AgentEvent, None]:
        request = self.request(state, model, first=not state.steps)
        options = self.options(state, index, deadline)
        started = time.monotonic()
        if self.streaming:
            acc = ChunkAccumulator()
            stream = await _within(self.backend.stream(request, options), deadline)
            try:
                while (chunk := await _within(_next(stream), deadline)) is not None:
                    acc.add(chunk)
                    for event in _deltas(state.run_id, index, chunk.choices[:1]):
                        yield event
            finally:
                await stream.aclose()
            response, info = acc.response(), stream.info
        else:
            response = await _within(self.backend.chat(request, options), deadline)
            info = response.modelyard or ModelyardInfo()
            if response.choices:
                message = response.choices[0].message
                if message.reasoning_content:
                    yield ReasoningDelta(run_id=state.run_id, step=index, text=message.reasoning_content)
                if message.text():
                    yield TextDelta(run_id=state.run_id, step=index, text=message.text())
        self._finish(response, info, model, index, (time.monotonic() - started) * 1000)

    def _finish(self, response: ChatResponse, info: ModelyardInfo, model: str, index: int, latency: float) -> None:
        choice = response.choices[0] if response.choices else None
        message = choice.message if choice else Message(role="assistant", content="")
        message = message.model_copy(update={"role": "assistant"})
        for position, call in enumerate(message.tool_calls or []):
            if not call.id:
                call.id = f"call_{index}_{position}"
        self.message = message
        self.record = StepRecord(
            index=index,
            model=info.served_model or model,
            request_id=info.request_id or None,
            finish_reason=choice.finish_reason if choice else None,
            text=message.text(),
            usage=response.usage,
            cost=info.cost,
            latency_ms=round(latency, 3),
        )


def _deltas(run_id: str, index: int, choices: Sequence[Any]) -> list[AgentEvent]:
    events: list[AgentEvent] = []
    for choice in choices:
        if choice.delta.reasoning_content:
            events.append(ReasoningDelta(run_id=run_id, step=index, text=choice.delta.reasoning_content))
        if choice.delta.content:
            events.append(TextDelta(run_id=run_id, step=index, text=choice.delta.content))
    return events


async def _next(stream: ChatStream) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


async def _within(awaitable: Any, deadline: float | None) -> Any:
    """Await with what is left of the run's time; running out raises ``RunTimeout``."""
    left = remaining(deadline)
    if left is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, max(left, 0))
    except TimeoutError:
        raise RunTimeout from None
