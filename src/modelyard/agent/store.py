"""Runs in the database: the resumable state after every step, one row per finished step, and decisions on
paused calls that another process (the workbench, the CLI) recorded.

Example::

    recorder = RunRecorder(SQLRunStore(store.engine))
    state = await recorder.load("run_...")
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from modelyard import errors
from modelyard.agent.state import Decision, RunState, StepRecord
from modelyard.storage.sql_runs import SQLRunStore, StoredRun, StoredStep


def stored_step(run_id: str, step: StepRecord) -> StoredStep:
    """The row of one finished step (tool-call counts for the metrics included)."""
    calls = step.calls
    return StoredStep(
        run_id=run_id,
        position=step.index,
        model=step.model,
        request_id=step.request_id,
        finish_reason=step.finish_reason,
        prompt_tokens=step.usage.prompt_tokens if step.usage else None,
        completion_tokens=step.usage.completion_tokens if step.usage else None,
        cost=step.cost,
        latency_ms=step.latency_ms,
        tool_calls=len(calls),
        valid_tool_calls=sum(c.valid for c in calls),
        executed_tool_calls=sum(c.executed for c in calls),
        succeeded_tool_calls=sum(c.executed and c.ok for c in calls),
        calls=[c.model_dump(mode="json", exclude_none=True) for c in calls],
    )


def stored_run(state: RunState) -> StoredRun:
    """The run's row: summary columns and the whole state."""
    return StoredRun(
        id=state.run_id,
        status=state.status,
        stop_reason=state.stop_reason,
        model=state.models[0],
        served_model=state.steps[-1].model if state.steps else None,
        steps=len(state.steps),
        prompt_tokens=state.usage.prompt_tokens,
        completion_tokens=state.usage.completion_tokens,
        cost=round(state.cost, 10) if state.cost_known else None,
        tool_calls=sum(len(s.calls) for s in state.steps),
        error_message=state.error.message if state.error else None,
        metadata=state.metadata,
        state=state.model_dump(mode="json", exclude_none=True),
    )


class RunRecorder:
    """Saves and loads ``RunState`` through a ``SQLRunStore``."""

    def __init__(self, store: SQLRunStore) -> None:
        self.store = store

    async def save(self, state: RunState) -> None:
        """Store the state and every step that finished since the last save (a paused step waits)."""
        finished = len(state.steps) - (1 if state.pending else 0)
        new = [stored_step(state.run_id, s) for s in state.steps[state.saved_steps : finished]]
        before = state.saved_steps
        state.saved_steps = max(before, finished)
        try:
            await self.store.save(stored_run(state), new)
        except BaseException:
            state.saved_steps = before
            raise

    async def load(self, run_id: str) -> RunState:
        found = await self.store.get(run_id)
        if found is None:
            raise errors.NotFoundError(f"no agent run {run_id!r}", param="run_id", code="run_not_found")
        try:
            return RunState.model_validate(found.state)
        except ValidationError as exc:
            raise errors.BadRequestError(f"agent run {run_id!r} has unreadable state: {exc}") from None

    async def claim(self, run_id: str, *, force: bool = False) -> None:
        """Take a run for resuming; fails when it finished or another process is running it."""
        if await self.store.claim(run_id, force=force):
            return
        found = await self.store.get(run_id)
        if found is None:
            raise errors.NotFoundError(f"no agent run {run_id!r}", param="run_id", code="run_not_found")
        if found.status == "running":
            raise errors.ConflictError(
                f"agent run {run_id!r} is running in another process (resume with force=True if that process died)"
            )
        raise errors.BadRequestError(
            f"agent run {run_id!r} already finished ({found.stop_reason}); start a new run", param="run_id"
        )

    async def record_decisions(self, run_id: str, decisions: Sequence[Decision]) -> None:
        data = {d.call_id: d.model_dump(exclude_none=True) for d in decisions}
        if not await self.store.record_decisions(run_id, data):
            raise errors.NotFoundError(f"no agent run {run_id!r}", param="run_id", code="run_not_found")

    async def take_decisions(self, run_id: str) -> list[Decision]:
        recorded = await self.store.take_decisions(run_id)
        return [Decision.model_validate({**d, "call_id": call_id}) for call_id, d in recorded.items()]
