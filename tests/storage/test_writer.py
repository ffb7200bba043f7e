"""LogWriter: batches, idempotence, spill on failure, replay, a full queue (rows or bytes), bad rows, shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Integer, cast, func, insert, literal, select
from sqlalchemy.exc import DataError, OperationalError

from modelyard.middleware.logging import held_bytes
from modelyard.pipeline import Call
from modelyard.storage import LogWriter, RequestLog, SQLStore
from modelyard.storage.schema import request_logs
from modelyard.storage.writer import BUILD_SLICE, BUILD_WAIT, is_bad_data
from modelyard.types.chat import AttemptInfo, ChatRequest, ChatResponse
from tests.storage.conftest import make_log


class MemorySink:
    """An in-memory ``write_batch`` that can fail (outage), stall, or refuse rows (bad data)."""

    def __init__(self) -> None:
        self.rows: dict[str, RequestLog] = {}
        self.calls = 0
        self.down = False
        self.gate: asyncio.Event | None = None
        self.poison: set[str] = set()

    async def write_batch(self, logs: Sequence[RequestLog]) -> int:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionRefusedError("database down")
        if any(log.request_id in self.poison for log in logs):
            raise DataError("INSERT …", {}, ValueError("invalid byte sequence"))
        fresh = [log for log in logs if log.request_id not in self.rows]
        self.rows.update((log.request_id, log) for log in fresh)
        return len(fresh)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def _count(store: SQLStore) -> tuple[int, int]:
    async with store.engine.connect() as connection:
        total = await connection.scalar(select(func.count()).select_from(request_logs))
        distinct = await connection.scalar(select(func.count(request_logs.c.request_id.distinct())))
    return int(total or 0), int(distinct or 0)


async def test_5000_concurrent_rows_land_exactly_once(store: SQLStore, spill_dir: Path) -> None:
    writer = LogWriter(store.logs, spill_dir=spill_dir)

    async def producer(k: int) -> None:
        for i in range(100):
            writer.submit(make_log(k * 100 + i, tags=["load"]))
            if i % 10 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(producer(k) for k in range(50)))
    await writer.close()
    assert await _count(store) == (5000, 5000)
    stats = writer.stats
    assert (stats.submitted, stats.written, stats.spilled, stats.lost, stats.queued) == (5000, 5000, 0, 0, 0)
    assert _files(spill_dir) == []


async def test_duplicate_request_id_is_stored_once(store: SQLStore, spill_dir: Path) -> None:
    async with LogWriter(store.logs, spill_dir=spill_dir) as writer:
        writer.submit(make_log(1))
        writer.submit(make_log(1))
        await asyncio.sleep(0.3)
        writer.submit(make_log(1))
    assert await _count(store) == (1, 1)
    assert (writer.stats.written, writer.stats.duplicates) == (1, 2)


async def test_log_file_gets_every_row_once(store: SQLStore, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "requests.jsonl"
    async with LogWriter(store.logs, spill_dir=tmp_path / "spill", log_file=log_file, max_queue=5) as writer:
        for i in range(40):  # the queue overflows: those rows take the spill path, and are logged too
            writer.submit(make_log(i))
    ids = [orjson.loads(line)["request_id"] for line in log_file.read_text().splitlines()]
    assert sorted(ids) == [f"req_{i:06d}" for i in range(40)]
    assert await _count(store) == (40, 40)


async def test_outage_spills_then_replays(spill_dir: Path) -> None:
    sink = MemorySink()
    sink.down = True
    writer = LogWriter(sink, spill_dir=spill_dir, flush_interval=0.01, retry_initial=0.05, retry_max=0.2)
    for i in range(300):
        writer.submit(make_log(i))
    await asyncio.sleep(0.3)
    assert writer.stats.spilled == 300 and not writer.stats.healthy and sink.rows == {}
    assert any(name.endswith(".jsonl") for name in _files(spill_dir))
    sink.down = False
    for i in range(300, 400):
        writer.submit(make_log(i))
    await asyncio.sleep(0.5)  # the backoff runs out, the spill is replayed without waiting for close
    assert len(sink.rows) == 400 and writer.stats.healthy
    assert _files(spill_dir) == []
    await writer.close()
    assert writer.stats.replayed == writer.stats.spilled >= 300 and writer.stats.lost == 0


async def test_full_queue_spills_instead_of_blocking(spill_dir: Path) -> None:
    sink = MemorySink()
    sink.gate = asyncio.Event()  # the database hangs
    writer = LogWriter(sink, spill_dir=spill_dir, max_queue=10, batch_size=5)
    for i in range(100):
        writer.submit(make_log(i))  # returns at once even though nothing can be written
    assert writer.stats.queued <= 10 and writer.stats.spilled >= 85
    sink.gate.set()
    await writer.close()
    assert sorted(sink.rows) == [f"req_{i:06d}" for i in range(100)]
    assert _files(spill_dir) == []


async def test_queue_is_bounded_in_bytes_too(spill_dir: Path) -> None:
    sink = MemorySink()
    sink.gate = asyncio.Event()  # the database hangs while big rows keep coming
    writer = LogWriter(sink, spill_dir=spill_dir, max_queue=1000, max_queue_bytes=10_000, batch_size=5)
    for i in range(100):
        writer.submit(make_log(i), 1_000)
        assert writer.stats.queued_bytes <= 10_000
    assert (writer.stats.queued, writer.stats.queued_bytes, writer.stats.spilled) == (10, 10_000, 90)
    writer.submit(make_log(100), 50_000)  # bigger than the whole budget: spilled, not queued
    assert (writer.stats.queued, writer.stats.spilled) == (10, 91)
    sink.gate.set()
    await writer.close()
    assert sorted(sink.rows) == [f"req_{i:06d}" for i in range(101)]
    assert writer.stats.queued_bytes == 0 and writer.stats.lost == 0


async def test_one_row_bigger_than_the_byte_budget_still_queues_when_the_queue_is_empty(spill_dir: Path) -> None:
    sink = MemorySink()
    async with LogWriter(sink, spill_dir=spill_dir, max_queue_bytes=100) as writer:
        writer.submit(make_log(1), 5_000)
        assert writer.stats.queued == 1 and writer.stats.queued_bytes == 5_000
    assert list(sink.rows) == ["req_000001"] and writer.stats.spilled == 0 and writer.stats.queued_bytes == 0


async def test_rows_the_database_refuses_are_set_aside(spill_dir: Path) -> None:
    sink = MemorySink()
    sink.poison = {"req_000003"}
    async with LogWriter(sink, spill_dir=spill_dir) as writer:
        for i in range(6):
            writer.submit(make_log(i))
    assert sorted(sink.rows) == [f"req_{i:06d}" for i in (0, 1, 2, 4, 5)]
    assert writer.stats.rejected == 1 and writer.stats.healthy
    (rejected,) = spill_dir.glob("rejected-*.jsonl")
    assert orjson.loads(rejected.read_text())["request_id"] == "req_000003"


async def test_spill_left_at_close_is_replayed_by_the_next_writer(spill_dir: Path) -> None:
    sink = MemorySink()
    sink.down = True
    writer = LogWriter(sink, spill_dir=spill_dir, retry_initial=0.01)
    for i in range(50):
        writer.submit(make_log(i))
    await writer.close()
    writer.submit(make_log(50))  # after close: spilled, not dropped
    assert writer.stats.spilled == 51 and sink.rows == {}
    assert [name.split("-")[0] for name in _files(spill_dir)] == ["pending", "pending"]

    sink.down = False
    async with LogWriter(sink, spill_dir=spill_dir):
        await asyncio.sleep(0.1)
    assert len(sink.rows) == 51 and _files(spill_dir) == []


async def test_close_gives_up_on_a_hung_database_without_losing_rows(spill_dir: Path) -> None:
    sink = MemorySink()
    sink.gate = asyncio.Event()
    writer = LogWriter(sink, spill_dir=spill_dir)
    for i in range(20):
        writer.submit(make_log(i))
    await asyncio.sleep(0.3)
    for i in range(20, 30):  # queued behind the hung batch, still to be built by the writer's task
        writer.submit(lambda i=i: make_log(i))
    await asyncio.wait_for(writer.close(timeout=0.5), 2)
    spilled = [
        orjson.loads(line)["request_id"] for p in spill_dir.glob("*.jsonl") for line in p.read_text().splitlines()
    ]
    assert sorted(spilled) == [f"req_{i:06d}" for i in range(30)]
    sink.gate.set()


@pytest.mark.parametrize("bad", ["not json", '{"request_id": ""}'])
async def test_corrupt_spill_lines_are_set_aside(spill_dir: Path, bad: str) -> None:
    spill_dir.mkdir()
    good = make_log(1).model_dump_json()
    (spill_dir / "pending-00000000000000000001-1-x.jsonl").write_text(good + "\n" + bad + "\n")
    sink = MemorySink()
    async with LogWriter(sink, spill_dir=spill_dir) as writer:
        await asyncio.sleep(0.05)
    assert list(sink.rows) == ["req_000001"] and writer.stats.rejected == 1
    assert [name.split("-")[0] for name in _files(spill_dir)] == ["rejected"]


async def test_nul_characters_do_not_poison_a_batch(store: SQLStore, spill_dir: Path) -> None:
    """PostgreSQL refuses NUL in text and JSON: rows are stored with U+FFFD in its place, on both dialects."""
    async with LogWriter(store.logs, spill_dir=spill_dir) as writer:
        writer.submit(make_log(1, messages=[{"role": "user", "content": "nul\x00walrus"}], error_message="a\x00b"))
        writer.submit(make_log(2, metadata={"k\x00": ["v\x00"]}, prompt_tokens=2**40))
        writer.submit(make_log(3, attempts=[AttemptInfo(model="m", provider="p", error="e\x00")], tags=["t\x00"]))
    assert (writer.stats.written, writer.stats.spilled, writer.stats.rejected) == (3, 0, 0)
    first, second = await store.logs.get("req_000001"), await store.logs.get("req_000002")
    third = await store.logs.get("req_000003")
    assert third is not None and third.attempts[0].error == "e\ufffd" and third.tags == ["t\ufffd"]
    assert first is not None and first.messages == [{"role": "user", "content": "nul\ufffdwalrus"}]
    assert first.error_message == "a\ufffdb" and [log.request_id for log in await store.logs.search("walrus")] == [
        "req_000001"
    ]
    assert second is not None and second.metadata == {"k\ufffd": ["v\ufffd"]} and second.prompt_tokens == 2**40


async def test_bad_data_is_told_apart_from_an_outage(store: SQLStore) -> None:
    duplicate = insert(request_logs).values(make_log(1).model_dump())
    await store.logs.write_batch([make_log(1)])
    with pytest.raises(Exception) as refused:
        async with store.engine.begin() as connection:
            await connection.execute(duplicate)
    assert is_bad_data(refused.value)
    if store.dialect == "postgresql":
        with pytest.raises(Exception) as out_of_range:
            async with store.engine.connect() as connection:
                await connection.execute(select(cast(literal(2**40), Integer)))
        assert is_bad_data(out_of_range.value)
    assert not is_bad_data(ConnectionRefusedError("down"))
    assert not is_bad_data(OperationalError("SELECT 1", {}, Exception("database is locked")))


async def test_a_writer_closed_before_it_started_still_keeps_rows(spill_dir: Path) -> None:
    sink = MemorySink()
    writer = LogWriter(sink, spill_dir=spill_dir)
    await writer.close()
    writer.submit(make_log(1))
    assert writer.stats.spilled == 1 and [n.split("-")[0] for n in _files(spill_dir)] == ["pending"]
    async with LogWriter(sink, spill_dir=spill_dir):
        await asyncio.sleep(0.05)
    assert list(sink.rows) == ["req_000001"] and _files(spill_dir) == []


async def test_rows_are_built_in_slices_that_let_other_tasks_run(spill_dir: Path) -> None:
    sink = MemorySink()
    ticks = 0
    seen: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    def build(i: int) -> RequestLog:
        seen.append(ticks)
        return make_log(i)

    running = asyncio.create_task(ticker())
    async with LogWriter(sink, spill_dir=spill_dir) as writer:
        for i in range(300):
            writer.submit(lambda i=i: build(i))
    running.cancel()
    assert len(sink.rows) == 300
    assert len(set(seen)) >= 300 // BUILD_SLICE  # the ticker ran between slices of one batch


async def test_a_row_is_built_once_a_request_goes_upstream_not_as_its_response_ends(spill_dir: Path) -> None:
    sink = MemorySink()
    built: list[str] = []
    async with LogWriter(sink, spill_dir=spill_dir, flush_interval=0.01) as writer:
        await asyncio.sleep(0.01)  # the writer waits for rows
        writer.submit(lambda: built.append("row") or make_log(1))
        for _ in range(5):  # the turns of the loop in which the client's next request arrives and is handled
            await asyncio.sleep(0)
        assert built == []
        writer.upstream_waiting()  # that request has gone upstream: the loop is about to wait
        for _ in range(3):
            await asyncio.sleep(0)
        assert built == ["row"]
    assert list(sink.rows) == ["req_000001"]


async def test_without_a_hint_a_row_is_built_after_build_wait(spill_dir: Path) -> None:
    sink = MemorySink()
    async with LogWriter(sink, spill_dir=spill_dir, flush_interval=0.01) as writer:
        await asyncio.sleep(0.01)
        writer.submit(make_log(1))
        await asyncio.sleep(BUILD_WAIT + 0.1)
        assert list(sink.rows) == ["req_000001"]  # written before close flushed it
    writer.upstream_waiting()  # a hint with nobody waiting for it is harmless


async def test_a_writer_cancelled_while_a_row_waits_for_a_quiet_moment_spills_it(spill_dir: Path) -> None:
    sink = MemorySink()
    writer = LogWriter(sink, spill_dir=spill_dir)
    writer.start()
    await asyncio.sleep(0.01)  # the writer waits for rows
    writer.submit(make_log(1))
    writer.submit(make_log(2))
    await asyncio.sleep(0)  # the writer has taken row 1 and waits for a quiet moment to build it
    assert writer._holding is not None and writer._task is not None
    writer._task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer._task
    writer._closed = True
    await writer._stop_task()
    writer._spill.close()
    spilled = [
        orjson.loads(line)["request_id"] for p in spill_dir.glob("*.jsonl") for line in p.read_text().splitlines()
    ]
    assert sorted(spilled) == ["req_000001", "req_000002"] and sink.rows == {}


async def test_a_cancelled_writer_spills_the_rows_it_was_building(spill_dir: Path) -> None:
    sink = MemorySink()
    writer = LogWriter(sink, spill_dir=spill_dir)
    built = 0

    def build(i: int) -> RequestLog:
        nonlocal built
        built += 1
        if built == BUILD_SLICE + 1:
            assert writer._task is not None
            writer._task.cancel()  # lands at the next yield, with a slice of built rows in hand
        return make_log(i)

    for i in range(3 * BUILD_SLICE):
        writer.submit(lambda i=i: build(i))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.shield(writer._task)  # type: ignore[arg-type]
    writer._closed = True
    await writer._stop_task()  # what close() does with a task that ended: spill what is still queued
    writer._spill.close()
    spilled = [
        orjson.loads(line)["request_id"] for p in spill_dir.glob("*.jsonl") for line in p.read_text().splitlines()
    ]
    assert sorted(spilled) == [f"req_{i:06d}" for i in range(3 * BUILD_SLICE)] and sink.rows == {}


async def test_live_rows_are_written_between_the_chunks_of_a_long_replay(spill_dir: Path) -> None:
    """A replay goes one chunk at a time when live rows wait, and resumes where it stopped (nothing twice)."""
    order: list[str] = []

    class RecordingSink(MemorySink):
        async def write_batch(self, logs: Sequence[RequestLog]) -> int:
            order.append("outage" if int(logs[0].request_id[4:]) < 60 else "live")
            await asyncio.sleep(0.01)  # a database round trip: live rows queue meanwhile
            return await super().write_batch(logs)

    sink = RecordingSink()
    sink.down = True
    writer = LogWriter(sink, spill_dir=spill_dir, batch_size=10, flush_interval=0.01, retry_initial=0.05)
    for i in range(60):  # req_000000..59: six replay chunks
        writer.submit(make_log(i))
    await asyncio.sleep(0.1)
    assert writer.stats.spilled == 60
    order.clear()
    sink.down = False

    async def live() -> None:
        for i in range(200, 300):
            writer.submit(make_log(i))
            await asyncio.sleep(0.002)

    await live()
    await writer.close()
    stats = writer.stats
    assert len(sink.rows) == 160 and stats.replayed == stats.spilled >= 60 and stats.duplicates == 0
    replayed = [i for i, kind in enumerate(order) if kind == "outage"]
    assert len(replayed) == 6 and any(order[i] == "live" for i in range(replayed[0], replayed[-1]))
    assert _files(spill_dir) == []


async def test_a_replay_cancelled_mid_chunk_starts_its_file_again(spill_dir: Path) -> None:
    """Cancelled while a replayed chunk was being written: that chunk must not count as done."""
    sink = MemorySink()
    sink.down = True
    writer = LogWriter(sink, spill_dir=spill_dir, batch_size=10, retry_initial=0.01)
    for i in range(30):
        writer.submit(make_log(i))
    await writer.close()  # everything spilled: one pending file of three chunks
    sink.down = False
    sink.gate = asyncio.Event()  # the first chunk's write hangs
    second = LogWriter(sink, spill_dir=spill_dir, batch_size=10)
    second.start()
    while sink.calls == 0:
        await asyncio.sleep(0.005)
    await second.close(timeout=0.05)  # gives up on the hung write: the replay is cancelled mid-chunk
    assert sink.rows == {} and [name.split("-")[0] for name in _files(spill_dir)] == ["pending"]
    sink.gate.set()
    async with LogWriter(sink, spill_dir=spill_dir, batch_size=10):
        await asyncio.sleep(0.1)
    assert sorted(sink.rows) == [f"req_{i:06d}" for i in range(30)] and _files(spill_dir) == []


def test_held_bytes_counts_prompt_images_and_answers() -> None:
    def call(content: object) -> Call:
        messages = [{"role": "user", "content": content}]
        return Call("chat", ChatRequest.model_validate({"model": "m", "messages": messages}))

    empty = held_bytes(call(""))
    image = "data:image/png;base64," + "A" * 1_000_000
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": image}}]
    assert empty < 4_000
    assert held_bytes(call("x" * 200_000)) - empty == 200_000
    assert held_bytes(call(parts)) - empty >= 1_000_000
    message = {"role": "assistant", "content": "y" * 50_000}
    answer = ChatResponse.model_validate({"choices": [{"index": 0, "message": message}]})
    assert held_bytes(call(""), answer) - empty >= 50_000


class PreparingSink(MemorySink):
    """A sink that encodes rows ahead of their write (as ``SQLLogStore`` does), and may fail to."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.prepared: list[tuple[str, int]] = []

    def prepare(self, log: RequestLog) -> None:
        if self.fail:
            raise TypeError("cannot encode")
        self.prepared.append((log.request_id, threading.get_ident()))


async def test_rows_are_encoded_on_the_event_loop_as_they_are_built(spill_dir: Path) -> None:
    sink = PreparingSink()
    async with LogWriter(sink, spill_dir=spill_dir) as writer:
        for i in range(5):
            writer.submit(lambda i=i: make_log(i))
    assert sink.prepared == [(f"req_{i:06d}", threading.get_ident()) for i in range(5)] and len(sink.rows) == 5


async def test_a_row_that_cannot_be_encoded_ahead_is_still_written(
    spill_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = PreparingSink(fail=True)
    async with LogWriter(sink, spill_dir=spill_dir) as writer:
        writer.submit(make_log(1))
    assert list(sink.rows) == ["req_000001"] and writer.stats.lost == 0
    assert "could not encode request log req_000001" in caplog.text
