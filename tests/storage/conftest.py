"""The storage suite runs over SQLite and PostgreSQL.

``db_url`` is parametrized: a SQLite file in a temporary folder, and a fresh PostgreSQL database per test
module (created on ``MODELYARD_TEST_PG`` or ``postgresql://postgres@127.0.0.1:5432/test``, dropped after).
``store`` opens a migrated ``SQLStore`` on it with every table emptied, so tests do not see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from modelyard.storage import RequestLog, SQLStore, open_store
from modelyard.storage.schema import ALL_TABLES

PG_ADMIN_URL = os.environ.get("MODELYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
DIALECTS = ["sqlite", "postgresql"]


def _run(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coro)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(_dsn(PG_ADMIN_URL), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_pg_database() -> str:
    """A new empty PostgreSQL database (its URL); skips the test when PostgreSQL cannot be reached."""
    name = f"modelyard_test_{uuid.uuid4().hex[:12]}"
    try:
        _run(_admin(f'CREATE DATABASE "{name}"'))  # a generated identifier: DDL cannot bind it
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(
            f"POSTGRESQL UNREACHABLE at {make_url(PG_ADMIN_URL).render_as_string()}: {exc!r} — "
            "the PostgreSQL half of the storage suite did NOT run"
        )
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module", params=DIALECTS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per test module and dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'modelyard.db'}"
        return
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SQLStore]:
    """A migrated store on ``db_url`` with every table emptied."""
    opened = await open_store(db_url)
    async with opened.engine.begin() as connection:
        for table in ALL_TABLES:
            await connection.execute(delete(table))
    yield opened
    await opened.close()


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / "spill"


T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_log(n: int, **fields: Any) -> RequestLog:
    """A complete request log; ``fields`` override."""
    data: dict[str, Any] = {
        "request_id": f"req_{n:06d}",
        "created_at": T0,
        "caller": "local",
        "requested_model": "fast",
        "served_model": "openai/gpt-4o-mini",
        "provider": "openai",
        "messages": [{"role": "user", "content": f"question number {n}"}],
        "response": {"choices": [{"message": {"role": "assistant", "content": f"answer number {n}"}}]},
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost": 0.5,
        "cost_source": "computed",
        "latency_ms": 100.0,
    }
    data.update(fields)
    return RequestLog(**data)
