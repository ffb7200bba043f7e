"""Initial schema: request logs (with full-text search), conversations, prompts, templates, keys.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
TSVECTOR_SQL = "to_tsvector('english'::regconfig, coalesce(prompt_text, '') || ' ' || coalesce(response_text, ''))"

SQLITE_FTS = (
    "CREATE VIRTUAL TABLE request_logs_fts USING fts5(prompt_text, response_text, "
    "content='request_logs', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER request_logs_fts_ai AFTER INSERT ON request_logs BEGIN "
    "INSERT INTO request_logs_fts(rowid, prompt_text, response_text) "
    "VALUES (new.id, new.prompt_text, new.response_text); END",
    "CREATE TRIGGER request_logs_fts_ad AFTER DELETE ON request_logs BEGIN "
    "INSERT INTO request_logs_fts(request_logs_fts, rowid, prompt_text, response_text) "
    "VALUES ('delete', old.id, old.prompt_text, old.response_text); END",
    "CREATE TRIGGER request_logs_fts_au AFTER UPDATE OF prompt_text, response_text ON request_logs BEGIN "
    "INSERT INTO request_logs_fts(request_logs_fts, rowid, prompt_text, response_text) "
    "VALUES ('delete', old.id, old.prompt_text, old.response_text); "
    "INSERT INTO request_logs_fts(rowid, prompt_text, response_text) "
    "VALUES (new.id, new.prompt_text, new.response_text); END",
)
SQLITE_FTS_DROP = (
    "DROP TRIGGER IF EXISTS request_logs_fts_ai",
    "DROP TRIGGER IF EXISTS request_logs_fts_ad",
    "DROP TRIGGER IF EXISTS request_logs_fts_au",
    "DROP TABLE IF EXISTS request_logs_fts",
)


def _dialect() -> str:
    return str(op.get_context().dialect.name)


def _request_logs() -> None:
    extra: list[sa.Column[object]] = []
    if _dialect() == "postgresql":
        extra.append(sa.Column("search_vector", TSVECTOR, sa.Computed(TSVECTOR_SQL, persisted=True)))
    op.create_table(
        "request_logs",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("caller", sa.String(), nullable=False),
        sa.Column("requested_model", sa.String()),
        sa.Column("served_model", sa.String()),
        sa.Column("provider", sa.String()),
        *(sa.Column(name, JSON) for name in ("attempts", "messages", "response", "params", "tools", "tool_calls")),
        sa.Column("finish_reason", sa.String()),
        *(
            sa.Column(name, sa.BigInteger)
            for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")
        ),
        sa.Column("cost", sa.Float),
        sa.Column("cost_source", sa.String(), nullable=False),
        *(sa.Column(name, sa.Float) for name in ("billed_cost", "latency_ms", "ttft_ms", "tokens_per_second")),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error_type", sa.String()),
        sa.Column("error_message", sa.Text),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("tags", JSON),
        sa.Column("metadata", JSON),
        sa.Column("conversation_id", sa.String()),
        sa.Column("cache_hit", sa.Boolean, nullable=False),
        sa.Column("fallback_used", sa.Boolean, nullable=False),
        sa.Column("run_id", sa.String()),
        sa.Column("feedback", sa.Text),
        sa.Column("prompt_text", sa.Text),
        sa.Column("response_text", sa.Text),
        *extra,
        sa.PrimaryKeyConstraint("id", name="pk_request_logs"),
        sa.UniqueConstraint("request_id", name="uq_request_logs_request_id"),
    )
    for column in ("created_at", "caller", "requested_model", "served_model", "conversation_id", "run_id"):
        op.create_index(f"ix_request_logs_{column}", "request_logs", [column])


def _full_text() -> None:
    if _dialect() == "postgresql":
        op.create_index("ix_request_logs_search_vector", "request_logs", ["search_vector"], postgresql_using="gin")
    elif _dialect() == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)


def _tags_and_conversations() -> None:
    op.create_table(
        "request_log_tags",
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("tag", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "tag", name="pk_request_log_tags"),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request_logs.request_id"],
            ondelete="CASCADE",
            name="fk_request_log_tags_request_id_request_logs",
        ),
    )
    op.create_index("ix_request_log_tags_tag", "request_log_tags", ["tag"])
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("model", sa.String()),
        sa.Column("system_prompt", sa.Text),
        sa.Column("metadata", JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("forked_from", sa.String(128)),
        sa.Column("forked_at_message", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
    )
    op.create_index("ix_conversations_updated_at", "conversations", ["updated_at"])
    op.create_table(
        "conversation_messages",
        sa.Column("conversation_id", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("message", JSON, nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "position", name="pk_conversation_messages"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            ondelete="CASCADE",
            name="fk_conversation_messages_conversation_id_conversations",
        ),
    )


def _prompts_templates_keys() -> None:
    op.create_table(
        "system_prompts",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_system_prompts"),
        sa.UniqueConstraint("name", name="uq_system_prompts_name"),
    )
    op.create_table(
        "templates",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("content", JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_templates"),
    )
    op.create_table(
        "virtual_keys",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("allowed_models", JSON),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("budget", sa.Float),
        sa.Column("spent", sa.Float, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("metadata", JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("created_by", sa.String()),
        sa.PrimaryKeyConstraint("id", name="pk_virtual_keys"),
        sa.UniqueConstraint("key_hash", name="uq_virtual_keys_key_hash"),
    )


def upgrade() -> None:
    _request_logs()
    _full_text()
    _tags_and_conversations()
    _prompts_templates_keys()


def downgrade() -> None:
    if _dialect() == "sqlite":
        for statement in SQLITE_FTS_DROP:
            op.execute(statement)
    for table in (
        "virtual_keys",
        "templates",
        "system_prompts",
        "conversation_messages",
        "conversations",
        "request_log_tags",
        "request_logs",
    ):
        op.drop_table(table)
