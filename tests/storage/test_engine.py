"""URLs, engines, the default database, the models' helpers, and the storage layer's import rule."""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import modelyard.storage as storage
from modelyard.config import data_dir
from modelyard.errors import ConfigError
from modelyard.storage import (
    ConversationStore,
    KeyStore,
    LogStore,
    PromptStore,
    RequestLog,
    SessionRevocationStore,
    StoredTemplate,
    messages_text,
    normalize_url,
    open_store,
    response_text,
)
from modelyard.storage.engine import create_engine
from modelyard.storage.writer import BatchSink

STORAGE = Path(storage.__file__).parent
FOUNDATION = (
    "modelyard.types",
    "modelyard.errors",
    "modelyard.config",
    "modelyard.pipeline",
    "modelyard.streaming",
    "modelyard.watchdog",
    "modelyard.storage",
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgres://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+psycopg2://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+asyncpg://u@db/app?ssl=require", "postgresql+asyncpg://u@db/app?ssl=require"),
    ],
)
def test_urls_normalize_to_async_drivers(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        normalize_url("mysql://u@db/app")
    with pytest.raises(ConfigError):
        normalize_url("not a url")


def test_home_is_expanded_in_sqlite_paths() -> None:
    assert normalize_url("sqlite:///~/my.db").database == str(Path.home() / "my.db")


async def test_default_store_is_a_sqlite_file_in_the_data_dir() -> None:
    store = await open_store()
    try:
        assert store.dialect == "sqlite"
        assert Path(str(store.url.database)) == data_dir() / "modelyard.db"
        assert (data_dir() / "modelyard.db").is_file()
        async with store.engine.connect() as connection:
            assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await connection.scalar(text("PRAGMA busy_timeout")) == 30000
            assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
    finally:
        await store.close()


async def test_in_memory_sqlite_works() -> None:
    async with await open_store("sqlite://") as store:
        await store.logs.write_batch([RequestLog(request_id="r1", messages=[{"role": "user", "content": "hi"}])])
        assert [log.request_id for log in await store.logs.search("hi")] == ["r1"]


async def test_engine_keyword_overrides() -> None:
    engine = create_engine("sqlite://", echo=False)
    try:
        assert engine.dialect.name == "sqlite"
    finally:
        await engine.dispose()


def test_search_text_helpers() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image_url", "image_url": {}}]},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "think",
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "fn", "arguments": '{"a": 1}'}}],
        },
    ]
    assert messages_text(messages) == 'sys\npart\nthink fn {"a": 1}'
    assert response_text({"choices": [{"message": {"role": "assistant", "content": "out"}}]}) == "out"
    assert response_text(None) == "" and messages_text(None) == ""
    log = RequestLog(request_id="r", created_at=datetime(2025, 1, 1), messages=messages)
    assert log.created_at.tzinfo is not None and log.prompt_text == messages_text(messages)
    assert RequestLog(request_id="r", prompt_text="given").prompt_text == "given"


def test_template_yaml_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="mapping"):
        StoredTemplate(name="t", yaml="- just\n- a list\n")


def _modelyard_imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [name for name in found if name.split(".")[0] == "modelyard"]


def test_storage_imports_only_the_foundation() -> None:
    """storage/ is "support": it may import the foundation and itself, nothing deeper."""
    offenders = {
        f"{path.relative_to(STORAGE)}: {name}"
        for path in STORAGE.rglob("*.py")
        for name in _modelyard_imports(path)
        if not any(name == allowed or name.startswith(allowed + ".") for allowed in FOUNDATION)
    }
    assert offenders == set()


def test_public_api() -> None:
    assert all(hasattr(storage, name) for name in storage.__all__)
    with pytest.raises(AttributeError):
        storage.no_such_thing  # noqa: B018


async def test_sql_store_satisfies_the_protocols() -> None:
    async with await open_store("sqlite://") as store:
        logs: LogStore = store.logs  # checked by mypy
        conversations: ConversationStore = store.conversations
        prompts: PromptStore = store.prompts
        keys: KeyStore = store.keys
        sink: BatchSink = store.logs
        logouts: SessionRevocationStore = store.web_sessions
        assert isinstance(logs, LogStore) and isinstance(conversations, ConversationStore)
        assert isinstance(prompts, PromptStore) and isinstance(keys, KeyStore) and sink is logs
        assert isinstance(logouts, SessionRevocationStore)
