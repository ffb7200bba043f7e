"""The tool-calling loop: call the model, run the tools it calls, feed the results back, until it answers
without tool calls, a cap is hit, a call waits for approval, or the model fails for good.

``RunEngine.events()`` is the whole run as an async iterator of events; its last event is ``RunFinished``.
State is saved after every step, so a run can be resumed from any stop — also in another process.

Example::

    engine = RunEngine(setup, state)
    async for event in engine.events():
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from modelyard import errors
from modelyard.agent.calls import CheckedCall, apply_decision, check_call, run_calls
from modelyard.agent.events import (
    AgentEvent,
    ApprovalRequired,
    RunFinished,
    StepFinished,
    StepStarted,
    ToolCallStarted,
    ToolResult,
)
from modelyard.agent.model_step import ChatBackend, RunTimeout, StepCall
from modelyard.agent.state import (
    Decision,
    ErrorInfo,
    PendingCall,
    RunResult,
    RunState,
    RunStatus,
    StopReason,
    ToolCallRecord,
)
from modelyard.agent.store import RunRecorder
from modelyard.agent.tools import AgentTool
from modelyard.types.chat import FunctionCall, ToolCall

Approver = Callable[[PendingCall], Awaitable[Decision | None] | Decision | None]
"""Decides a pending call in-process (return ``None`` to leave it pending: the run pauses)."""

STATUS: dict[StopReason, RunStatus] = {
    "final_answer": "completed",
    "approval_required": "paused",
    "error": "failed",
    "max_steps": "stopped",
    "max_tokens": "stopped",
    "max_cost": "stopped",
    "max_time": "stopped",
}


@dataclass
class RunSetup:
    """What a run runs with: the model backend, the tools, where state goes and how calls are approved."""

    backend: ChatBackend
    tools: Mapping[str, AgentTool]
    recorder: RunRecorder
    streaming: bool = True
    tool_timeout: float | None = 60.0
    approver: Approver | None = None


class RunEngine:
    """Drives one run (new or resumed) to its next stop."""

    def __init__(self, setup: RunSetup, state: RunState) -> None:
        self.setup = setup
        self.state = state
        self._started = time.monotonic()
        self._outcome: tuple[StopReason, str] | None = None
        self._exception: errors.ModelyardError | None = None
        self._final = ""
        self._checkpoint = state.model_copy(deep=True)

    @property
    def deadline(self) -> float | None:
        cap = self.state.limits.max_time
        return None if cap is None else self._started + cap - self.state.elapsed_s

    def _elapsed(self) -> float:
        return self.state.elapsed_s + time.monotonic() - self._started

    async def events(self, decisions: Sequence[Decision] = ()) -> AsyncGenerator[AgentEvent, None]:
        """Run to the next stop, yielding every event; the last one is ``RunFinished``."""
        state = self.state
        self._started = time.monotonic()
        state.status, state.stop_reason, state.error = "running", None, None
        try:
            if state.pending:
                async with contextlib.aclosing(self._resume_pending(decisions)) as stream:
                    async for event in stream:
                        yield event
            while self._outcome is None:
                self._outcome = self._cap_reached()
                if self._outcome is None:
                    async with contextlib.aclosing(self._step()) as stream:
                        async for event in stream:
                            yield event
        except RunTimeout:
            self._outcome = self._time_outcome()
        except (GeneratorExit, asyncio.CancelledError, Exception):
            await self._save_interrupted()
            raise
        if self._outcome[0] == "approval_required":
            yield ApprovalRequired(run_id=state.run_id, pending=state.pending)
        result = await self._finish(*self._outcome)
        yield RunFinished(run_id=state.run_id, stop_reason=result.stop_reason, result=result)

    # ----- caps -------------------------------------------------------------------------------------------
    def _cap_reached(self) -> tuple[StopReason, str] | None:
        state, limits = self.state, self.state.limits
        if limits.max_steps is not None and len(state.steps) >= limits.max_steps:
            return "max_steps", (
                f"stopped: the step cap ({limits.max_steps}) was reached and the model still wanted to call tools"
            )
        if limits.max_tokens is not None and state.usage.total_tokens >= limits.max_tokens:
            return "max_tokens", (
                f"stopped: the token cap ({limits.max_tokens}) was reached ({state.usage.total_tokens} tokens used)"
            )
        if limits.max_cost is not None and state.cost >= limits.max_cost:
            return "max_cost", f"stopped: the cost cap (${limits.max_cost:g}) was reached (${state.cost:.6f} spent)"
        deadline = self.deadline
        if deadline is not None and time.monotonic() >= deadline:
            return self._time_outcome()
        return None

    def _time_outcome(self) -> tuple[StopReason, str]:
        cap = self.state.limits.max_time or 0
        return "max_time", f"stopped: the time cap ({cap:g} s) was reached after {self._elapsed():.1f} s"

    # ----- one step ---------------------------------------------------------------------------------------
    async def _step(self) -> AsyncGenerator[AgentEvent, None]:
        state = self.state
        index = len(state.steps) + 1
        yield StepStarted(run_id=state.run_id, step=index, model=state.model)
        call = StepCall(
            self.setup.backend, [t.definition() for t in self.setup.tools.values()], streaming=self.setup.streaming
        )
        try:
            async with contextlib.aclosing(call.run(state, index, self.deadline)) as stream:
                async for event in stream:
                    yield event
        except errors.ModelyardError as exc:
            self._fail(exc)
            return
        assert call.record is not None
        state.messages.append(call.message)
        state.steps.append(call.record)
        state.add_usage(call.record.usage, call.record.cost)
        yield self._step_finished(index)
        tool_calls = call.message.tool_calls or []
        if not tool_calls:
            self._final = call.message.text()
            self._outcome = ("final_answer", f"the model answered after {index} step(s)")
            return
        async with contextlib.aclosing(self._tool_phase(index, tool_calls)) as stream:
            async for event in stream:
                yield event

    def _step_finished(self, index: int) -> StepFinished:
        state, record = self.state, self.state.steps[-1]
        return StepFinished(
            run_id=state.run_id,
            step=index,
            model=record.model,
            finish_reason=record.finish_reason,
            usage=record.usage,
            cost=record.cost,
            total_usage=state.usage,
            total_cost=state.cost if state.cost_known else None,
            tool_calls=len(state.messages[-1].tool_calls or []),
        )

    def _fail(self, exc: errors.ModelyardError) -> None:
        model = self.state.model
        self.state.error = ErrorInfo.of(exc, model)
        self._exception = exc
        if isinstance(exc, errors.UnsupportedOperationError) and exc.param == "tools":
            why = f"failed: {model} cannot call tools ({exc.message}); use a model with tool calling, or list one "
            self._outcome = ("error", why + "in fallbacks")
            return
        self._outcome = ("error", f"failed on {model}: {type(exc).__name__}: {exc.message}")

    # ----- tools ------------------------------------------------------------------------------------------
    async def _tool_phase(self, index: int, tool_calls: Sequence[ToolCall]) -> AsyncGenerator[AgentEvent, None]:
        checked = [check_call(call, self.setup.tools) for call in tool_calls]
        for item in checked:
            yield ToolCallStarted(
                run_id=self.state.run_id,
                step=index,
                call_id=item.call.id,
                name=item.call.function.name,
                arguments=item.call.function.arguments,
            )
        records = [item.refused() for item in checked if not item.valid]
        waiting = [c for c in checked if c.valid and _waits(c)]
        ready = [c for c in checked if c.valid and not _waits(c)]
        async with contextlib.aclosing(self._decide_and_run(index, ready, waiting, records, {})) as stream:
            async for event in stream:
                yield event

    async def _decide_and_run(
        self,
        index: int,
        ready: list[CheckedCall],
        waiting: list[CheckedCall],
        records: list[ToolCallRecord],
        given: Mapping[str, Decision],
        announced: int = 0,
    ) -> AsyncGenerator[AgentEvent, None]:
        """Run the ready calls and the decided ones; pause if any call still waits for a decision.
        ``records[:announced]`` were reported before (a resumed step's finished calls)."""
        decided = await self._gather_decisions(index, waiting, given)
        marks: dict[str, str] = {}
        if decided is not None:
            for item in waiting:
                decision = decided[item.call.id]
                marks[item.call.id] = {"approve": "approved", "edit": "edited"}.get(decision.action, "")
                self._place(item, decision, ready, records)
        for record in records[announced:]:
            yield ToolResult(run_id=self.state.run_id, step=index, record=record)
        async with contextlib.aclosing(run_calls(ready, self.setup.tool_timeout, self.deadline)) as stream:
            async for record in stream:
                record.decision = marks.get(record.call_id) or record.decision  # type: ignore[assignment]
                records.append(record)
                yield ToolResult(run_id=self.state.run_id, step=index, record=record)
        if decided is None:
            self.state.pending = [item.pending(index) for item in waiting]
            self.state.done_calls = records
            names = ", ".join(p.name for p in self.state.pending)
            self._outcome = ("approval_required", f"paused: {len(waiting)} tool call(s) wait for a decision: {names}")
            return
        await self._complete_step(records)

    def _place(
        self, item: CheckedCall, decision: Decision, ready: list[CheckedCall], records: list[ToolCallRecord]
    ) -> None:
        """Put a decided call where it belongs: to run, or answered already."""
        if decision.action == "approve" and item.tool is not None and not item.tool.executable:
            decision = Decision.deny(item.call.id, "this tool has no handler; answer it with Decision.respond")
        updated, record = apply_decision(item, decision)
        if record is not None:
            records.append(record)
        elif updated.valid:
            ready.append(updated)
        else:
            records.append(updated.refused())

    async def _gather_decisions(
        self, index: int, waiting: list[CheckedCall], given: Mapping[str, Decision]
    ) -> dict[str, Decision] | None:
        """A decision for every waiting call (given, or from the approver), or None when some are missing
        (the ones made are recorded so a resume applies them)."""
        decided: dict[str, Decision] = {}
        for item in waiting:
            decision = given.get(item.call.id) or await self._ask(item.pending(index))
            if decision is not None:
                decided[item.call.id] = decision.model_copy(update={"call_id": item.call.id})
        if len(decided) == len(waiting):
            return decided
        if decided:
            await self.setup.recorder.record_decisions(self.state.run_id, list(decided.values()))
        return None

    async def _ask(self, pending: PendingCall) -> Decision | None:
        if self.setup.approver is None:
            return None
        answer = self.setup.approver(pending)
        return await answer if inspect.isawaitable(answer) else answer

    async def _complete_step(self, records: list[ToolCallRecord]) -> None:
        """Add the tool messages in the order the model made the calls, and save."""
        state = self.state
        by_id = {r.call_id: r for r in records}
        assistant = next(m for m in reversed(state.messages) if m.role == "assistant")
        ordered = [by_id[call.id] for call in assistant.tool_calls or [] if call.id in by_id]
        state.messages.extend(record.message() for record in ordered)
        state.steps[-1].calls = ordered
        state.pending, state.done_calls = [], []
        await self.setup.recorder.save(state)
        self._checkpoint = state.model_copy(deep=True)

    async def _resume_pending(self, decisions: Sequence[Decision]) -> AsyncGenerator[AgentEvent, None]:
        """Apply decisions (given now, or recorded by another process) to the calls a paused run waits on."""
        state = self.state
        recorded = await self.setup.recorder.take_decisions(state.run_id)
        given = {d.call_id: d for d in [*recorded, *decisions]}
        unknown = {d.call_id for d in decisions} - {p.call_id for p in state.pending}
        if unknown:
            raise errors.BadRequestError(f"no pending tool call {sorted(unknown)[0]!r} in run {state.run_id!r}")
        waiting = [
            CheckedCall(
                ToolCall(id=p.call_id, function=FunctionCall(name=p.name, arguments=p.raw_arguments)),
                self.setup.tools[p.name],
                dict(p.arguments),
            )
            for p in state.pending
        ]
        records = list(state.done_calls)
        step = state.pending[0].step
        async with contextlib.aclosing(self._decide_and_run(step, [], waiting, records, given, len(records))) as stream:
            async for event in stream:
                yield event

    # ----- the end ----------------------------------------------------------------------------------------
    async def _finish(self, reason: StopReason, explanation: str) -> RunResult:
        state = self.state
        state.stop_reason, state.status = reason, STATUS[reason]
        state.elapsed_s = self._elapsed()
        await self.setup.recorder.save(state)
        return RunResult(
            run_id=state.run_id,
            status=state.status,
            stop_reason=reason,
            explanation=explanation,
            text=self._final,
            model=state.steps[-1].model if state.steps else state.model,
            steps=state.steps,
            usage=state.usage,
            cost=state.cost if state.cost_known else None,
            pending=state.pending,
            error=state.error,
            messages=state.messages,
            exception=self._exception,
        )

    async def _save_interrupted(self) -> None:
        """The consumer stopped the run (or a tool source broke it): store the last consistent state, resumable
        (a paused run stays paused)."""
        checkpoint = self._checkpoint
        checkpoint.status = "paused" if checkpoint.pending else "stopped"
        checkpoint.elapsed_s = self._elapsed()
        with contextlib.suppress(Exception):
            await asyncio.shield(self.setup.recorder.save(checkpoint))


def _waits(item: CheckedCall) -> bool:
    """Whether a valid call needs a decision first: its tool asks for approval, or has no handler."""
    tool = item.tool
    return tool is not None and (not tool.executable or tool.needs_approval(item.arguments))
