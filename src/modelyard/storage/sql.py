"""``SQLStore``: every storage protocol on one SQLAlchemy async engine (SQLite by default, PostgreSQL at scale).

The protocols share method names (``get``, ``list``…), so the store hands out one object per protocol:
``store.logs`` (``LogStore``), ``store.conversations`` (``ConversationStore``), ``store.prompts``
(``PromptStore``), ``store.keys`` (``KeyStore``), ``store.runs`` and ``store.web_sessions``
(``SessionRevocationStore``).
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.storage.engine import create_engine, normalize_url
from modelyard.storage.sql_conversations import SQLConversationStore
from modelyard.storage.sql_logs import SQLLogStore
from modelyard.storage.sql_prompts import SQLKeyStore, SQLPromptStore
from modelyard.storage.sql_runs import SQLRunStore
from modelyard.storage.sql_sessions import SQLSessionRevocationStore


class SQLStore:
    """One database: logs, conversations, prompts and templates, virtual keys."""

    def __init__(self, url: str | URL | None = None, *, engine: AsyncEngine | None = None) -> None:
        self.url: URL = normalize_url(url) if engine is None else engine.url
        self.engine: AsyncEngine = engine if engine is not None else create_engine(self.url)
        self.logs = SQLLogStore(self.engine)
        self.conversations = SQLConversationStore(self.engine)
        self.prompts = SQLPromptStore(self.engine)
        self.keys = SQLKeyStore(self.engine)
        self.runs = SQLRunStore(self.engine)
        self.web_sessions = SQLSessionRevocationStore(self.engine)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision`` (idempotent; safe with several processes on PostgreSQL)."""
        from modelyard.storage.migrate import upgrade_engine  # alembic is heavy: load it only to migrate

        await upgrade_engine(self.engine, revision)

    async def revision(self) -> str | None:
        from modelyard.storage.migrate import current_revision_engine

        return await current_revision_engine(self.engine)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.logs.close()
        await self.engine.dispose()

    async def __aenter__(self) -> SQLStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"SQLStore({self.url.render_as_string(hide_password=True)!r})"


async def open_store(url: str | URL | None = None, *, migrate: bool = True) -> SQLStore:
    """A ``SQLStore`` for ``url`` (default: ``sqlite+aiosqlite:///<data_dir>/modelyard.db``), migrated."""
    store = SQLStore(url)
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store
