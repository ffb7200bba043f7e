"""SQLite: request logs enter the full-text index once per batch, not through a trigger per row.

The per-row insert trigger cost ~27 µs of a row's ~41 µs in SQLite; one ``INSERT … SELECT`` of the batch's new
rows into the index costs ~3 µs a row (benchmarks/RESULTS.md). Log inserts index their rows themselves now
(``storage/sql_logs.py``, ``storage/sqlite_batches.py``). PostgreSQL is unchanged (its index is on a column).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

INSERT_TRIGGER = (
    "CREATE TRIGGER request_logs_fts_ai AFTER INSERT ON request_logs BEGIN "
    "INSERT INTO request_logs_fts(rowid, prompt_text, response_text) "
    "VALUES (new.id, new.prompt_text, new.response_text); END"
)


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS request_logs_fts_ai")


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute(INSERT_TRIGGER)
