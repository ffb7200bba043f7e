"""Migrations create every table, index and full-text object on both dialects, and re-run harmlessly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from modelyard.storage import LogQuery, current_revision, head_revision, open_store, upgrade
from modelyard.storage.engine import create_engine
from modelyard.storage.migrate import alembic_config
from modelyard.storage.schema import is_full_text_object, metadata, request_logs
from tests.storage.conftest import DIALECTS, create_pg_database, drop_pg_database, make_log


@pytest.fixture(params=DIALECTS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, new for each test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def _inventory(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    return {
        "tables": tables,
        "columns": {t: {c["name"] for c in inspector.get_columns(t)} for t in tables},
        "indexes": {t: {i["name"] for i in inspector.get_indexes(t)} for t in tables},
    }


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"include_name": lambda name, *_: not is_full_text_object(name)},
    )
    return list(compare_metadata(context, metadata))


async def test_upgrade_creates_everything_and_matches_the_metadata(fresh_url: str) -> None:
    assert await current_revision(fresh_url) is None
    await upgrade(fresh_url)
    assert await current_revision(fresh_url) == head_revision() == "0004"
    engine = create_engine(fresh_url)
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(_inventory)
            assert set(metadata.tables) | {"alembic_version"} <= found["tables"]
            for name, table in metadata.tables.items():
                assert {c.name for c in table.columns} <= found["columns"][name]
            assert {"ix_request_logs_created_at", "ix_request_logs_caller"} <= found["indexes"]["request_logs"]
            assert await connection.run_sync(_diff) == []
            await _assert_full_text_objects(connection, found)
    finally:
        await engine.dispose()


async def _assert_full_text_objects(connection: Any, found: dict[str, Any]) -> None:
    if connection.dialect.name == "sqlite":
        rows = await connection.execute(
            text("SELECT type, name FROM sqlite_master WHERE name LIKE 'request_logs_fts%'")
        )
        objects = set(rows.all())
        assert ("table", "request_logs_fts") in objects
        assert {("trigger", f"request_logs_fts_a{x}") for x in "du"} <= objects
        assert ("trigger", "request_logs_fts_ai") not in objects  # inserts index their rows per batch (0003)
    else:
        assert "search_vector" in found["columns"]["request_logs"]
        definition = await connection.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_request_logs_search_vector'")
        )
        assert "gin" in definition.lower()


async def test_upgrade_is_rerunnable_and_keeps_data(fresh_url: str) -> None:
    store = await open_store(fresh_url)
    try:
        await store.logs.write_batch([make_log(1, messages=[{"role": "user", "content": "persistent walrus"}])])
    finally:
        await store.close()
    await upgrade(fresh_url)
    store = await open_store(fresh_url)
    try:
        assert await store.revision() == head_revision()
        assert await store.logs.count() == 1
        assert [log.request_id for log in await store.logs.search("walrus")] == ["req_000001"]
    finally:
        await store.close()


async def test_downgrade_to_base_and_back(fresh_url: str) -> None:
    await upgrade(fresh_url)
    engine = create_engine(fresh_url)

    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    try:
        async with engine.begin() as connection:
            await connection.run_sync(downgrade)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables <= {"alembic_version"}
    finally:
        await engine.dispose()
    await upgrade(fresh_url)
    assert await current_revision(fresh_url) == head_revision()


def test_alembic_command_line_path_and_offline_sql(fresh_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a connection handed in, env.py opens its own async engine (as the ``alembic`` CLI does)."""
    command.upgrade(alembic_config(fresh_url), "head")
    command.upgrade(alembic_config(fresh_url), "head", sql=True)
    script = capsys.readouterr().out
    assert "CREATE TABLE request_logs" in script
    assert ("tsvector" in script) == fresh_url.startswith("postgresql")
    assert ("fts5" in script) == fresh_url.startswith("sqlite")


async def test_query_uses_bound_parameters_only(fresh_url: str) -> None:
    """A hostile search string or filter value is data, never SQL."""
    store = await open_store(fresh_url)
    try:
        await store.logs.write_batch([make_log(1)])
        hostile = "x'); DROP TABLE request_logs; --"
        assert await store.logs.search(hostile) == []
        assert (await store.logs.query(LogQuery(caller=hostile))).items == []
        async with store.engine.connect() as connection:
            assert await connection.scalar(select(request_logs.c.request_id)) == "req_000001"
    finally:
        await store.close()


async def test_concurrent_starts_migrate_once(fresh_url: str) -> None:
    """Several workers starting together on an empty database: one migrates, the others wait and find it done."""
    await asyncio.gather(*(upgrade(fresh_url) for _ in range(4)))
    assert await current_revision(fresh_url) == head_revision()
