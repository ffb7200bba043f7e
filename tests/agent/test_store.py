"""The run store on SQLite and PostgreSQL: migration 0002 matches the tables, rows round-trip, decisions from
another process are kept apart, and the per-model metrics are computed from stored runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from modelyard.storage.engine import create_engine
from modelyard.storage.migrate import alembic_config
from modelyard.storage.sql import SQLStore, open_store
from modelyard.storage.sql_runs import SQLRunStore, StoredRun, StoredStep, agent_runs, agent_steps
from tests.storage.conftest import DIALECTS, create_pg_database, drop_pg_database

RUN_TABLE_NAMES = {agent_steps.name, agent_runs.name}


@pytest.fixture(params=DIALECTS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    created = create_pg_database()
    yield created
    drop_pg_database(created)


@pytest.fixture
async def store(url: str) -> AsyncIterator[SQLStore]:
    opened = await open_store(url)
    yield opened
    await opened.close()


def _agent_diff(connection: Connection) -> list[Any]:
    """What differs between the database and the declared run tables (the other tables are not ours)."""

    def ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return type_ != "table" or name in RUN_TABLE_NAMES

    context = MigrationContext.configure(connection, opts={"include_object": ours})
    return list(compare_metadata(context, agent_runs.metadata))


async def test_migration_creates_the_run_tables_as_declared(store: SQLStore) -> None:
    async with store.engine.connect() as connection:
        assert await connection.run_sync(_agent_diff) == []
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        indexes = await connection.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("agent_runs")})
    assert tables >= RUN_TABLE_NAMES
    assert {"ix_agent_runs_updated_at", "ix_agent_runs_status", "ix_agent_runs_model"} <= indexes


async def test_downgrade_to_0001_drops_them(store: SQLStore) -> None:
    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")

    async with store.engine.begin() as connection:
        await connection.run_sync(downgrade)
    async with store.engine.connect() as connection:
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert not RUN_TABLE_NAMES & tables and "request_logs" in tables
    await store.migrate()


def step(run_id: str, position: int, model: str, calls: int, valid: int, executed: int, ok: int) -> StoredStep:
    return StoredStep(
        run_id=run_id,
        position=position,
        model=model,
        tool_calls=calls,
        valid_tool_calls=valid,
        executed_tool_calls=executed,
        succeeded_tool_calls=ok,
        calls=[{"name": "x\x00y"}],
    )


async def test_rows_round_trip_and_claims(store: SQLStore) -> None:
    runs = SQLRunStore(store.engine)
    run = StoredRun(id="run_1", model="m", state={"messages": [{"content": "nul \x00 here"}]}, metadata={"k": 1})
    await runs.create(run)
    await runs.save(run.model_copy(update={"status": "paused", "steps": 1}), [step("run_1", 1, "m", 2, 2, 1, 1)])
    found = await runs.get("run_1")
    assert found is not None and found.status == "paused" and found.steps == 1 and found.metadata == {"k": 1}
    assert found.state["messages"][0]["content"] == "nul \ufffd here"
    assert [s.tool_calls for s in await runs.steps("run_1")] == [2]
    assert await runs.claim("run_1") and not await runs.claim("run_1")  # the second process loses
    assert await runs.claim("run_1", force=True)
    assert [r.id for r in await runs.list(status="running")] == ["run_1"] and (await runs.list())[0].state == {}
    assert await runs.get("missing") is None and not await runs.claim("missing")
    assert await runs.delete("run_1") and await runs.steps("run_1") == []


async def test_decisions_are_kept_apart_from_saves(store: SQLStore) -> None:
    runs = SQLRunStore(store.engine)
    run = StoredRun(id="run_d", model="m", status="paused")
    await runs.create(run)
    assert await runs.record_decisions("run_d", {"c1": {"action": "approve"}})
    await runs.save(run)  # a save does not wipe decisions another process recorded
    assert await runs.record_decisions("run_d", {"c2": {"action": "deny", "reason": "no"}})
    assert await runs.take_decisions("run_d") == {"c1": {"action": "approve"}, "c2": {"action": "deny", "reason": "no"}}
    assert await runs.take_decisions("run_d") == {}
    assert not await runs.record_decisions("nope", {})


async def test_tool_metrics_per_model(store: SQLStore) -> None:
    runs = SQLRunStore(store.engine)
    await store.engine.dispose()
    async with store.engine.begin() as connection:
        await connection.execute(agent_steps.delete())
        await connection.execute(agent_runs.delete())
    cheap, good = "moonshot/kimi-k2", "openai/gpt-4o"
    rows = [
        ("r1", cheap, "final_answer", 3, 0.002, [(cheap, 4, 3, 3, 2), (cheap, 2, 2, 2, 2), (cheap, 0, 0, 0, 0)]),
        ("r2", cheap, "max_steps", 5, 0.004, [(cheap, 2, 1, 1, 0)]),
        ("r3", good, "final_answer", 2, 0.03, [(good, 2, 2, 2, 2), (good, 0, 0, 0, 0)]),
        ("r4", good, "final_answer", 2, 0.01, [(good, 1, 1, 1, 0), (cheap, 1, 1, 1, 1)]),  # fell back to cheap
    ]
    for run_id, model, reason, steps, cost, step_rows in rows:
        run = StoredRun(id=run_id, model=model, status="completed", stop_reason=reason, steps=steps, cost=cost)
        await runs.create(run)
        await runs.save(run, [step(run_id, i + 1, *s) for i, s in enumerate(step_rows)])
    await runs.create(StoredRun(id="live", model=good, status="running", steps=9))  # unfinished: not counted
    by_model = {m.model: m for m in await runs.tool_metrics()}
    assert list(by_model) == [cheap, good]  # most tool calls first
    kimi, gpt = by_model[cheap], by_model[good]
    assert (kimi.tool_calls, kimi.valid_tool_calls, kimi.executed_tool_calls, kimi.succeeded_tool_calls) == (9, 7, 7, 5)
    assert kimi.tool_call_validity == round(7 / 9, 4) and kimi.tool_success_rate == round(5 / 7, 4)
    assert (kimi.runs, kimi.completed_runs, kimi.steps_per_run, kimi.completion_rate) == (2, 1, 4.0, 0.5)
    assert kimi.cost_per_run == pytest.approx(0.003)
    assert (gpt.runs, gpt.steps, gpt.tool_calls, gpt.tool_success_rate, gpt.steps_per_run) == (
        2,
        3,
        3,
        round(2 / 3, 4),
        2.0,
    )
    assert gpt.cost_per_run == pytest.approx(0.02)
    assert gpt.model_dump()["tool_call_validity"] == 1.0  # the computed fields serialize for the workbench
    future = datetime.now(UTC) + timedelta(days=1)
    assert await runs.tool_metrics(since=future) == []


async def test_engine_is_shared_with_the_main_store(store: SQLStore) -> None:
    engine = create_engine(store.url)
    try:
        assert await SQLRunStore(engine).get("nothing") is None
    finally:
        await engine.dispose()
