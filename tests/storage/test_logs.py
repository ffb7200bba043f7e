"""The log store: round trip, filters, pagination, full-text search, summaries, retention, export."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from pydantic import BaseModel
from sqlalchemy import Dialect, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as sqlite_dialect

from modelyard.errors import BadRequestError
from modelyard.storage import LogQuery, RequestLog, SQLStore, open_store
from modelyard.storage.base import MAX_SEARCH_TEXT
from modelyard.storage.engine import json_dumps, scrub_nul
from modelyard.storage.schema import request_logs
from modelyard.storage.sql_logs import CHUNK_SIZES, LOG_COLUMNS, LogInsert, _chunks
from modelyard.types.chat import AttemptInfo
from tests.storage.conftest import T0, make_log


async def test_round_trip_keeps_every_field(store: SQLStore) -> None:
    log = make_log(
        1,
        attempts=[
            AttemptInfo(model="openai/gpt-4o", provider="openai", status=429, error="rate limited", latency_ms=12.5),
            AttemptInfo(model="openai/gpt-4o-mini", provider="openai", status=200, latency_ms=80.0),
        ],
        params={"temperature": 0.2, "max_tokens": 64},
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        tool_calls=[{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        finish_reason="tool_calls",
        cached_tokens=3,
        reasoning_tokens=7,
        cost_source="billed",
        billed_cost=0.75,
        ttft_ms=20.0,
        tokens_per_second=55.5,
        stream=True,
        tags=["eval", "nightly"],
        metadata={"user": "ann", "nested": {"n": [1, 2]}},
        conversation_id="conv_1",
        cache_hit=False,
        fallback_used=True,
        run_id="run_7",
        feedback="good",
    )
    assert await store.logs.write_batch([log]) == 1
    found = await store.logs.get("req_000001")
    assert found == log
    assert found is not None and found.created_at.tzinfo is not None
    assert found.prompt_text == "question number 1" and found.response_text == "answer number 1"
    assert await store.logs.get("missing") is None


async def test_duplicate_request_ids_are_ignored(store: SQLStore) -> None:
    assert await store.logs.write_batch([make_log(1, tags=["a"]), make_log(1, tags=["b"]), make_log(2)]) == 2
    assert await store.logs.write_batch([make_log(1), make_log(3)]) == 1
    assert await store.logs.count() == 3
    assert await store.logs.count(LogQuery(tag="b")) == 0
    assert await store.logs.write_batch([]) == 0


@pytest.fixture
async def varied(store: SQLStore) -> SQLStore:
    """Ten rows, one a minute, with a spread of models, providers, callers, tags and statuses."""
    logs = [
        make_log(
            i,
            created_at=T0 + timedelta(minutes=i),
            requested_model="fast" if i % 2 else "smart",
            served_model="openai/gpt-4o-mini" if i % 2 else "anthropic/claude",
            provider="openai" if i % 2 else "anthropic",
            caller="key_a" if i < 5 else "key_b",
            status="error" if i == 3 else "ok",
            tags=["even"] if i % 2 == 0 else ["odd", "prime"] if i in (3, 5, 7) else ["odd"],
            conversation_id="conv_x" if i in (1, 2) else None,
            run_id="run_1" if i >= 8 else None,
        )
        for i in range(10)
    ]
    await store.logs.write_batch(logs)
    return store


async def _ids(store: SQLStore, **filters: object) -> list[int]:
    page = await store.logs.query(LogQuery.model_validate(filters))
    return [int(log.request_id.split("_")[1]) for log in page.items]


async def test_each_filter(varied: SQLStore) -> None:
    assert await _ids(varied) == list(range(9, -1, -1))  # newest first
    assert await _ids(varied, model="fast") == [9, 7, 5, 3, 1]
    assert await _ids(varied, model="anthropic/claude") == [8, 6, 4, 2, 0]
    assert await _ids(varied, provider="openai") == [9, 7, 5, 3, 1]
    assert await _ids(varied, status="error") == [3]
    assert await _ids(varied, caller="key_a") == [4, 3, 2, 1, 0]
    assert await _ids(varied, tag="prime") == [7, 5, 3]
    assert await _ids(varied, conversation_id="conv_x") == [2, 1]
    assert await _ids(varied, run_id="run_1") == [9, 8]
    assert await _ids(varied, since=T0 + timedelta(minutes=7)) == [9, 8, 7]
    assert await _ids(varied, until=T0 + timedelta(minutes=2)) == [1, 0]
    assert await _ids(varied, text="question number 4") == [4]
    assert await _ids(varied, tag="odd", caller="key_b", provider="openai") == [9, 7, 5]
    assert await _ids(varied, limit=3, offset=2) == [7, 6, 5]
    assert await varied.logs.count(LogQuery(tag="odd")) == 5
    assert await varied.logs.count() == 10


async def test_cursor_pages_cover_every_row_once(store: SQLStore) -> None:
    # Several rows share a timestamp: the cursor must still neither skip nor repeat.
    await store.logs.write_batch([make_log(i, created_at=T0 + timedelta(seconds=i // 3)) for i in range(25)])
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.logs.query(LogQuery(limit=4, cursor=cursor))
        seen += [log.request_id for log in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 25 and len(set(seen)) == 25
    with pytest.raises(BadRequestError):
        await store.logs.query(LogQuery(cursor="not-a-cursor"))


async def test_full_text_finds_prompt_and_response_words(store: SQLStore) -> None:
    await store.logs.write_batch(
        [
            make_log(1, messages=[{"role": "user", "content": "Tell me about the aardvark"}]),
            make_log(2, response={"choices": [{"message": {"role": "assistant", "content": "Zebras are striped."}}]}),
            make_log(
                3,
                messages=[{"role": "user", "content": [{"type": "text", "text": "multipart kiwi"}]}],
                response={
                    "choices": [
                        {
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {
                                        "id": "c",
                                        "type": "function",
                                        "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
                                    }
                                ],
                            }
                        }
                    ]
                },
            ),
        ]
    )
    assert [log.request_id for log in await store.logs.search("aardvark")] == ["req_000001"]
    assert [log.request_id for log in await store.logs.search("zebras")] == ["req_000002"]
    assert [log.request_id for log in await store.logs.search("kiwi")] == ["req_000003"]
    assert [log.request_id for log in await store.logs.search("lisbon")] == ["req_000003"]
    assert await store.logs.search("aardvark zebras") == []  # every word must match
    assert await store.logs.search("platypus") == []
    assert await store.logs.search("?!*") == []
    assert await store.logs.count(LogQuery(text="number")) == 2  # rows 1 and 2 keep the default text
    assert await store.logs.count(LogQuery(text='"number" OR NEAR(x y)')) == 0


async def test_feedback(store: SQLStore) -> None:
    await store.logs.write_batch([make_log(1)])
    assert await store.logs.set_feedback("req_000001", "thumbs_up")
    assert not await store.logs.set_feedback("missing", "x")
    found = await store.logs.get("req_000001")
    assert found is not None and found.feedback == "thumbs_up"


@pytest.fixture
async def priced(store: SQLStore) -> SQLStore:
    """Rows over three days with exact (binary) costs and known latencies."""
    rows = []
    for day in range(3):
        for i in range(4):
            n = day * 10 + i
            rows.append(
                make_log(
                    n,
                    created_at=T0 + timedelta(days=day, hours=i),
                    served_model="m1" if i < 3 else "m2",
                    caller=f"key_{i % 2}",
                    tags=["t1", "t2"] if i == 0 else ["t1"],
                    prompt_tokens=100 + i,
                    completion_tokens=10 * (i + 1),
                    cost=[0.5, 0.25, 0.125, 1.0][i],
                    latency_ms=float(10 * (i + 1) + day),
                    status="error" if i == 3 else "ok",
                )
            )
    await store.logs.write_batch(rows)
    return store


async def test_summary_by_model(priced: SQLStore) -> None:
    rows = {r.key: r for r in await priced.logs.summary("model")}
    assert set(rows) == {"m1", "m2"}
    m1, m2 = rows["m1"], rows["m2"]
    assert (m1.requests, m1.prompt_tokens, m1.completion_tokens, m1.cost, m1.errors) == (9, 909, 180, 2.625, 0)
    assert (m2.requests, m2.prompt_tokens, m2.completion_tokens, m2.cost, m2.errors) == (3, 309, 120, 3.0, 3)
    # m1 latencies: 10,20,30 / 11,21,31 / 12,22,32 -> nearest-rank p50 = 5th of 9 = 21, p95 = 9th = 32
    assert (m1.p50_latency_ms, m1.p95_latency_ms) == (21.0, 32.0)
    assert (m2.p50_latency_ms, m2.p95_latency_ms) == (41.0, 42.0)


async def test_summary_by_day_tag_caller_provider(priced: SQLStore) -> None:
    days = await priced.logs.summary("day")
    assert [d.key for d in days] == ["2025-03-01", "2025-03-02", "2025-03-03"]
    assert all((d.requests, d.prompt_tokens, d.completion_tokens, d.cost) == (4, 406, 100, 1.875) for d in days)
    tags = {r.key: (r.requests, r.cost, r.prompt_tokens) for r in await priced.logs.summary("tag")}
    assert tags == {"t1": (12, 5.625, 1218), "t2": (3, 1.5, 300)}
    callers = {r.key: (r.requests, r.cost, r.errors) for r in await priced.logs.summary("caller")}
    assert callers == {"key_0": (6, 1.875, 0), "key_1": (6, 3.75, 3)}
    assert [(r.key, r.requests) for r in await priced.logs.summary("provider")] == [("openai", 12)]


async def test_summary_time_bounds_and_filters(priced: SQLStore) -> None:
    second_day = await priced.logs.summary("day", since=T0 + timedelta(days=1), until=T0 + timedelta(days=2))
    assert [(d.key, d.requests, d.cost) for d in second_day] == [("2025-03-02", 4, 1.875)]
    only_key_1 = await priced.logs.summary("model", where=LogQuery(caller="key_1"))
    assert {r.key: r.requests for r in only_key_1} == {"m1": 3, "m2": 3}
    assert await priced.logs.summary("model", since=T0 + timedelta(days=9)) == []


async def test_total_cost_of_a_caller_or_a_tag_since_a_time(priced: SQLStore) -> None:
    """What seeds a budget counter: the same sums as the summaries, filtered the same way."""
    assert await priced.logs.total_cost(LogQuery(caller="key_1")) == pytest.approx(3.75)
    assert await priced.logs.total_cost(LogQuery(tag="t2")) == pytest.approx(1.5)
    assert await priced.logs.total_cost(LogQuery(since=T0 + timedelta(days=2))) == pytest.approx(1.875)
    assert await priced.logs.total_cost(LogQuery(caller="nobody")) == 0.0


async def test_retention_deletes_only_old_rows(store: SQLStore) -> None:
    logs = [
        make_log(
            i,
            created_at=T0 + timedelta(days=i),
            tags=["keep" if i >= 6 else "old"],
            messages=[{"role": "user", "content": f"retention{i}"}],
        )
        for i in range(10)
    ]
    await store.logs.write_batch(logs)
    assert await store.logs.delete_older_than(T0 + timedelta(days=6), batch_size=4) == 6
    assert sorted(log.request_id for log in (await store.logs.query(LogQuery())).items) == [
        f"req_{i:06d}" for i in range(6, 10)
    ]
    assert await store.logs.count(LogQuery(tag="old")) == 0
    assert await store.logs.search("retention2") == []
    assert len(await store.logs.search("retention7")) == 1
    assert await store.logs.delete_older_than(T0) == 0


async def test_export_jsonl_streams_every_row(store: SQLStore) -> None:
    await store.logs.write_batch([make_log(i, created_at=T0 + timedelta(seconds=i)) for i in range(1203)])
    lines = [line async for line in store.logs.export()]
    assert len(lines) == 1203 and all(line.endswith("\n") for line in lines)
    ids = [orjson.loads(line)["request_id"] for line in lines]
    assert len(set(ids)) == 1203 and ids[0] == "req_001202"
    assert RequestLog.model_validate_json(lines[-1]) == make_log(0)
    limited = [line async for line in store.logs.export(LogQuery(since=T0 + timedelta(seconds=1000)), limit=50)]
    assert len(limited) == 50


async def test_export_csv(store: SQLStore) -> None:
    await store.logs.write_batch(
        [
            make_log(i, created_at=T0 + timedelta(seconds=i), tags=["x"], error_message="line one\nline two")
            for i in range(600)
        ]
    )
    text = "".join([line async for line in store.logs.export(format="csv")])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 600
    first = rows[0]
    assert first["request_id"] == "req_000599"
    assert orjson.loads(first["tags"]) == ["x"] and orjson.loads(first["messages"])[0]["role"] == "user"
    assert first["error_message"] == "line one\nline two" and first["cost"] == "0.5"


async def test_huge_texts_are_cut_for_search(store: SQLStore) -> None:
    """Search text is capped per side, so a huge prompt can never break the insert (tsvector max 1 MB)."""
    words = " ".join(f"w{i} 猫" for i in range(40_000))
    log = make_log(1, messages=[{"role": "user", "content": words + " needle"}], tags=["a", "a", ""])
    assert log.prompt_text is not None and len(log.prompt_text) == MAX_SEARCH_TEXT
    assert log.tags == ["a"]
    assert await store.logs.write_batch([log]) == 1
    found = await store.logs.get("req_000001")
    assert found is not None and found.messages == log.messages
    assert len(await store.logs.search("w17")) == 1 and await store.logs.search("needle") == []


async def test_batches_across_chunk_boundaries_keep_the_first_of_each_request_id(store: SQLStore) -> None:
    """A batch is inserted in chunks: duplicates in other chunks, or already stored, are skipped with their tags."""
    await store.logs.write_batch([make_log(5, tags=["stored"])])
    ids = [*range(150), 3, 70, 149, 5]  # repeats that land in later chunks than their first row
    logs = [make_log(i, tags=[f"first{i}"]) for i in range(150)] + [make_log(i, tags=["again"]) for i in ids[150:]]
    assert await store.logs.write_batch(logs) == 149
    assert await store.logs.count() == 150
    assert await store.logs.count(LogQuery(tag="again")) == 0 and await store.logs.count(LogQuery(tag="first5")) == 0
    assert await store.logs.count(LogQuery(tag="first149")) == 1 and await store.logs.count(LogQuery(tag="stored")) == 1
    assert await store.logs.write_batch(logs) == 0
    assert await store.logs.search("number 149") == [await store.logs.get("req_000149")]


def test_chunks_cover_any_batch_with_the_fixed_sizes() -> None:
    for n in range(300):
        sizes = [len(chunk) for chunk in _chunks(list(range(n)), CHUNK_SIZES)]
        assert sum(sizes) == n and set(sizes) <= set(CHUNK_SIZES)
        assert [i for chunk in _chunks(list(range(n)), CHUNK_SIZES) for i in chunk] == list(range(n))


class _Point(BaseModel):
    x: int
    when: datetime


@pytest.mark.parametrize("dialect", [sqlite_dialect(), asyncpg_dialect()], ids=["sqlite", "postgresql"])
def test_insert_values_are_what_sqlalchemy_would_bind(dialect: Dialect) -> None:
    """The fast row path binds exactly what SQLAlchemy's own processing of ``model_dump`` would (odd values too)."""
    dialect._json_serializer = json_dumps  # what create_engine sets up
    odd = {"when": T0, "model": _Point(x=1, when=T0), "tuple": (1, 2), "set": {3}, "price": Decimal("1.5")}
    odd["nested"] = {2: "k"}
    logs = [
        make_log(1),
        make_log(2, created_at=datetime(2025, 3, 1, 13, 30, 0, 5, tzinfo=timezone(timedelta(hours=2))), metadata=odd),
        make_log(3, attempts=[AttemptInfo(model="m", provider="p", status=500, error="nul\x00here")], tags=["t"]),
    ]
    insert = LogInsert(dialect)
    for log in logs:
        row = scrub_nul(log.model_dump())
        expected = []
        for name in LOG_COLUMNS:
            processor = request_logs.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            expected.append(processor(row[name]) if processor else row[name])
        assert insert.values(log) == expected


def test_values_encoded_ahead_are_used_for_that_row_only() -> None:
    dialect = sqlite_dialect()
    dialect._json_serializer = json_dumps
    insert = LogInsert(dialect)
    log, twin = make_log(1), make_log(1)
    insert.prepare(log)
    assert insert.encoded(log) == insert.values(log) and log == twin  # the encoding is no part of the row
    object.__setattr__(log, "_encoded", ["ahead"])  # what ``prepare`` left is what the write binds...
    assert insert.encoded(log) == ["ahead"]
    copy = log.model_copy(update={"request_id": "req_other"})  # ...but never for another row made from it
    assert insert.encoded(copy) == insert.values(copy) and insert.encoded(copy)[0] == "req_other"
    assert RequestLog.__private_attributes__ == {}  # a bare slot: a private attribute costs every row built


async def test_closing_a_store_twice_is_harmless(store: SQLStore) -> None:
    await store.logs.write_batch([make_log(1)])
    await store.logs.close()
    await store.logs.close()


async def _fts_integrity(store: SQLStore) -> None:
    """FTS5's own check that its index holds exactly the words of the rows it is over (raises otherwise)."""
    async with store.engine.begin() as connection:
        await connection.execute(text("INSERT INTO request_logs_fts(request_logs_fts) VALUES ('integrity-check')"))


@pytest.mark.parametrize("where", ["file", "memory"])
async def test_sqlite_full_text_index_matches_the_rows(where: str, tmp_path: Path) -> None:
    """SQLite indexes each batch's new rows itself (no per-row trigger): duplicates skipped by a batch are not
    indexed twice, retention removes rows from the index, and both insert paths (the batch thread for a file,
    the engine for memory) index alike."""
    url = f"sqlite:///{tmp_path / 'fts.db'}" if where == "file" else "sqlite://"
    async with await open_store(url) as store:
        await store.logs.write_batch([make_log(1, messages=[{"role": "user", "content": "first walrus"}])])
        again = [make_log(1, messages=[{"role": "user", "content": "first walrus"}])]
        later = [make_log(n, created_at=T0 + timedelta(days=n)) for n in (2, 3)]
        assert await store.logs.write_batch(again + later) == 2
        await _fts_integrity(store)
        assert [log.request_id for log in await store.logs.search("walrus")] == ["req_000001"]
        assert await store.logs.count(LogQuery(text="number")) == 3
        assert await store.logs.delete_older_than(T0 + timedelta(days=3)) == 2
        await _fts_integrity(store)
        assert await store.logs.search("walrus") == [] and await store.logs.count(LogQuery(text="number")) == 1
