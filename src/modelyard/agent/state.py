"""What a run is made of: caps, tool-call records, steps, pending approvals, decisions, the stored state and
the result.

Example::

    result = await agent.run("Book a table for two")
    if result.stop_reason == "approval_required":
        decisions = [Decision.approve(p.call_id) for p in result.pending]
        result = await agent.resume(result.run_id, decisions)
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard import errors
from modelyard.types.chat import Message
from modelyard.types.usage import Usage

StopReason = Literal["final_answer", "max_steps", "max_tokens", "max_cost", "max_time", "approval_required", "error"]
RunStatus = Literal["running", "paused", "completed", "stopped", "failed"]
ErrorKind = Literal["unknown_tool", "invalid_json", "invalid_arguments", "tool_error", "exception", "timeout", "denied"]


def new_run_id() -> str:
    return f"run_{uuid.uuid4().hex}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Limits(_Model):
    """Caps on a run. Steps count model calls; tokens (prompt + completion) and cost are summed over the
    run and checked before each step; time is the run's active wall time (time paused for approval excluded).
    ``None`` means no cap.

    Example::

        Limits(max_steps=8, max_tokens=50_000, max_cost=0.25, max_time=120)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int | None = Field(default=20, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost: float | None = Field(default=None, gt=0)
    max_time: float | None = Field(default=None, gt=0)


class ToolCallRecord(_Model):
    """One tool call and what came of it. ``valid``: its arguments parsed and matched the schema;
    ``executed``: the tool ran; ``ok``: it ran without error; ``output``: the text the model was sent."""

    call_id: str
    name: str
    arguments: str = ""
    parsed: dict[str, Any] | None = None
    valid: bool = False
    executed: bool = False
    ok: bool = False
    output: str = ""
    error: str | None = None
    error_kind: ErrorKind | None = None
    duration_ms: float | None = None
    decision: Literal["approved", "edited", "denied", "answered"] | None = None

    def message(self) -> Message:
        """The ``tool`` message that answers the call (tool output always stays in the tool role)."""
        return Message(role="tool", tool_call_id=self.call_id, content=self.output)


class PendingCall(_Model):
    """A tool call waiting for a decision: it needs approval, or its tool has no handler (``answer_only``)."""

    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str = ""
    step: int = 0
    answer_only: bool = False
    description: str = ""


class Decision(_Model):
    """What to do with a pending call: approve it, run it with edited arguments, deny it (the reason is
    sent to the model), or answer it with an output of your own.

    Example::

        Decision.approve("call_1"); Decision.edit("call_2", {"amount": 10}); Decision.deny("call_3", "too risky")
    """

    call_id: str
    action: Literal["approve", "edit", "deny", "respond"]
    arguments: dict[str, Any] | None = None
    reason: str | None = None
    output: str | None = None

    @classmethod
    def approve(cls, call_id: str) -> Decision:
        return cls(call_id=call_id, action="approve")

    @classmethod
    def edit(cls, call_id: str, arguments: dict[str, Any]) -> Decision:
        return cls(call_id=call_id, action="edit", arguments=arguments)

    @classmethod
    def deny(cls, call_id: str, reason: str | None = None) -> Decision:
        return cls(call_id=call_id, action="deny", reason=reason)

    @classmethod
    def respond(cls, call_id: str, output: str) -> Decision:
        return cls(call_id=call_id, action="respond", output=output)


class ErrorInfo(_Model):
    """A model error that ended a run (the exception itself is on ``RunResult.exception`` in-process)."""

    type: str
    message: str
    status: int | None = None
    model: str | None = None
    provider: str | None = None

    @classmethod
    def of(cls, exc: errors.ModelyardError, model: str) -> ErrorInfo:
        return cls(
            type=type(exc).__name__,
            message=exc.message,
            status=exc.status_code,
            model=exc.model or model,
            provider=exc.provider,
        )


class StepRecord(_Model):
    """One model call of the run: who served it, what it cost, which tools it called."""

    index: int
    model: str
    request_id: str | None = None
    finish_reason: str | None = None
    text: str = ""
    usage: Usage | None = None
    cost: float | None = None
    latency_ms: float | None = None
    calls: list[ToolCallRecord] = Field(default_factory=list)
    fell_back_from: list[str] = Field(default_factory=list)


class RunState(_Model):
    """Everything needed to continue a run, in this process or another one (stored as JSON)."""

    run_id: str = Field(default_factory=new_run_id)
    models: list[str]
    model_index: int = 0
    messages: list[Message]
    tool_names: list[str] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    steps: list[StepRecord] = Field(default_factory=list)
    saved_steps: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    cost_known: bool = True
    status: RunStatus = "running"
    stop_reason: StopReason | None = None
    pending: list[PendingCall] = Field(default_factory=list)
    done_calls: list[ToolCallRecord] = Field(default_factory=list)
    elapsed_s: float = 0.0
    error: ErrorInfo | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    setup: dict[str, Any] = Field(default_factory=dict)
    created: float = Field(default_factory=time.time)

    @property
    def model(self) -> str:
        """The model the next step goes to."""
        return self.models[min(self.model_index, len(self.models) - 1)]

    def add_usage(self, usage: Usage | None, cost: float | None) -> None:
        if usage is not None:
            self.usage = Usage.of(
                self.usage.prompt_tokens + usage.prompt_tokens,
                self.usage.completion_tokens + usage.completion_tokens,
                self.usage.cached_tokens + usage.cached_tokens,
                self.usage.reasoning_tokens + usage.reasoning_tokens,
            )
        if cost is None:
            self.cost_known = False
        else:
            self.cost += cost


class RunResult(_Model):
    """How a run ended. ``stop_reason`` says why; ``explanation`` says it in words (which cap, at what value);
    ``pending`` lists the calls waiting for a decision when it is ``approval_required``.

    Example::

        result = await agent.run("Summarize the open issues")
        if result.stop_reason != "final_answer":
            print(result.explanation)   # e.g. "stopped: the cost cap ($0.25) was reached ($0.251000 spent)"
    """

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    run_id: str
    status: RunStatus
    stop_reason: StopReason
    explanation: str
    text: str = ""
    model: str | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost: float | None = None
    pending: list[PendingCall] = Field(default_factory=list)
    error: ErrorInfo | None = None
    messages: list[Message] = Field(default_factory=list)
    exception: Any = Field(default=None, exclude=True, repr=False)

    @property
    def paused(self) -> bool:
        return self.stop_reason == "approval_required"

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call of the run, in order."""
        return [call for step in self.steps for call in step.calls]

    def raise_for_error(self) -> RunResult:
        """Raise the model error that ended the run (if one did); returns the result otherwise."""
        if self.stop_reason == "error":
            if isinstance(self.exception, errors.ModelyardError):
                raise self.exception
            info = self.error or ErrorInfo(type="ModelyardError", message=self.explanation)
            raise errors.ModelyardError(info.message, status=info.status, model=info.model, provider=info.provider)
        return self
