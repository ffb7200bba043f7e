"""Events of a streamed run, in order: each step starts, streams text, calls tools, reports its usage; the last
event is always ``RunFinished`` with the result. Every event is a pydantic model with a ``type`` tag, so it
serializes to JSON as it is (for SSE or a log).

Example::

    async for event in agent.stream("What is 2 + 2?"):
        if isinstance(event, TextDelta):
            print(event.text, end="")
        elif isinstance(event, ToolCallStarted):
            print(f"\\n-> {event.name}({event.arguments})")
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from modelyard.agent.state import ErrorInfo, PendingCall, RunResult, StopReason, ToolCallRecord
from modelyard.types.usage import Usage


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    run_id: str


class StepStarted(_Event):
    """A model call begins (``step`` counts from 1)."""

    type: Literal["step_started"] = "step_started"
    step: int
    model: str


class TextDelta(_Event):
    """A piece of the model's answer text."""

    type: Literal["text"] = "text"
    step: int
    text: str


class ReasoningDelta(_Event):
    """A piece of the model's reasoning, when the provider sends it."""

    type: Literal["reasoning"] = "reasoning"
    step: int
    text: str


class ModelFallback(_Event):
    """The step failed on ``from_model`` and goes on with ``to_model`` (the conversation so far is kept; any
    text streamed for the failed attempt is void)."""

    type: Literal["model_fallback"] = "model_fallback"
    step: int
    from_model: str
    to_model: str
    error: ErrorInfo


class ToolCallStarted(_Event):
    """The model called a tool; it runs now (or waits for approval, see ``ApprovalRequired``)."""

    type: Literal["tool_call"] = "tool_call"
    step: int
    call_id: str
    name: str
    arguments: str


class ToolResult(_Event):
    """A tool call finished (or was refused): ``record.ok``, ``record.output``, ``record.error``."""

    type: Literal["tool_result"] = "tool_result"
    step: int
    record: ToolCallRecord


class StepFinished(_Event):
    """A model call ended: its usage and cost, and the run's totals so far."""

    type: Literal["step_finished"] = "step_finished"
    step: int
    model: str
    finish_reason: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    total_usage: Usage
    total_cost: float | None = None
    tool_calls: int = 0


class ApprovalRequired(_Event):
    """The run pauses: these calls wait for a decision (``Agent.resume``)."""

    type: Literal["approval_required"] = "approval_required"
    pending: list[PendingCall]


class RunFinished(_Event):
    """The run ended (or paused): the result, as ``Agent.run`` returns it."""

    type: Literal["run_finished"] = "run_finished"
    stop_reason: StopReason
    result: RunResult


AgentEvent = (
    StepStarted
    | TextDelta
    | ReasoningDelta
    | ModelFallback
    | ToolCallStarted
    | ToolResult
    | StepFinished
    | ApprovalRequired
    | RunFinished
)


def event_json(event: AgentEvent) -> dict[str, Any]:
    """An event as plain JSON data."""
    return event.model_dump(mode="json", exclude_none=True)
