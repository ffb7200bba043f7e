"""Agent runs and their steps on SQLAlchemy (SQLite or PostgreSQL), and tool-calling metrics per model.

A run's resumable state is an opaque JSON document (``StoredRun.state``) that only ``modelyard.agent`` reads;
this module stores it with the summary columns the workbench and the metrics query need. Decisions on paused
tool calls (approve / edit / deny / respond) may come from another process (the workbench, the CLI) and are
kept apart (``record_decisions`` / ``take_decisions``) so a saving run never overwrites them.

Example::

    runs = SQLRunStore(store.engine)
    for row in await runs.tool_metrics():
        print(row.model, row.tool_call_validity, row.tool_success_rate, row.steps_per_run, row.cost_per_run)
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field
from sqlalchemy import (
    RowMapping,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.storage.base import utcnow
from modelyard.storage.engine import scrub_nul
from modelyard.storage.schema import agent_runs, agent_steps

RunStatus = Literal["running", "paused", "completed", "stopped", "failed"]
#: Statuses a run can be resumed from (``running`` only with ``force``: the process that ran it may be gone).
RESUMABLE: tuple[RunStatus, ...] = ("paused", "stopped", "failed")


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StoredRun(_Row):
    """One agent run: summary columns plus the resumable ``state`` document."""

    id: str = Field(min_length=1, max_length=128)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    status: RunStatus = "running"
    stop_reason: str | None = None
    model: str | None = None
    served_model: str | None = None
    steps: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    tool_calls: int = 0
    error_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict)
    decisions: dict[str, Any] = Field(default_factory=dict)


class StoredStep(_Row):
    """One model call of a run and the tool calls it made (``calls``: one record per call)."""

    run_id: str
    position: int
    created_at: datetime = Field(default_factory=utcnow)
    model: str | None = None
    request_id: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    latency_ms: float | None = None
    tool_calls: int = 0
    valid_tool_calls: int = 0
    executed_tool_calls: int = 0
    succeeded_tool_calls: int = 0
    calls: list[dict[str, Any]] = Field(default_factory=list)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


class ModelToolMetrics(_Row):
    """How well one model does at tools. Call counts come from the steps it served; run counts from the runs
    that started on it (``model`` of the run).

    ``tool_call_validity``: calls whose arguments parsed and matched the schema / all calls.
    ``tool_success_rate``: calls that ran without error / calls that ran (denied and invalid calls excluded).
    """

    model: str
    runs: int = 0
    completed_runs: int = 0
    steps: int = 0
    run_steps: int = 0
    tool_calls: int = 0
    valid_tool_calls: int = 0
    executed_tool_calls: int = 0
    succeeded_tool_calls: int = 0
    total_cost: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tool_call_validity(self) -> float | None:
        return _ratio(self.valid_tool_calls, self.tool_calls)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tool_success_rate(self) -> float | None:
        return _ratio(self.succeeded_tool_calls, self.executed_tool_calls)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def steps_per_run(self) -> float | None:
        return _ratio(self.run_steps, self.runs)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_per_run(self) -> float | None:
        return None if self.total_cost is None or not self.runs else round(self.total_cost / self.runs, 8)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def completion_rate(self) -> float | None:
        return _ratio(self.completed_runs, self.runs)


_SUMMARY = [c for c in agent_runs.c if c.name not in ("state", "decisions")]


def _run_row(run: StoredRun) -> dict[str, Any]:
    row: dict[str, Any] = scrub_nul(run.model_dump(mode="python", exclude={"decisions"}))
    row["decisions"] = None
    return row


class SQLRunStore:
    """Agent runs over an async engine whose database is migrated (revision 0002 or later)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, run: StoredRun) -> StoredRun:
        async with self._engine.begin() as connection:
            await connection.execute(insert(agent_runs), [_run_row(run)])
        return run

    async def save(self, run: StoredRun, steps: Sequence[StoredStep] = ()) -> None:
        """Update the run's row (not its decisions) and add ``steps``, in one transaction."""
        values = {k: v for k, v in _run_row(run).items() if k not in ("id", "created_at", "decisions")}
        values["updated_at"] = utcnow()
        async with self._engine.begin() as connection:
            result = await connection.execute(update(agent_runs).where(agent_runs.c.id == run.id).values(**values))
            if result.rowcount == 0:
                await connection.execute(insert(agent_runs), [{**_run_row(run), **values}])
            if steps:
                rows = [scrub_nul(s.model_dump(mode="python")) for s in steps]
                await connection.execute(insert(agent_steps), rows)

    async def claim(self, run_id: str, *, force: bool = False) -> bool:
        """Mark a resumable run ``running``; False when it is not resumable (or another process took it)."""
        allowed: Iterable[str] = (*RESUMABLE, "running") if force else RESUMABLE
        statement = (
            update(agent_runs)
            .where(agent_runs.c.id == run_id, agent_runs.c.status.in_(list(allowed)))
            .values(status="running", updated_at=utcnow())
        )
        async with self._engine.begin() as connection:
            return bool((await connection.execute(statement)).rowcount)

    async def get(self, run_id: str) -> StoredRun | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(agent_runs).where(agent_runs.c.id == run_id))).mappings().first()
        return None if row is None else _stored_run(row)

    async def list(
        self, limit: int = 50, offset: int = 0, *, status: str | None = None, model: str | None = None
    ) -> list[StoredRun]:
        """Most recently updated first, without ``state`` and ``decisions``."""
        statement = select(*_SUMMARY).order_by(agent_runs.c.updated_at.desc(), agent_runs.c.id)
        if status is not None:
            statement = statement.where(agent_runs.c.status == status)
        if model is not None:
            statement = statement.where(agent_runs.c.model == model)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement.limit(limit).offset(offset))).mappings().all()
        return [_stored_run(row) for row in rows]

    async def steps(self, run_id: str) -> builtins.list[StoredStep]:
        statement = select(agent_steps).where(agent_steps.c.run_id == run_id).order_by(agent_steps.c.position)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [StoredStep.model_validate({k: v for k, v in row.items() if v is not None}) for row in rows]

    async def record_decisions(self, run_id: str, decisions: dict[str, dict[str, Any]]) -> bool:
        """Merge decisions (by tool call id) into the run's; False when there is no such run."""
        async with self._engine.begin() as connection:
            found = select(agent_runs.c.decisions).where(agent_runs.c.id == run_id).with_for_update()
            row = (await connection.execute(found)).first()
            if row is None:
                return False
            merged = {**(row[0] or {}), **scrub_nul(decisions)}
            await connection.execute(update(agent_runs).where(agent_runs.c.id == run_id).values(decisions=merged))
        return True

    async def take_decisions(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The recorded decisions, removed from the run (each is applied once)."""
        async with self._engine.begin() as connection:
            found = select(agent_runs.c.decisions).where(agent_runs.c.id == run_id).with_for_update()
            row = (await connection.execute(found)).first()
            if row is None or not row[0]:
                return {}
            await connection.execute(update(agent_runs).where(agent_runs.c.id == run_id).values(decisions=None))
        return dict(row[0])

    async def delete(self, run_id: str) -> bool:
        async with self._engine.begin() as connection:
            await connection.execute(delete(agent_steps).where(agent_steps.c.run_id == run_id))
            result = await connection.execute(delete(agent_runs).where(agent_runs.c.id == run_id))
        return result.rowcount > 0

    async def tool_metrics(self, *, since: datetime | None = None) -> builtins.list[ModelToolMetrics]:
        """Tool-call validity, tool success rate, steps and cost per run, for each model (most used first)."""
        found: dict[str, dict[str, Any]] = {}
        async with self._engine.connect() as connection:
            for row in (await connection.execute(_step_totals(since))).mappings():
                found.setdefault(row["model"], {}).update({k: int(v or 0) for k, v in row.items() if k != "model"})
            for row in (await connection.execute(_run_totals(since))).mappings():
                entry = found.setdefault(row["model"], {})
                entry.update(runs=int(row["runs"]), completed_runs=int(row["completed_runs"] or 0))
                entry.update(run_steps=int(row["run_steps"] or 0), total_cost=row["total_cost"])
        metrics = [ModelToolMetrics(model=model, **values) for model, values in found.items()]
        return sorted(metrics, key=lambda m: (-m.tool_calls, -m.runs, m.model))


def _step_totals(since: datetime | None) -> Any:
    statement = select(
        agent_steps.c.model,
        func.count().label("steps"),
        func.sum(agent_steps.c.tool_calls).label("tool_calls"),
        func.sum(agent_steps.c.valid_tool_calls).label("valid_tool_calls"),
        func.sum(agent_steps.c.executed_tool_calls).label("executed_tool_calls"),
        func.sum(agent_steps.c.succeeded_tool_calls).label("succeeded_tool_calls"),
    ).where(agent_steps.c.model.is_not(None))
    if since is not None:
        statement = statement.where(agent_steps.c.created_at >= since)
    return statement.group_by(agent_steps.c.model)


def _run_totals(since: datetime | None) -> Any:
    completed = func.sum(case((agent_runs.c.stop_reason == "final_answer", 1), else_=0))
    statement = select(
        agent_runs.c.model,
        func.count().label("runs"),
        completed.label("completed_runs"),
        func.sum(agent_runs.c.steps).label("run_steps"),
        func.sum(agent_runs.c.cost).label("total_cost"),
    ).where(agent_runs.c.model.is_not(None), agent_runs.c.status != "running")
    if since is not None:
        statement = statement.where(agent_runs.c.created_at >= since)
    return statement.group_by(agent_runs.c.model)


def _stored_run(row: RowMapping) -> StoredRun:
    return StoredRun.model_validate({k: v for k, v in row.items() if v is not None})
