"""Request logs on SQLAlchemy (SQLite or PostgreSQL): batch insert, query, search, summary, retention, export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    Dialect,
    RowMapping,
    Select,
    String,
    case,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from modelyard.storage.base import ExportFormat, GroupBy, LogPage, LogQuery, RequestLog, SummaryRow
from modelyard.storage.engine import is_memory_sqlite, json_dumps, scrub_nul
from modelyard.storage.schema import INDEX_LOGS_AFTER, LAST_LOG_ID, UTCDateTime, request_log_tags, request_logs
from modelyard.storage.sql_filters import (
    OnConflictInsert,
    after_cursor,
    conditions,
    encode_cursor,
    page_select,
    utc_day,
)
from modelyard.storage.sqlite_batches import SQLiteBatchWriter, id_pages

#: Rows per DELETE in retention, and per page in export.
DELETE_BATCH = 5_000
EXPORT_PAGE = 500
ERROR_STATUSES = ("error", "rejected")
CSV_COLUMNS = tuple(RequestLog.model_fields)
#: Rows per INSERT: a batch is cut into chunks of these sizes, so only these few statements are ever prepared
#: (SQLite's and asyncpg's statement caches stay small) and none is compiled per batch.
CHUNK_SIZES = (64, 16, 4, 1)
#: The columns ``write_batch`` fills (``id`` is the database's).
LOG_COLUMNS = tuple(column.name for column in request_logs.c if column.name != "id")
_column_values = itemgetter(*LOG_COLUMNS)


class LogInsert:
    """``INSERT … ON CONFLICT (request_id) DO NOTHING`` for batches of request logs.

    Values go through the same bind processors SQLAlchemy would use (JSON serializer, UTC datetimes), but
    the SQL text is fixed per chunk size and the rows are bound positionally, skipping SQLAlchemy's per-batch
    compile and parameter handling. NUL characters (PostgreSQL refuses them) are looked for in the processed
    values and replaced only in the rare row that has one.
    """

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        columns = [request_logs.c[name] for name in LOG_COLUMNS]
        self._processors = tuple(
            (i, processor)
            for i, column in enumerate(columns)
            if (processor := _bind_processor(column, dialect)) is not None
        )
        self._json = tuple(i for i, column in enumerate(columns) if isinstance(column.type, JSON))
        self._text = tuple(i for i, column in enumerate(columns) if isinstance(column.type, String))
        self._sql = {size: self._statement(size) for size in CHUNK_SIZES}

    async def __call__(self, connection: AsyncConnection, logs: Sequence[RequestLog]) -> int:
        """Insert ``logs`` on ``connection`` (in its transaction); how many were really inserted."""
        sqlite = self._dialect.name == "sqlite"
        last_id = await connection.scalar(text(LAST_LOG_ID)) if sqlite else None
        inserted = 0
        for sql, params in self.statements(logs):
            inserted += (await connection.exec_driver_sql(sql, params)).rowcount
        if sqlite and inserted:
            await connection.exec_driver_sql(INDEX_LOGS_AFTER, (last_id,))
        return inserted

    def statements(self, logs: Sequence[RequestLog]) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements (SQL, positional values) that insert ``logs``."""
        # No RETURNING: on SQLite every returned row is one more sqlite3_step, and each step gives up and takes
        # back the GIL, which a busy event loop holds for up to the switch interval. Counting the changes costs
        # nothing; tags need the inserted ids, and ask which ids were stored before instead.
        return [
            (self._sql[len(chunk)], tuple(value for log in chunk for value in self.encoded(log)))
            for chunk in _chunks(logs, CHUNK_SIZES)
        ]

    def prepare(self, log: RequestLog) -> None:
        """Encode the row's values now, on the caller's thread: the log writer does it on the event loop as it
        builds each row. Made on the SQLite thread with the batch, that Python work took the GIL from the loop for
        whole switch intervals (p99 latency at concurrency 1 x1.5, benchmarks/RESULTS.md)."""
        # Into the slot itself: pydantic's setattr would keep it among the private attributes, part of ``==``.
        object.__setattr__(log, "_encoded", self.values(log))

    def encoded(self, log: RequestLog) -> list[Any]:
        """The values ``prepare`` made for this row, else made now."""
        found: list[Any] | None = getattr(log, "_encoded", None)
        return found if found is not None else self.values(log)

    def values(self, log: RequestLog) -> list[Any]:
        """The row's values in ``LOG_COLUMNS`` order, as the driver gets them."""
        # The fields as they are: the JSON serializer dumps pydantic models (attempts) itself, which saves a
        # model_dump copy of every row. A row with a NUL is dumped and scrubbed the slow way.
        values = self._processed(vars(log))
        if self._has_nul(values):
            values = self._processed(scrub_nul(log.model_dump()))
        return values

    def _processed(self, row: dict[str, Any]) -> list[Any]:
        values = list(_column_values(row))
        for i, processor in self._processors:
            values[i] = processor(values[i])
        return values

    def _has_nul(self, values: list[Any]) -> bool:
        texts = [values[i] for i in self._text if values[i] is not None]
        dumped = [values[i] for i in self._json if values[i] is not None]
        return "\x00" in "".join(texts) or "\\u0000" in "".join(dumped)  # JSON writes NUL as \u0000

    def _statement(self, rows: int) -> str:
        quote = self._dialect.identifier_preparer.quote
        width = len(LOG_COLUMNS)
        if self._dialect.paramstyle == "qmark":
            marks = ["?"] * (rows * width)
        else:  # asyncpg: numeric_dollar
            marks = [f"${n}" for n in range(1, rows * width + 1)]
        groups = ", ".join("(" + ", ".join(marks[r * width : (r + 1) * width]) + ")" for r in range(rows))
        columns = ", ".join(quote(name) for name in LOG_COLUMNS)
        key = quote("request_id")
        # Only the schema's own names and placeholders go into the text; every value is bound.
        return (
            f"INSERT INTO {quote(request_logs.name)} ({columns}) VALUES {groups} "  # noqa: S608
            f"ON CONFLICT ({key}) DO NOTHING"
        )


def _bind_processor(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """What SQLAlchemy binds for ``column``, made without its wrappers where they cost most (a row has eight JSON
    columns): JSON text, NULL for None (``none_as_null``), and on SQLite UTC text and bools as they are (the
    ``sqlite3`` module binds a bool as the integer 0 or 1)."""
    if isinstance(column.type, JSON) and column.type.none_as_null:
        return _json_or_null
    if dialect.name == "sqlite":
        if isinstance(column.type, UTCDateTime):
            return _sqlite_utc_text
        if isinstance(column.type, Boolean):
            return None
    processor: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _json_or_null(value: Any) -> str | None:
    return None if value is None else json_dumps(value)


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """What ``UTCDateTime`` stores on SQLite (naive UTC, SQLAlchemy's ``YYYY-MM-DD HH:MM:SS.ffffff``), in C."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _chunks(items: Sequence[RequestLog], sizes: Sequence[int]) -> Iterator[Sequence[RequestLog]]:
    """``items`` cut into consecutive pieces whose sizes all come from ``sizes`` (largest first; 1 must be one)."""
    start = 0
    for size in sizes:
        while len(items) - start >= size:
            yield items[start : start + size]
            start += size


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
        self._insert_logs = LogInsert(engine.dialect)
        file = engine.url.database if engine.dialect.name == "sqlite" and not is_memory_sqlite(engine.url) else None
        self._sqlite_file = SQLiteBatchWriter(file, self._insert_logs.statements, _tag_rows) if file else None

    def prepare(self, log: RequestLog) -> None:
        """Encode a row ahead of ``write_batch`` (see ``LogInsert.prepare``)."""
        self._insert_logs.prepare(log)

    async def write_batch(self, logs: Sequence[RequestLog]) -> int:
        """Insert every row in one transaction; request ids already stored are skipped."""
        if not logs:
            return 0
        if self._sqlite_file is not None:
            return await self._sqlite_file.write(logs)
        async with self._engine.begin() as connection:
            tagged = [log for log in logs if log.tags]
            stored = await self._stored_ids(connection, tagged) if tagged else set()
            inserted = await self._insert_logs(connection, logs)
            tag_rows = _tag_rows(logs, stored)
            if tag_rows:
                await connection.execute(self._insert(request_log_tags), tag_rows)
        return inserted

    async def _stored_ids(self, connection: AsyncConnection, logs: Sequence[RequestLog]) -> set[str]:
        """Which of these request ids are already stored (their rows, and so their tags, will be skipped)."""
        found: set[str] = set()
        for page in id_pages(logs):
            statement = select(request_logs.c.request_id).where(request_logs.c.request_id.in_(page))
            found.update((await connection.execute(statement)).scalars().all())
        return found

    async def close(self) -> None:
        """Release the SQLite batch thread and its connection (the engine is closed by its owner)."""
        if self._sqlite_file is not None:
            await self._sqlite_file.close()

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

    async def total_cost(self, query: LogQuery) -> float:
        where = conditions(query, self._dialect)
        async with self._engine.connect() as connection:
            total = await connection.scalar(select(func.sum(request_logs.c.cost)).where(*where))
        return float(total or 0.0)

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


def _tag_rows(logs: Sequence[RequestLog], stored: set[str]) -> list[dict[str, str]]:
    """Tag rows of the logs this batch really inserts: the first of any repeated request id, unless that id was
    stored before; NULs replaced as in the rows themselves."""
    rows: list[dict[str, str]] = []
    seen = set(stored)
    for log in logs:
        request_id = scrub_nul(log.request_id)
        if log.tags and request_id not in seen:
            tags = dict.fromkeys(scrub_nul(tag) for tag in log.tags)
            rows.extend({"request_id": request_id, "tag": tag} for tag in tags)
        seen.add(request_id)
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
