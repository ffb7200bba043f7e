"""Request-log batches into a SQLite file on one dedicated thread and connection: one thread hop per batch.

Through the async engine, every statement is several hops to aiosqlite's thread (cursor, execute, close) and
each hop waits for a turn of the event loop; under load a 500-row batch took ~35 of them and the writer fell
behind the requests (benchmarks/RESULTS.md). Here the whole transaction runs in one call on a thread of its
own. SQLite's WAL mode lets this connection write while the engine's connections read.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.exc import DBAPIError

from modelyard.storage.base import RequestLog
from modelyard.storage.engine import apply_sqlite_pragmas, scrub_nul
from modelyard.storage.schema import INDEX_LOGS_AFTER, LAST_LOG_ID

Statement = tuple[str, Sequence[Any]]
Statements = Callable[[Sequence[RequestLog]], Sequence[Statement]]
TagRows = Callable[[Sequence[RequestLog], set[str]], list[dict[str, str]]]
#: Request ids per lookup of which are already stored (well under every driver's limit on bound values).
STORED_IDS_PAGE = 500
_INSERT_TAG = "INSERT INTO request_log_tags (request_id, tag) VALUES (:request_id, :tag) ON CONFLICT DO NOTHING"


def id_pages(logs: Sequence[RequestLog]) -> Iterator[list[str]]:
    """The rows' distinct request ids (as stored: NUL-free), a page at a time for ``IN (...)`` lookups."""
    ids = list({scrub_nul(log.request_id) for log in logs})
    for start in range(0, len(ids), STORED_IDS_PAGE):
        yield ids[start : start + STORED_IDS_PAGE]


class SQLiteBatchWriter:
    """Runs each batch's transaction (stored-id check, inserts, full-text index, tags) in one call on its own thread."""

    def __init__(self, path: str, statements: Statements, tag_rows: TagRows) -> None:
        self._path = path
        self._statements = statements
        self._tag_rows = tag_rows
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-log-sqlite")
        self._connection: sqlite3.Connection | None = None  # made and used on the executor's thread only
        self._closed = False

    async def write(self, logs: Sequence[RequestLog]) -> int:
        """Insert ``logs`` and the tags of the rows really inserted; how many rows were inserted."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._write, logs)

    async def close(self) -> None:
        """Close the connection and end the thread (a later ``write`` fails like an unreachable database)."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _write(self, logs: Sequence[RequestLog]) -> int:
        # The rows' values were made ahead, on the event loop, as the log writer built each row (``prepare``): what
        # Python work is left here (flattening them, tags) competes with the loop for the GIL while it runs.
        inserts = self._statements(logs)
        statement = "BEGIN IMMEDIATE"
        try:
            connection = self._connect()
            connection.execute(statement)
            statement = LAST_LOG_ID
            (last_id,) = connection.execute(statement).fetchone()
            stored = self._stored_ids(connection, [log for log in logs if log.tags])
            inserted = 0
            for statement, params in inserts:
                inserted += connection.execute(statement, params).rowcount
            if inserted:
                statement = INDEX_LOGS_AFTER
                connection.execute(statement, (last_id,))
            tags = self._tag_rows(logs, stored)
            if tags:
                statement = _INSERT_TAG
                connection.executemany(statement, tags)
            statement = "COMMIT"
            connection.execute(statement)
        except sqlite3.Error as exc:
            self._close()  # a fresh connection for the next try (the file may have been moved, locked, repaired)
            # The same exception classes the engine raises, so the writer tells bad rows from an outage alike.
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error, hide_parameters=True) from exc
        return inserted

    @staticmethod
    def _stored_ids(connection: sqlite3.Connection, tagged: Sequence[RequestLog]) -> set[str]:
        found: set[str] = set()
        for page in id_pages(tagged):
            marks = ", ".join("?" * len(page))
            rows = connection.execute(f"SELECT request_id FROM request_logs WHERE request_id IN ({marks})", page)  # noqa: S608
            found.update(row[0] for row in rows)
        return found

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, timeout=30, isolation_level=None, cached_statements=16)
            apply_sqlite_pragmas(connection.execute)
            self._connection = connection
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
