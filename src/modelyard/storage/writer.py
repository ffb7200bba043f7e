"""``LogWriter``: the only way request logs are written. It never blocks the request path and never drops a row.

``submit`` puts the row on a queue bounded in rows and in (estimated) bytes, or, when the queue is full, straight
into a spill file, so a slow database costs disk, not memory. A
background task takes batches (up to ``batch_size`` rows, or what arrived within ``flush_interval``) and
inserts each in one transaction; inserts skip request ids already stored, so a replay never doubles a row.
When the database fails, the batch goes to the spill file and the database is retried with exponential
backoff; once it answers, the spill files are replayed and removed. ``close`` flushes the queue and tries a
last replay; what is still spilled then is replayed by the next writer on the same spill folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol, TextIO, cast

from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from modelyard.config import data_dir
from modelyard.storage.base import RequestLog
from modelyard.storage.spill import SpillDir, read_chunks
from modelyard.watchdog import Watchdog

logger = logging.getLogger(__name__)

_STOP: Final = object()
_TIMED_OUT: Final = object()
#: Rows the writer's task builds between two yields to the event loop (each takes tens of microseconds). Fewer
#: (16) let it fall behind at concurrency 64: it gets one slice per turn of a loop that is busy with requests.
BUILD_SLICE = 64
#: Seconds a row waits at most for a quiet moment (``upstream_waiting``) before the writer builds it anyway. A row
#: is submitted as its response ends, just when the client's next request tends to arrive: built at once, it
#: delayed that request (~0.45 ms TTFB at concurrency 1 against a pacing upstream, benchmarks/RESULTS.md).
BUILD_WAIT = 0.005

RowSource = RequestLog | Callable[[], RequestLog]
"""A row, or a function that builds it: the writer's task builds deferred rows, off the request path."""
#: SQLSTATE classes that condemn a row, not the database: 22 data exception, 23 integrity violation,
#: 54 program limit exceeded (e.g. a tsvector over 1 MB).
_BAD_DATA_STATES = ("22", "23", "54")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def is_bad_data(exc: BaseException) -> bool:
    """Whether the database refused the rows themselves (retrying them cannot help), not an outage."""
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(state, str) and state[:2] in _BAD_DATA_STATES
    return isinstance(exc, StatementError)  # a value that could not even be bound


class BatchSink(Protocol):
    """What the writer needs from a store (``SQLStore.logs`` is one)."""

    async def write_batch(self, logs: Sequence[RequestLog]) -> int: ...


@dataclass
class WriterStats:
    """Counters for metrics. ``queued`` is the queue length now; the rest count since start."""

    queued: int = 0
    queued_bytes: int = 0
    submitted: int = 0
    written: int = 0
    duplicates: int = 0
    spilled: int = 0
    replayed: int = 0
    rejected: int = 0
    lost: int = 0
    db_errors: int = 0
    healthy: bool = True


class LogWriter:
    """Batches request logs into the database through a bounded queue, spilling to disk on failure."""

    def __init__(
        self,
        store: BatchSink,
        *,
        max_queue: int = 10_000,
        max_queue_bytes: int = 64 * 1024 * 1024,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        spill_dir: str | Path | None = None,
        log_file: str | Path | None = None,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self._store = store
        # A store may encode each row as it is built (on the loop, a row at a time) rather than with its batch.
        self._prepare: Callable[[RequestLog], None] | None = getattr(store, "prepare", None)
        # (RowSource, estimated bytes) pairs, and _STOP
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=max_queue)
        self._max_bytes = max_queue_bytes
        self._queued_bytes = 0
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._spill = SpillDir(Path(spill_dir) if spill_dir is not None else data_dir() / "spill")
        self._log_path = Path(log_file) if log_file is not None else None
        self._log_handle: TextIO | None = None
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._delay = 0.0
        self._retry_at = 0.0
        self._stats = WriterStats()
        self._task: asyncio.Task[None] | None = None
        self._holding: object | None = None  # the item dequeued but not yet built, during ``_settle``
        self._quiet: asyncio.Future[None] | None = None  # what ``_settle`` waits on
        self._watchdog = Watchdog()  # times the wait for each next row of a batch (one timer, not one a row)
        # The spill file being replayed and the rest of its chunks; then the files this round has still to start.
        self._replaying: tuple[Path, Generator[list[str], None, None]] | None = None
        self._replay_paths: list[Path] = []
        self._closed = False
        self._finished = False

    @property
    def stats(self) -> WriterStats:
        return replace(
            self._stats, queued=self._queue.qsize(), queued_bytes=self._queued_bytes, healthy=self._retry_at == 0.0
        )

    @property
    def spill_dir(self) -> Path:
        return self._spill.folder

    def start(self) -> None:
        """Start the background task (``submit`` does it too); needs a running event loop."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="modelyard-log-writer")

    def submit(self, log: RowSource, size: int = 0) -> None:
        """Queue one row (or a function that builds it later, in the writer's task) of about ``size`` bytes;
        never waits. A queue full in rows or in bytes (or a closed writer) sends the row to the spill file.

        Call it from the event loop's thread (``asyncio.Queue`` is not thread-safe).
        """
        self._stats.submitted += 1
        if not self._closed:
            self.start()
            if self._queued_bytes + size <= self._max_bytes or self._queue.empty():
                try:
                    self._queue.put_nowait((log, size))
                    self._queued_bytes += size
                    return
                except asyncio.QueueFull:
                    pass
        row = self._materialize(log)
        if row is not None:
            self._to_log_file([row])
            self._spill_rows([row])

    def _take(self, item: object) -> RowSource:
        """A dequeued (row, size) pair's row; its bytes leave the queue's count."""
        log, size = cast(tuple[RowSource, int], item)
        self._queued_bytes -= size
        return log

    def _materialize(self, item: RowSource) -> RequestLog | None:
        if isinstance(item, RequestLog):
            return item
        try:
            return item()
        except Exception:  # a bug in building the row: say so loudly, count it, keep the writer alive
            logger.exception("could not build a request log row")
            self._stats.lost += 1
            return None

    def _encode_ahead(self, row: RequestLog) -> None:
        if self._prepare is None:
            return
        try:
            self._prepare(row)
        except Exception:  # the write encodes it again, and fails or refuses it as any other row's
            logger.exception("could not encode request log %s ahead of its write", row.request_id)

    async def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, try a last replay of the spill files, release files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._task is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self._queue.put(_STOP)
                    await asyncio.shield(self._task)
            except TimeoutError:
                logger.warning("log writer did not finish within %.1f s; spilling the rest", timeout)
            except Exception:
                logger.exception("log writer task failed")
            await self._stop_task()
        if self._spill.has_pending() and loop.time() < deadline:
            self._retry_at = 0.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await self._replay(live_first=False)
        self._stop_replay()
        self._spill.close()
        self._finished = True
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    async def __aenter__(self) -> LogWriter:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _stop_task(self) -> None:
        """Cancel the task if it is still running and spill whatever the queue still holds."""
        assert self._task is not None
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        items = [] if self._holding is None else [self._holding]
        self._holding = None
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        leftover: list[RequestLog] = []
        for item in items:
            row = None if item is _STOP else self._materialize(self._take(item))
            if row is not None:
                leftover.append(row)
        if leftover:
            self._to_log_file(leftover)
            self._spill_rows(leftover)

    async def _run(self) -> None:
        try:
            self._spill.adopt_orphans()
        except OSError as exc:
            logger.error("cannot read the spill folder %s: %s", self._spill.folder, exc)
        try:
            while True:
                batch, stop = await self._collect()
                if self._spill.has_pending() and self._due():
                    await self._replay()
                if batch:
                    await self._write(batch)
                if stop:
                    return
        finally:
            self._watchdog.close()

    async def _collect(self) -> tuple[list[RequestLog], bool]:
        """The next batch, and whether ``close`` asked to stop after it."""
        batch: list[RequestLog] = []
        if self._queue.empty():
            try:
                async with asyncio.timeout(self._idle_timeout()):
                    item = await self._queue.get()
            except TimeoutError:
                return batch, False
            await self._settle(item)
        else:  # rows waiting already (under load): build them now
            item = self._queue.get_nowait()
        deadline = asyncio.get_running_loop().time() + self._flush_interval
        try:
            while item is not _STOP:
                row = self._materialize(self._take(item))
                if row is not None:
                    self._encode_ahead(row)
                    batch.append(row)
                if len(batch) >= self._batch_size:
                    return batch, False
                if len(batch) % BUILD_SLICE == 0:
                    await asyncio.sleep(0)  # building rows is CPU work: let requests run between slices
                item = await self._next(deadline)
                if item is _TIMED_OUT:
                    return batch, False
        except asyncio.CancelledError:
            self._to_log_file(batch)
            self._spill_rows(batch)
            raise
        return batch, True

    async def _next(self, deadline: float) -> object:
        """The next queued item, or ``_TIMED_OUT`` when none arrives before ``deadline``."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        try:
            item = await self._watchdog.wait(self._queue.get(), max(0.0, deadline - asyncio.get_running_loop().time()))
        except TimeoutError:
            return _TIMED_OUT
        await self._settle(item)
        return item

    def upstream_waiting(self) -> None:
        """A hint from the gateway: a request is going upstream, so the event loop is about to wait for it. That is
        when the writer builds the rows it has been woken for: the requests in flight then have nothing to run."""
        quiet = self._quiet
        if quiet is not None:
            self._quiet = None
            _wake(quiet)

    async def _settle(self, item: object) -> None:
        """After waking for ``item``: wait for a quiet moment (``upstream_waiting``, at most ``BUILD_WAIT``).

        Meanwhile the item is held where ``_stop_task`` finds it, should the task be cancelled."""
        if item is _STOP:
            return
        self._holding = item
        loop = asyncio.get_running_loop()
        self._quiet = quiet = loop.create_future()
        timer = loop.call_later(BUILD_WAIT, _wake, quiet)
        try:
            await quiet
            # Woken by the hint, this task runs ahead of what the request started meanwhile: on Python < 3.12
            # aiohttp writes the request in a task of its own (headers and body together). Let that go first.
            await asyncio.sleep(0)
        finally:
            timer.cancel()
            self._quiet = None
        self._holding = None

    def _idle_timeout(self) -> float | None:
        """How long to wait for rows: forever, unless spilled rows wait for a (re)try."""
        if not self._spill.has_pending():
            return None
        return max(0.0, self._retry_at - asyncio.get_running_loop().time())

    def _due(self) -> bool:
        """Healthy, or the backoff after a failure is over."""
        return self._retry_at <= asyncio.get_running_loop().time()

    async def _write(self, batch: list[RequestLog]) -> None:
        self._to_log_file(batch)
        if not self._due():
            self._spill_rows(batch)
            return
        try:
            await self._store_rows(batch)
        except asyncio.CancelledError:
            self._spill_rows(batch)
            raise
        except Exception as exc:
            self._failed(exc)
            self._spill_rows(batch)
        else:
            self._recovered()

    async def _store_rows(self, logs: Sequence[RequestLog]) -> None:
        """Insert; on a bad-data error retry row by row and set the refused rows aside. Raises on an outage."""
        try:
            inserted = await self._store.write_batch(logs)
        except Exception as exc:
            if not is_bad_data(exc):
                raise
            inserted = await self._store_one_by_one(logs)
        self._stats.written += inserted
        self._stats.duplicates += len(logs) - inserted

    async def _store_one_by_one(self, logs: Sequence[RequestLog]) -> int:
        inserted = 0
        for log in logs:
            try:
                inserted += await self._store.write_batch([log])
            except Exception as exc:
                if not is_bad_data(exc):
                    raise
                logger.error("request log %s refused by the database: %s", log.request_id, exc)
                self._reject([log.model_dump_json() + "\n"])
        return inserted

    async def _replay(self, *, live_first: bool = True) -> None:
        """Write the pending spill files to the database, deleting each once it is all in. With ``live_first``,
        stop after a chunk when a batch of live rows waits: the next call goes on where this one stopped, so the
        live queue (and memory) does not grow while a long outage's spill is replayed."""
        if self._replaying is None and not self._replay_paths:
            try:
                self._spill.rotate()
                self._replay_paths = self._spill.pending_files()
            except OSError as exc:
                logger.error("cannot read the spill folder %s: %s", self._spill.folder, exc)
                return
        while self._replaying is not None or self._replay_paths:
            if self._replaying is None:
                path = self._replay_paths.pop(0)
                self._replaying = path, read_chunks(path, self._batch_size)
            path, chunks = self._replaying
            try:
                lines = next(chunks, None)
                if lines is None:
                    self._replaying = None
                    path.unlink(missing_ok=True)
                    logger.info("replayed spilled request logs from %s", path.name)
                    continue
                logs = self._parse(lines)
                await self._store_rows(logs)
                self._stats.replayed += len(logs)
            except FileNotFoundError:
                self._replaying = None  # another writer on this folder replayed it
                continue
            except asyncio.CancelledError:
                self._stop_replay()  # this chunk may not be in: the next replay starts the file again
                raise
            except Exception as exc:
                self._stop_replay()  # the next try starts the file again: rows already in are skipped
                self._failed(exc)
                return
            if live_first and self._queue.qsize() >= self._batch_size:
                return
        self._spill.replayed()
        self._recovered()

    def _stop_replay(self) -> None:
        if self._replaying is not None:
            self._replaying[1].close()
        self._replaying = None
        self._replay_paths = []

    def _parse(self, lines: list[str]) -> list[RequestLog]:
        logs: list[RequestLog] = []
        for line in lines:
            try:
                logs.append(RequestLog.model_validate_json(line))
            except ValidationError:
                self._reject([line if line.endswith("\n") else line + "\n"])
        return logs

    def _failed(self, exc: BaseException) -> None:
        self._stats.db_errors += 1
        if self._retry_at == 0.0:
            logger.warning("log database unavailable, spilling to %s: %r", self._spill.folder, exc)
        self._delay = min(self._retry_max, self._delay * 2 if self._delay else self._retry_initial)
        self._retry_at = asyncio.get_running_loop().time() + self._delay

    def _recovered(self) -> None:
        if self._retry_at != 0.0:
            logger.info("log database is back")
        self._delay = 0.0
        self._retry_at = 0.0

    def _spill_rows(self, logs: Sequence[RequestLog]) -> None:
        lines = (log.model_dump_json() + "\n" for log in logs)
        try:
            if self._finished:
                self._stats.spilled += self._spill.write_pending(lines)  # no file is left open after close
            else:
                self._stats.spilled += self._spill.append(lines)
        except OSError as exc:
            self._stats.lost += len(logs)
            logger.error("could not spill %d request logs to %s: %s", len(logs), self._spill.folder, exc)

    def _reject(self, lines: list[str]) -> None:
        try:
            self._spill.reject(lines)
            self._stats.rejected += len(lines)
        except OSError as exc:
            self._stats.lost += len(lines)
            logger.error("could not keep %d refused request logs: %s", len(lines), exc)

    def _to_log_file(self, logs: Sequence[RequestLog]) -> None:
        """The optional JSONL request-log file: every row once, as it leaves the queue (or skips it)."""
        if self._log_path is None:
            return
        try:
            if self._log_handle is None:
                self._log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log_handle = self._log_path.open("a", encoding="utf-8")
            self._log_handle.writelines(log.model_dump_json() + "\n" for log in logs)
            self._log_handle.flush()
        except OSError as exc:
            logger.error("could not append to the request log file %s: %s", self._log_path, exc)
