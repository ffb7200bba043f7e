"""Run the alembic migrations from code: at start (``open_store``) and from ``modelyard db upgrade``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.storage.engine import create_engine, is_memory_sqlite, normalize_url

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no file lock, one process should migrate first
    fcntl = None

MIGRATIONS = Path(__file__).parent / "migrations"
#: pg_advisory_xact_lock key, so several processes starting at once migrate one after another.
_PG_LOCK = 0x6D6F64656C  # "model"


def alembic_config(url: str | URL | None = None) -> Config:
    """An alembic ``Config`` for modelyard's migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision the package ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade_sync(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextlib.asynccontextmanager
async def _sqlite_file_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold ``<database>.migrate-lock`` so processes starting together on one SQLite file migrate in turn."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or is_memory_sqlite(engine.url) or fcntl is None or not database:
        yield
        return
    with Path(database + ".migrate-lock").open("a") as handle:
        await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (idempotent, safe with concurrent starts)."""
    async with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(select(func.pg_advisory_xact_lock(_PG_LOCK)))
        await connection.run_sync(_upgrade_sync, revision)


async def current_revision_engine(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current_sync)


async def upgrade(url: str | URL | None = None, revision: str = "head") -> None:
    """Migrate the database at ``url`` (default: the SQLite file in the data folder) to ``revision``."""
    engine = create_engine(url)
    try:
        await upgrade_engine(engine, revision)
    finally:
        await engine.dispose()


async def current_revision(url: str | URL | None = None) -> str | None:
    """The revision the database at ``url`` is at (``None`` before the first migration)."""
    engine = create_engine(url)
    try:
        return await current_revision_engine(engine)
    finally:
        await engine.dispose()
