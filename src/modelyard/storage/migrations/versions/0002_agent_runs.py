"""Agent runs and their steps (resumable state, approvals, tool-calling metrics).

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agent_runs",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("stop_reason", sa.String()),
        sa.Column("model", sa.String()),
        sa.Column("served_model", sa.String()),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger),
        sa.Column("completion_tokens", sa.BigInteger),
        sa.Column("cost", sa.Float),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("error_message", sa.Text),
        sa.Column("metadata", JSON),
        sa.Column("state", JSON, nullable=False),
        sa.Column("decisions", JSON),
        sa.PrimaryKeyConstraint("id", name="pk_agent_runs"),
    )
    for column in ("updated_at", "status", "model"):
        op.create_index(f"ix_agent_runs_{column}", "agent_runs", [column])
    op.create_table(
        "agent_steps",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("model", sa.String()),
        sa.Column("request_id", sa.String(128)),
        sa.Column("finish_reason", sa.String()),
        sa.Column("prompt_tokens", sa.BigInteger),
        sa.Column("completion_tokens", sa.BigInteger),
        sa.Column("cost", sa.Float),
        sa.Column("latency_ms", sa.Float),
        *(
            sa.Column(name, sa.Integer, nullable=False)
            for name in ("tool_calls", "valid_tool_calls", "executed_tool_calls", "succeeded_tool_calls")
        ),
        sa.Column("calls", JSON),
        sa.PrimaryKeyConstraint("run_id", "position", name="pk_agent_steps"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["agent_runs.id"], ondelete="CASCADE", name="fk_agent_steps_run_id_agent_runs"
        ),
    )
    op.create_index("ix_agent_steps_model", "agent_steps", ["model"])


def downgrade() -> None:
    op.drop_table("agent_steps")
    op.drop_table("agent_runs")
