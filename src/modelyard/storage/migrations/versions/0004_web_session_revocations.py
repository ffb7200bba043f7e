"""Workbench sessions logged out, shared by every worker and replica on the database.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "web_session_revocations",
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name="pk_web_session_revocations"),
    )
    op.create_index("ix_web_session_revocations_expires_at", "web_session_revocations", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_web_session_revocations_expires_at", table_name="web_session_revocations")
    op.drop_table("web_session_revocations")
