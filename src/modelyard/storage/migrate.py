"""Run the alembic migrations from code: at start (``open_store``) and from ``modelyard db upgrade``.

A database already at the newest revision is recognised with one plain query, without importing alembic
(which pulls in mako and pygments: ~10 MB that a long-running server would keep, since alembic registers
itself with SQLAlchemy and cannot be unloaded). ``upgrade_in_child`` migrates in a short-lived process, so a
server that starts on an old or empty database does not load alembic either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from sqlalchemy import column, func, inspect, select, table
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.storage.engine import create_engine, is_memory_sqlite, normalize_url

if TYPE_CHECKING:
    from alembic.config import Config

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no file lock, one process should migrate first
    fcntl = None

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
#: pg_advisory_xact_lock key, so several processes starting at once migrate one after another.
_PG_LOCK = 0x6D6F64656C  # "model"
#: ``revision = "0002"`` / ``down_revision: str | None = "0001"`` (or ``None``) in a version file.
_ASSIGNMENT = re.compile(r"""^(revision|down_revision)\b[^=\n]*=\s*(None|"[^"\n]*"|'[^'\n]*')\s*$""", re.MULTILINE)
#: How ``upgrade_in_child`` hands the URL over (an environment variable: a password stays out of ``ps``).
_CHILD_URL_ENV = "MODELYARD_MIGRATE_URL"

logger = logging.getLogger(__name__)


def alembic_config(url: str | URL | None = None) -> Config:
    """An alembic ``Config`` for modelyard's migrations (no ini file needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", _render(url).replace("%", "%%"))
    return config


def _render(url: str | URL) -> str:
    return normalize_url(url).render_as_string(hide_password=False)


def shipped_head() -> str | None:
    """The head of the version files, read without alembic; ``None`` unless they form one plain chain."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_ASSIGNMENT.findall(path.read_text()))
        if "revision" not in found or "down_revision" not in found:
            return None  # a merge (a tuple) or something unusual: alembic decides
        revisions.add(found["revision"][1:-1])
        if found["down_revision"] != "None":
            parents.add(found["down_revision"][1:-1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def head_revision() -> str | None:
    """The newest revision the package ships."""
    head = shipped_head()
    if head is not None:
        return head
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _stamped(connection: Connection) -> list[str]:
    """The revisions in the version table (none before the first migration)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return []
    return list(connection.execute(select(column("version_num")).select_from(table(VERSION_TABLE))).scalars())


def _upgrade_sync(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current_sync(connection: Connection) -> str | None:
    stamped = _stamped(connection)
    if len(stamped) <= 1:
        return stamped[0] if stamped else None
    from alembic.runtime.migration import MigrationContext  # several heads: alembic explains

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


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the database is at the shipped head (checked without alembic)."""
    head = shipped_head()
    if head is None:
        return False
    async with engine.connect() as connection:
        return await connection.run_sync(_stamped) == [head]


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (idempotent, safe with concurrent starts)."""
    if revision in ("head", shipped_head()) and await at_head(engine):
        return
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


async def _needs_upgrade(url: str | URL | None) -> bool:
    engine = create_engine(url)
    try:
        return not await at_head(engine)
    finally:
        await engine.dispose()


def upgrade_in_child(url: str | URL | None = None) -> bool:
    """Migrate the database at ``url`` to head in a child process, unless it is there already.

    For a process that should not load alembic (the server, before it starts). False when it did not: the
    database is in memory (nothing to share), unreachable, or the child failed; the in-process migration
    then runs as before and reports the error.
    """
    try:
        parsed = normalize_url(url)
        if is_memory_sqlite(parsed):
            return False
        if not asyncio.run(_needs_upgrade(parsed)):
            return True
    except Exception:  # a bad URL or an unreachable database: the in-process migration reports it
        return False
    command = [sys.executable, "-c", "from modelyard.storage.migrate import _child_main; _child_main()"]
    env = {**os.environ, _CHILD_URL_ENV: _render(parsed)}
    done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)  # noqa: S603
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        logger.warning("migrating in a child process failed (%s): migrating in this process", last[0])
    return done.returncode == 0


def _child_main() -> None:
    """The child process of ``upgrade_in_child``."""
    asyncio.run(upgrade(os.environ[_CHILD_URL_ENV]))
