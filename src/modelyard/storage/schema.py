"""The tables, as SQLAlchemy Core metadata: what queries are written against.

The migrations in ``migrations/versions`` create these tables (plus the full-text index, which is
dialect-specific and lives only in the migration); a test checks both agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

#: JSON on SQLite, JSONB on PostgreSQL. ``none_as_null`` stores Python ``None`` as SQL NULL.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
#: A 64-bit key on PostgreSQL; plain INTEGER on SQLite so it is the rowid alias (FTS5 needs it).
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: Names of the full-text objects the migration creates outside this metadata.
FTS_TABLE = "request_logs_fts"
TSVECTOR_COLUMN = "search_vector"
TSVECTOR_INDEX = "ix_request_logs_search_vector"
#: SQLite indexes new request logs once per batch (a trigger per row cost more than the rest of the insert):
#: read ``LAST_LOG_ID`` in the batch's write transaction, insert, then run ``INDEX_LOGS_AFTER`` with it.
LAST_LOG_ID = "SELECT coalesce(max(id), 0) FROM request_logs"
INDEX_LOGS_AFTER = (
    f"INSERT INTO {FTS_TABLE}(rowid, prompt_text, response_text) "  # noqa: S608 (constant names only)
    "SELECT id, prompt_text, response_text FROM request_logs WHERE id > ?"
)


def is_full_text_object(name: str | None) -> bool:
    """Whether a database object belongs to full-text search (made by the migration, not in ``metadata``)."""
    return bool(name) and (str(name).startswith(FTS_TABLE) or name in (TSVECTOR_COLUMN, TSVECTOR_INDEX))


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every dialect (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(name: str, **kw: Any) -> Column[datetime]:
    return Column(name, UTCDateTime(), **kw)


request_logs = Table(
    "request_logs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False, unique=True),
    _ts("created_at", nullable=False, index=True),
    Column("caller", String(), nullable=False, index=True),
    Column("requested_model", String(), index=True),
    Column("served_model", String(), index=True),
    Column("provider", String()),
    Column("attempts", JSONType),
    Column("messages", JSONType),
    Column("response", JSONType),
    Column("params", JSONType),
    Column("tools", JSONType),
    Column("tool_calls", JSONType),
    Column("finish_reason", String()),
    Column("prompt_tokens", BigInteger),
    Column("completion_tokens", BigInteger),
    Column("cached_tokens", BigInteger),
    Column("reasoning_tokens", BigInteger),
    Column("cost", Float),
    Column("cost_source", String(), nullable=False),
    Column("billed_cost", Float),
    Column("latency_ms", Float),
    Column("ttft_ms", Float),
    Column("tokens_per_second", Float),
    Column("status", String(), nullable=False),
    Column("error_type", String()),
    Column("error_message", Text),
    Column("stream", Boolean, nullable=False),
    Column("tags", JSONType),
    Column("metadata", JSONType),
    Column("conversation_id", String(), index=True),
    Column("cache_hit", Boolean, nullable=False),
    Column("fallback_used", Boolean, nullable=False),
    Column("run_id", String(), index=True),
    Column("feedback", Text),
    Column("prompt_text", Text),
    Column("response_text", Text),
)

request_log_tags = Table(
    "request_log_tags",
    metadata,
    Column(
        "request_id",
        String(128),
        ForeignKey("request_logs.request_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(), primary_key=True),
    Index("ix_request_log_tags_tag", "tag"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("title", Text, nullable=False),
    Column("model", String()),
    Column("system_prompt", Text),
    Column("metadata", JSONType),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False, index=True),
    Column("forked_from", String(128)),
    Column("forked_at_message", Integer),
)

conversation_messages = Table(
    "conversation_messages",
    metadata,
    Column(
        "conversation_id",
        String(128),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("message", JSONType, nullable=False),
)

system_prompts = Table(
    "system_prompts",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("text", Text, nullable=False),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
)

templates = Table(
    "templates",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("yaml", Text, nullable=False),
    Column("content", JSONType),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
)

virtual_keys = Table(
    "virtual_keys",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False),
    Column("allowed_models", JSONType),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("budget", Float),
    Column("spent", Float, nullable=False),
    _ts("expires_at"),
    Column("metadata", JSONType),
    _ts("created_at", nullable=False),
    _ts("revoked_at"),
    Column("created_by", String()),
)

# Workbench sessions logged out before they expired (their cookies are signed, so only a shared list revokes them
# in every worker and replica). A row can go once its session would have expired anyway.
web_session_revocations = Table(
    "web_session_revocations",
    metadata,
    Column("nonce", String(64), primary_key=True),
    _ts("expires_at", nullable=False, index=True),
)

# Agent runs (modelyard.agent): the resumable state is an opaque JSON document; steps are per model call.
agent_runs = Table(
    "agent_runs",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False, index=True),
    Column("status", String(), nullable=False, index=True),
    Column("stop_reason", String()),
    Column("model", String(), index=True),
    Column("served_model", String()),
    Column("steps", Integer, nullable=False),
    Column("prompt_tokens", BigInteger),
    Column("completion_tokens", BigInteger),
    Column("cost", Float),
    Column("tool_calls", Integer, nullable=False),
    Column("error_message", Text),
    Column("metadata", JSONType),
    Column("state", JSONType, nullable=False),
    Column("decisions", JSONType),
)

agent_steps = Table(
    "agent_steps",
    metadata,
    Column("run_id", String(128), ForeignKey("agent_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("model", String(), index=True),
    Column("request_id", String(128)),
    Column("finish_reason", String()),
    Column("prompt_tokens", BigInteger),
    Column("completion_tokens", BigInteger),
    Column("cost", Float),
    Column("latency_ms", Float),
    Column("tool_calls", Integer, nullable=False),
    Column("valid_tool_calls", Integer, nullable=False),
    Column("executed_tool_calls", Integer, nullable=False),
    Column("succeeded_tool_calls", Integer, nullable=False),
    Column("calls", JSONType),
)

#: Every table, children before parents (the order to empty them in).
ALL_TABLES = (
    agent_steps,
    agent_runs,
    request_log_tags,
    request_logs,
    conversation_messages,
    conversations,
    system_prompts,
    templates,
    virtual_keys,
    web_session_revocations,
)
