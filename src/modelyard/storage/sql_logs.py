"""Request logs on SQLAlchemy (SQLite or PostgreSQL): batch insert, query, search, summary, retention, export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, RowMapping, Select, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.storage.base import ExportFormat, GroupBy, LogPage, LogQuery, RequestLog, SummaryRow
from modelyard.storage.engine import scrub_nul
from modelyard.storage.schema import request_log_tags, request_logs
from modelyard.storage.sql_filters import (
    OnConflictInsert,
    after_cursor,
    conditions,
    encode_cursor,
    page_select,
    utc_day,
)

#: Rows per DELETE in retention, and per page in export.
DELETE_BATCH = 5_000
EXPORT_PAGE = 500
ERROR_STATUSES = ("error", "rejected")
CSV_COLUMNS = tuple(RequestLog.model_fields)


def log_to_row(log: RequestLog) -> dict[str, Any]:
    """A ``RequestLog`` as a ``request_logs`` row (JSON columns stay Python data, NULs replaced)."""
    row: dict[str, Any] = scrub_nul(log.model_dump())
    return row


def row_to_log(row: RowMapping) -> RequestLog:
    data = dict(row)
    data.pop("id", None)
    for key in ("tags", "params", "metadata", "attempts"):
        if data.get(key) is None:
            data.pop(key, None)
    return RequestLog.model_validate(data)


class SQLLogStore:
    """``LogStore`` over an async engine whose database is migrated."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._insert = OnConflictInsert(self._dialect)

    async def write_batch(self, logs: Sequence[RequestLog]) -> int:
        """Insert every row in one transaction; request ids already stored are skipped."""
        if not logs:
            return 0
        statement = self._insert(request_logs, "request_id").returning(request_logs.c.request_id)
        async with self._engine.begin() as connection:
            result = await connection.execute(statement, [log_to_row(log) for log in logs])
            inserted = set(result.scalars().all())
            tag_rows = _tag_rows(logs, inserted)
            if tag_rows:
                await connection.execute(self._insert(request_log_tags), tag_rows)
        return len(inserted)

    async def get(self, request_id: str) -> RequestLog | None:
        async with self._engine.connect() as connection:
            statement = select(request_logs).where(request_logs.c.request_id == request_id)
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else row_to_log(row)

    async def query(self, query: LogQuery) -> LogPage:
        """One page, newest first; ``next_cursor`` is set when more rows follow."""
        where = conditions(query, self._dialect)
        if query.cursor:
            where.append(after_cursor(query.cursor))
        rows = await self._rows(page_select(where, query.limit + 1, query.offset))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return LogPage(items=[row_to_log(r) for r in rows], next_cursor=cursor)

    async def search(self, text: str, limit: int = 50) -> list[RequestLog]:
        """Rows whose prompt or response contains every word of ``text``, newest first."""
        return (await self.query(LogQuery(text=text, limit=limit))).items

    async def count(self, query: LogQuery | None = None) -> int:
        where = conditions(query or LogQuery(), self._dialect)
        async with self._engine.connect() as connection:
            total = await connection.scalar(select(func.count()).select_from(request_logs).where(*where))
        return int(total or 0)

    async def set_feedback(self, request_id: str, feedback: str | None) -> bool:
        statement = update(request_logs).where(request_logs.c.request_id == request_id).values(feedback=feedback)
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount > 0

    async def summary(
        self,
        group_by: GroupBy,
        since: datetime | None = None,
        until: datetime | None = None,
        where: LogQuery | None = None,
    ) -> list[SummaryRow]:
        """Requests, tokens, cost, errors and p50/p95 latency per group (a request counts in each tag)."""
        bounds = {name: value for name, value in (("since", since), ("until", until)) if value is not None}
        base = (where or LogQuery()).model_copy(update=bounds)
        rows = self._summary_rows(group_by, conditions(base, self._dialect))
        async with self._engine.connect() as connection:
            totals = (await connection.execute(_totals(rows))).mappings().all()
            percentiles = {r["key"]: r for r in (await connection.execute(_percentiles(rows))).mappings()}
        result = [_summary_row(t, percentiles.get(t["key"])) for t in totals]
        if group_by == "day":
            return sorted(result, key=lambda r: r.key or "")
        return sorted(result, key=lambda r: (-r.requests, r.key or ""))

    def _summary_rows(self, group_by: GroupBy, where: list[ColumnElement[bool]]) -> Any:
        c = request_logs.c
        keys: dict[str, ColumnElement[Any]] = {
            "model": func.coalesce(c.served_model, c.requested_model),
            "caller": c.caller,
            "provider": c.provider,
            "day": utc_day(self._dialect, c.created_at),
            "tag": request_log_tags.c.tag,
        }
        columns = (c.prompt_tokens, c.completion_tokens, c.cost, c.status, c.latency_ms)
        statement = select(keys[group_by].label("key"), *columns).where(*where)
        if group_by == "tag":
            statement = statement.join_from(
                request_logs, request_log_tags, request_log_tags.c.request_id == c.request_id
            )
        return statement.subquery("per_request")

    async def delete_older_than(self, before: datetime, batch_size: int = DELETE_BATCH) -> int:
        """Delete rows created before ``before``, ``batch_size`` rows per transaction; returns the count."""
        total = 0
        while True:
            oldest = (
                select(request_logs.c.id)
                .where(request_logs.c.created_at < before)
                .order_by(request_logs.c.id)
                .limit(batch_size)
            )
            async with self._engine.begin() as connection:
                ids = list((await connection.execute(oldest)).scalars())
                if ids:
                    doomed = select(request_logs.c.request_id).where(request_logs.c.id.in_(ids))
                    await connection.execute(delete(request_log_tags).where(request_log_tags.c.request_id.in_(doomed)))
                    await connection.execute(delete(request_logs).where(request_logs.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < batch_size:
                return total

    async def export(
        self, query: LogQuery | None = None, format: ExportFormat = "jsonl", limit: int | None = None
    ) -> AsyncIterator[str]:
        """Every matching row (``limit``/``offset``/``cursor`` of the query are ignored) as text lines."""
        if format == "csv":
            yield _csv_line(CSV_COLUMNS)
        sent = 0
        async for log in self._iterate(query or LogQuery()):
            if limit is not None and sent >= limit:
                return
            yield _csv_line(_csv_values(log)) if format == "csv" else log.model_dump_json() + "\n"
            sent += 1

    async def _iterate(self, query: LogQuery) -> AsyncIterator[RequestLog]:
        """All matching rows, newest first, read ``EXPORT_PAGE`` at a time by keyset."""
        base = conditions(query, self._dialect)
        cursor: str | None = None
        while True:
            where = [*base, after_cursor(cursor)] if cursor else base
            rows = await self._rows(page_select(where, EXPORT_PAGE))
            for row in rows:
                yield row_to_log(row)
            if len(rows) < EXPORT_PAGE:
                return
            cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"])

    async def _rows(self, statement: Select[Any]) -> list[RowMapping]:
        async with self._engine.connect() as connection:
            return list((await connection.execute(statement)).mappings().all())


def _tag_rows(logs: Sequence[RequestLog], inserted: set[str]) -> list[dict[str, str]]:
    """Tag rows of the logs this batch really inserted (the first of any repeated request id)."""
    rows: list[dict[str, str]] = []
    for log in logs:
        if log.request_id in inserted:
            inserted = inserted - {log.request_id}
            rows.extend({"request_id": log.request_id, "tag": tag} for tag in dict.fromkeys(log.tags))
    return rows


def _totals(rows: Any) -> Select[Any]:
    return select(
        rows.c.key,
        func.count().label("requests"),
        func.coalesce(func.sum(rows.c.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(rows.c.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(rows.c.cost), 0.0).label("cost"),
        func.sum(case((rows.c.status.in_(ERROR_STATUSES), 1), else_=0)).label("errors"),
    ).group_by(rows.c.key)


def _percentiles(rows: Any) -> Select[Any]:
    """Nearest-rank p50/p95 latency per group, with window functions (the same on both dialects)."""
    ranked = (
        select(
            rows.c.key,
            rows.c.latency_ms,
            func.row_number().over(partition_by=rows.c.key, order_by=rows.c.latency_ms).label("rank"),
            func.count().over(partition_by=rows.c.key).label("n"),
        )
        .where(rows.c.latency_ms.is_not(None))
        .subquery("ranked")
    )
    return select(
        ranked.c.key,
        func.min(case((ranked.c.rank >= ranked.c.n * 0.5, ranked.c.latency_ms))).label("p50"),
        func.min(case((ranked.c.rank >= ranked.c.n * 0.95, ranked.c.latency_ms))).label("p95"),
    ).group_by(ranked.c.key)


def _summary_row(totals: RowMapping, percentiles: RowMapping | None) -> SummaryRow:
    return SummaryRow(
        key=totals["key"],
        requests=totals["requests"],
        prompt_tokens=totals["prompt_tokens"],
        completion_tokens=totals["completion_tokens"],
        cost=totals["cost"],
        errors=totals["errors"] or 0,
        p50_latency_ms=percentiles["p50"] if percentiles else None,
        p95_latency_ms=percentiles["p95"] if percentiles else None,
    )


def _csv_values(log: RequestLog) -> list[Any]:
    values: list[Any] = []
    for name in CSV_COLUMNS:
        value = getattr(log, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, (list, dict)):
            value = orjson.dumps(log.model_dump(mode="json", include={name})[name]).decode()
        values.append(value)
    return values


def _csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()
