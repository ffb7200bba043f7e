"""Storage: request logs, conversations, prompts, templates and virtual keys (SQLite or PostgreSQL).

``open_store(url)`` opens and migrates a database; ``LogWriter`` is the only way request logs are written.
The models and protocols import light; the SQL parts (SQLAlchemy, alembic) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelyard.storage.base import (
    Conversation,
    ConversationStore,
    KeyStore,
    LogPage,
    LogQuery,
    LogStore,
    PromptStore,
    RequestLog,
    SessionRevocationStore,
    StoredTemplate,
    SummaryRow,
    SystemPrompt,
    VirtualKey,
    hash_key,
    messages_text,
    new_virtual_key,
    response_text,
)

if TYPE_CHECKING:
    from modelyard.storage.engine import default_url, normalize_url
    from modelyard.storage.migrate import current_revision, head_revision, upgrade
    from modelyard.storage.sql import SQLStore, open_store
    from modelyard.storage.writer import LogWriter, WriterStats

_LAZY = {
    "default_url": "modelyard.storage.engine",
    "normalize_url": "modelyard.storage.engine",
    "current_revision": "modelyard.storage.migrate",
    "head_revision": "modelyard.storage.migrate",
    "upgrade": "modelyard.storage.migrate",
    "SQLStore": "modelyard.storage.sql",
    "open_store": "modelyard.storage.sql",
    "LogWriter": "modelyard.storage.writer",
    "WriterStats": "modelyard.storage.writer",
}

__all__ = [
    "Conversation",
    "ConversationStore",
    "KeyStore",
    "LogPage",
    "LogQuery",
    "LogStore",
    "LogWriter",
    "PromptStore",
    "RequestLog",
    "SQLStore",
    "SessionRevocationStore",
    "StoredTemplate",
    "SummaryRow",
    "SystemPrompt",
    "VirtualKey",
    "WriterStats",
    "current_revision",
    "default_url",
    "hash_key",
    "head_revision",
    "messages_text",
    "new_virtual_key",
    "normalize_url",
    "open_store",
    "response_text",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
