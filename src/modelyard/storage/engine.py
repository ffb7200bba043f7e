"""Database URLs and async engines: SQLite (aiosqlite, the default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from modelyard.config import data_dir
from modelyard.errors import ConfigError

SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+asyncpg"
_SQLITE_NAMES = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}
_POSTGRES_NAMES = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+pg8000",
}
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


_PRAGMA_ATTEMPTS = 20


def default_url() -> str:
    """``sqlite+aiosqlite:///<data_dir>/modelyard.db`` (the folder is created)."""
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"{SQLITE_DRIVER}:///{folder / 'modelyard.db'}"


def normalize_url(url: str | URL | None) -> URL:
    """Parse ``url`` and point it at the async driver of its dialect (``None`` means the default)."""
    try:
        parsed = make_url(url if url is not None else default_url())
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {exc}") from exc
    if parsed.drivername in _SQLITE_NAMES:
        parsed = parsed.set(drivername=SQLITE_DRIVER)
        if parsed.database and parsed.database.startswith("~"):
            parsed = parsed.set(database=str(Path(parsed.database).expanduser()))
        return parsed
    if parsed.drivername in _POSTGRES_NAMES:
        return parsed.set(drivername=POSTGRES_DRIVER)
    raise ConfigError(f"unsupported database {parsed.drivername!r}: use sqlite:/// or postgresql://")


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def json_dumps(value: Any) -> str:
    """JSON for JSON columns: orjson, non-string keys allowed, pydantic models as their ``model_dump``,
    other unknown objects as ``str``."""
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_default(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else str(value)


def scrub_nul(value: Any) -> Any:
    """``value`` with NUL characters replaced by U+FFFD in every string (PostgreSQL refuses NUL in text/JSON)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {scrub_nul(k): scrub_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_nul(v) for v in value]
    return value


def create_engine(url: str | URL | None = None, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` with the settings modelyard relies on (WAL, timeouts, pre-ping)."""
    parsed = normalize_url(url)
    options: dict[str, Any] = {
        "json_serializer": json_dumps,
        "json_deserializer": orjson.loads,
        "pool_pre_ping": True,
    }
    if parsed.get_backend_name() == "sqlite":
        options.update(_sqlite_options(parsed))
    else:
        options.update(pool_size=5, max_overflow=10, pool_recycle=1800, pool_timeout=30)
        options["connect_args"] = {"timeout": 10, "command_timeout": 120}
    options.update(kwargs)
    engine = create_async_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_options(url: URL) -> dict[str, Any]:
    if is_memory_sqlite(url):
        return {"poolclass": StaticPool, "connect_args": {"check_same_thread": False, "cached_statements": 16}}
    assert url.database is not None
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # Each batch size is its own multi-row INSERT: sqlite3's default 128-statement cache kept ~100 MB of them.
    # No pre-ping: a file connection cannot go stale, and the ping was one more thread hop per checkout.
    return {"connect_args": {"timeout": 30, "cached_statements": 16}, "pool_pre_ping": False}


def apply_sqlite_pragmas(execute: Callable[[str], object]) -> None:
    """``SQLITE_PRAGMAS`` on a new connection. Setting the journal mode can fail at once with "database is
    locked" (SQLite skips the busy wait when waiting could deadlock) while another connection migrates a new
    file, so a locked pragma is tried again for up to ~10 s."""
    for pragma in SQLITE_PRAGMAS:
        for attempt in range(1, _PRAGMA_ATTEMPTS + 1):
            try:
                execute(pragma)
                break
            except Exception as exc:  # sqlite3's, or the aiosqlite adapter's, OperationalError
                if "database is locked" not in str(exc) or attempt == _PRAGMA_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)


def _sqlite_on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        apply_sqlite_pragmas(cursor.execute)
    finally:
        cursor.close()
