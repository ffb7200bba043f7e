"""SQL pieces shared by the log queries: dialect inserts, filters, full-text match, cursors, day buckets."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    String,
    Table,
    and_,
    false,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite

from modelyard.errors import BadRequestError
from modelyard.storage.base import LogQuery
from modelyard.storage.schema import FTS_TABLE, request_log_tags, request_logs

_WORD = re.compile(r"\w+", re.UNICODE)
#: The text search configuration the migration's tsvector column uses (a constant, not a value).
_PG_REGCONFIG: ColumnElement[Any] = literal_column("'english'::regconfig")
_PG_VECTOR: ColumnElement[Any] = literal_column("request_logs.search_vector")
_FTS = table(FTS_TABLE, literal_column("rowid"))


class OnConflictInsert:
    """The engine dialect's ``INSERT`` (it has ``on_conflict_do_nothing`` / ``on_conflict_do_update``)."""

    def __init__(self, dialect_name: str) -> None:
        self._insert: Callable[[Table], Any] = postgresql.insert if dialect_name == "postgresql" else sqlite.insert

    def insert(self, target: Table) -> Any:
        """A dialect ``Insert`` (typed ``Any``: the two dialect classes share these methods)."""
        return self._insert(target)

    def __call__(self, target: Table, *index_elements: str) -> Insert:
        """``INSERT … ON CONFLICT (index_elements) DO NOTHING``."""
        statement: Insert = self._insert(target).on_conflict_do_nothing(index_elements=list(index_elements) or None)
        return statement


def fts_words(text: str) -> list[str]:
    """The words of a search string (punctuation and operators are dropped: every word must match)."""
    return _WORD.findall(text)


def text_match(dialect_name: str, text: str) -> ColumnElement[bool]:
    """Rows whose prompt or response text contains every word of ``text`` (stemmed: "errors" finds "error").

    SQLite uses FTS5 with the porter tokenizer; PostgreSQL the ``english`` configuration, which also drops
    stop words ("the", "here"…), so a search made only of stop words finds nothing there.
    """
    words = fts_words(text)
    if not words:
        return false()
    if dialect_name == "postgresql":
        query = " ".join(words)
        return _PG_VECTOR.op("@@")(func.plainto_tsquery(_PG_REGCONFIG, query))
    fts_query = " ".join('"' + word + '"' for word in words)  # an FTS5 query, bound as a parameter
    matching = select(_FTS.c.rowid).where(sql_text("request_logs_fts MATCH :fts_query").bindparams(fts_query=fts_query))
    return request_logs.c.id.in_(matching)


def conditions(query: LogQuery, dialect_name: str) -> list[ColumnElement[bool]]:
    """WHERE clauses for a query's filters (bound parameters only)."""
    c = request_logs.c
    where: list[ColumnElement[bool]] = []
    if query.model is not None:
        where.append(or_(c.requested_model == query.model, c.served_model == query.model))
    for column, value in (
        (c.provider, query.provider),
        (c.status, query.status),
        (c.caller, query.caller),
        (c.conversation_id, query.conversation_id),
        (c.run_id, query.run_id),
    ):
        if value is not None:
            where.append(column == value)
    if query.tag is not None:
        tagged = select(request_log_tags.c.request_id).where(request_log_tags.c.tag == query.tag)
        where.append(c.request_id.in_(tagged))
    if query.since is not None:
        where.append(c.created_at >= query.since)
    if query.until is not None:
        where.append(c.created_at < query.until)
    if query.text:
        where.append(text_match(dialect_name, query.text))
    return where


def encode_cursor(created_at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at.isoformat(), row_id])).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        stamp, row_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(stamp), int(row_id)
    except (ValueError, TypeError) as exc:
        raise BadRequestError("invalid cursor", param="cursor") from exc


def after_cursor(cursor: str) -> ColumnElement[bool]:
    """Rows after ``cursor`` in newest-first order."""
    stamp, row_id = decode_cursor(cursor)
    c = request_logs.c
    return or_(c.created_at < stamp, and_(c.created_at == stamp, c.id < row_id))


def page_select(where: list[ColumnElement[bool]], limit: int, offset: int = 0) -> Select[Any]:
    """Newest-first rows matching ``where``."""
    c = request_logs.c
    return select(request_logs).where(*where).order_by(c.created_at.desc(), c.id.desc()).limit(limit).offset(offset)


def utc_day(dialect_name: str, column: ColumnElement[datetime]) -> ColumnElement[str]:
    """``YYYY-MM-DD`` of a UTC timestamp column."""
    if dialect_name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD", type_=String())
    return func.substr(column, 1, 10, type_=String())  # SQLite keeps naive UTC 'YYYY-MM-DD HH:MM:SS…'
