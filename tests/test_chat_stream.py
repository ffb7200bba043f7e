"""``ChatStream``: hooks run once per chunk and exactly once at the end, however the stream ends; batches of
chunks that arrived together stay together; a changed chunk is never forwarded in its upstream form."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Iterator

import pytest

from modelyard import errors
from modelyard.gateway import Gateway
from modelyard.pipeline import LATE_CHUNKS, ChatStream, StreamEnd, stream_ends_settled
from modelyard.sdk.admin_local import InProcessAdmin
from modelyard.types.chat import ChatChunk, ModelyardInfo


def chunk(text: str) -> ChatChunk:
    return ChatChunk.from_wire({"id": "c", "model": "up", "choices": [{"index": 0, "delta": {"content": text}}]})


async def batches(*groups: list[str], fail: Exception | None = None) -> AsyncIterator[list[ChatChunk]]:
    for group in groups:
        yield [chunk(t) for t in group]
    if fail is not None:
        raise fail


def watched(stream: ChatStream) -> tuple[list[str], list[StreamEnd]]:
    seen: list[str] = []
    ends: list[StreamEnd] = []
    stream.observe(lambda c: seen.append(c.text), ends.append)
    return seen, ends


async def test_batches_stay_together_and_hooks_see_every_chunk_once() -> None:
    stream = ChatStream.batched(batches(["a", "b"], ["c"]), ModelyardInfo())
    seen, ends = watched(stream)
    assert [c.text for c in await stream.next_batch()] == ["a", "b"]
    assert [c.text async for c in stream] == ["c"]
    assert seen == ["a", "b", "c"]
    assert ends == [StreamEnd(completed=True)] and stream.closed


async def test_iterating_chunk_by_chunk_after_a_batch_was_split() -> None:
    stream = ChatStream.batched(batches(["a", "b", "c"]), ModelyardInfo())
    assert (await stream.__anext__()).text == "a"
    assert [c.text for c in await stream.next_batch()] == ["b", "c"]  # the rest of the same read
    with pytest.raises(StopAsyncIteration):
        await stream.next_batch()


async def test_delivered_hooks_see_a_batch_only_after_it_was_handed_out() -> None:
    stream = ChatStream.batched(batches(["a", "b"], ["c"]), ModelyardInfo())
    delivered: list[str] = []
    order: list[str] = []
    stream.observe(
        lambda c: delivered.append(c.text), lambda end: order.append(f"end after {delivered}"), delivered=True
    )
    assert [c.text for c in await stream.next_batch()] == ["a", "b"]
    assert delivered == []  # nothing ran between the batch's arrival and its hand-out
    assert [c.text for c in await stream.next_batch()] == ["c"]
    assert delivered == ["a", "b"]
    with pytest.raises(StopAsyncIteration):
        await stream.next_batch()
    assert order == ["end after ['a', 'b', 'c']"]


async def test_kept_open_at_its_end_a_stream_runs_late_hooks_when_closed() -> None:
    """The server writes ``[DONE]`` before the request log's and the metrics' hooks run: with ``keep_open``, a
    stream whose delivered and end hooks all may follow the last frame is closed by its consumer, not its source."""
    stream = ChatStream.batched(batches(["a", "b"], ["c"]), ModelyardInfo())
    delivered: list[str] = []
    ends: list[StreamEnd] = []
    stream.observe(lambda c: delivered.append(c.text), ends.append, delivered=True, after_last_frame=True)
    assert [c.text for c in await stream.next_batch(keep_open=True)] == ["a", "b"]
    assert [c.text for c in await stream.next_batch(keep_open=True)] == ["c"]
    assert delivered == ["a", "b"]  # a batch is shown once the next one has come
    with pytest.raises(StopAsyncIteration):
        await stream.next_batch(keep_open=True)
    assert not stream.closed and delivered == ["a", "b"] and ends == []  # the consumer writes its last frame now
    await stream.aclose()
    assert delivered == ["a", "b", "c"] and ends == [StreamEnd(completed=True)]


async def test_one_hook_that_must_precede_the_last_frame_keeps_the_end_as_it_was() -> None:
    stream = ChatStream.batched(batches(["a"]), ModelyardInfo())
    late: list[StreamEnd] = []
    early: list[StreamEnd] = []
    stream.observe(on_end=late.append, after_last_frame=True)
    stream.observe(on_end=early.append)  # e.g. a saved conversation: the next request must find the reply
    await stream.next_batch(keep_open=True)
    with pytest.raises(StopAsyncIteration):
        await stream.next_batch(keep_open=True)
    assert stream.closed and early == late == [StreamEnd(completed=True)]


async def test_a_stream_iterated_to_its_end_runs_late_hooks_after_the_consumers_loop() -> None:
    """``async for`` has no last frame of its own: the consumer's loop ending is the moment the log may follow."""
    stream = ChatStream.batched(batches(["a"], ["b"]), ModelyardInfo())
    delivered: list[str] = []
    ends: list[StreamEnd] = []
    stream.observe(lambda c: delivered.append(c.text), ends.append, delivered=True, after_last_frame=True)
    assert [c.text async for c in stream] == ["a", "b"]
    assert stream.closed and delivered == [] and ends == []  # the source is released; the hooks come next
    await stream_ends_settled()
    assert delivered == ["a", "b"] and ends == [StreamEnd(completed=True)]


async def test_a_long_iterated_stream_shows_late_hooks_what_it_holds_once_enough_wait() -> None:
    groups = [[str(i)] for i in range(LATE_CHUNKS + 1)]
    stream = ChatStream.batched(batches(*groups), ModelyardInfo())
    delivered: list[str] = []
    stream.observe(lambda c: delivered.append(c.text), delivered=True, after_last_frame=True)
    async for c in stream:
        assert len(delivered) == (0 if int(c.text) < LATE_CHUNKS else LATE_CHUNKS)
    await stream_ends_settled()
    assert delivered == [str(i) for i in range(LATE_CHUNKS + 1)]


async def test_an_iterated_stream_with_one_early_hook_runs_every_hook_before_its_loop_ends() -> None:
    stream = ChatStream.batched(batches(["a"]), ModelyardInfo())
    late: list[StreamEnd] = []
    early: list[StreamEnd] = []
    stream.observe(on_end=late.append, after_last_frame=True).observe(on_end=early.append)
    assert [c.text async for c in stream] == ["a"]
    assert early == late == [StreamEnd(completed=True)]


async def test_an_iterated_stream_that_fails_or_is_left_early_runs_its_hooks_at_once() -> None:
    failing = ChatStream.batched(batches(["a"], fail=errors.StreamInterruptedError("gone")), ModelyardInfo())
    failed: list[StreamEnd] = []
    failing.observe(on_end=failed.append, after_last_frame=True)
    with pytest.raises(errors.StreamInterruptedError):
        async for _ in failing:
            pass
    assert isinstance(failed[0].error, errors.StreamInterruptedError)
    left = ChatStream.batched(batches(["a"], ["b"]), ModelyardInfo())
    ends: list[StreamEnd] = []
    left.observe(on_end=ends.append, after_last_frame=True)
    async with left:
        async for _ in left:
            break
    assert ends == [StreamEnd()]


async def test_a_late_hook_that_fails_after_the_loop_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    stream = ChatStream.batched(batches(["a"]), ModelyardInfo())

    def broken(end: StreamEnd) -> None:
        raise RuntimeError("hook bug")

    stream.observe(on_end=broken, after_last_frame=True)
    assert [c.text async for c in stream] == ["a"]  # the consumer had the whole answer
    with caplog.at_level("ERROR", logger="modelyard.pipeline"):
        await stream_ends_settled()
    assert "end hook failed" in caplog.text and "hook bug" in caplog.text


async def test_delivered_hooks_skip_chunks_never_handed_out() -> None:
    stream = ChatStream.batched(batches(["a", "b", "c"]), ModelyardInfo())
    early, delivered = watched(stream)[0], []
    stream.observe(lambda c: delivered.append(c.text), delivered=True)
    assert (await stream.__anext__()).text == "a"
    await stream.aclose()  # "b" and "c" arrived but the consumer never took them
    assert early == ["a", "b", "c"] and delivered == ["a"]


async def test_first_token_and_usage_hooks_see_only_their_chunks() -> None:
    usage = ChatChunk.from_wire(
        {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    )
    empty = ChatChunk.from_wire({"id": "c", "choices": []})

    async def source() -> AsyncIterator[list[ChatChunk]]:
        yield [empty, chunk("a")]
        yield [chunk("b"), usage]

    stream = ChatStream.batched(source(), ModelyardInfo())
    firsts: list[str] = []
    usages: list[int] = []
    stream.observe(on_first_token=lambda c: firsts.append(c.text))
    stream.observe(on_usage=lambda c: usages.append(c.usage.total_tokens if c.usage else -1))
    assert [c.text async for c in stream] == ["", "a", "b", ""]
    assert firsts == ["a"] and usages == [5]


async def test_failure_reaches_the_end_hooks_and_the_caller() -> None:
    boom = errors.StreamInterruptedError("cut")
    stream = ChatStream.batched(batches(["a"], fail=boom), ModelyardInfo())
    seen, ends = watched(stream)
    with pytest.raises(errors.StreamInterruptedError):
        async for _ in stream:
            pass
    assert seen == ["a"]
    assert len(ends) == 1 and ends[0].error is boom and not ends[0].completed


async def test_closed_early_is_neither_completed_nor_failed_and_ends_once() -> None:
    released: list[str] = []

    async def source() -> AsyncIterator[list[ChatChunk]]:
        try:
            yield [chunk("a")]
            yield [chunk("b")]
        finally:
            released.append("upstream")

    stream = ChatStream.batched(source(), ModelyardInfo())
    _, ends = watched(stream)
    await stream.next_batch()
    await stream.aclose()
    await stream.aclose()
    assert ends == [StreamEnd()] and released == ["upstream"]


async def test_timeout_while_waiting_ends_the_stream_with_a_timeout_error() -> None:
    async def silent() -> AsyncIterator[list[ChatChunk]]:
        yield [chunk("a")]
        await asyncio.sleep(10)
        yield [chunk("never")]

    stream = ChatStream.batched(silent(), ModelyardInfo())
    _, ends = watched(stream)
    await stream.next_batch(timeout=1)
    with pytest.raises(errors.TimeoutError, match=r"no next chunk from the model within 0\.05s"):
        await stream.next_batch(timeout=0.05, waiting_for="next chunk")
    assert isinstance(ends[0].error, errors.TimeoutError)


async def test_every_end_hook_runs_even_when_one_fails() -> None:
    stream = ChatStream.batched(batches(["a"]), ModelyardInfo())
    ran: list[str] = []

    def broken(end: StreamEnd) -> None:
        raise RuntimeError("hook bug")

    async def later(end: StreamEnd) -> None:
        ran.append("later")

    stream.observe(on_end=broken).observe(on_end=later)
    with pytest.raises(RuntimeError, match="hook bug"):
        async for _ in stream:
            pass
    assert ran == ["later"]


async def test_wrapped_chunks_lose_their_upstream_form() -> None:
    stream = ChatStream.batched(batches(["a"]), ModelyardInfo())
    assert (await stream.next_batch())[0].wire is not None

    async def shout(source: ChatStream) -> AsyncIterator[ChatChunk]:
        async for c in source:
            c.choices[0].delta.content = (c.choices[0].delta.content or "").upper()
            yield c

    wrapped = ChatStream.batched(batches(["b"]), ModelyardInfo()).wrap(shout)
    changed = [c async for c in wrapped]
    assert changed[0].text == "B" and changed[0].wire is None


def test_copies_never_carry_the_upstream_form() -> None:
    original = chunk("a")
    assert original.wire == {"id": "c", "model": "up", "choices": [{"index": 0, "delta": {"content": "a"}}]}
    assert original.model_copy().wire is None
    assert original.model_copy(update={"model": "x"}).wire is None
    assert ChatChunk(model="m").wire is None


async def test_a_stream_read_to_its_end_leaves_its_whole_row_when_the_gateway_closes_at_once() -> None:
    """The row is handed over after the consumer's loop: ``Gateway.aclose`` must wait for that before the writer."""
    request = {"model": "fake/echo", "messages": [{"role": "user", "content": "hi there"}]}
    async with Gateway() as gateway:
        stream = await gateway.stream(request)
        assert "".join([c.text async for c in stream]) == "hi there"
        request_id = stream.info.request_id
    assert gateway.writer is not None
    stats = gateway.writer.stats
    assert (stats.submitted, stats.written, stats.spilled) == (1, 1, 0)  # written, not set aside for later
    async with Gateway() as reopened:
        row = await (await reopened.stores()).logs.get(request_id)
    assert row is not None and row.status == "ok" and row.response_text == "hi there"


async def test_a_log_read_right_after_a_stream_read_to_its_end_finds_its_row() -> None:
    request = {"model": "fake/echo", "messages": [{"role": "user", "content": "hi there"}]}
    async with Gateway() as gateway:
        stream = await gateway.stream(request)
        assert "".join([c.text async for c in stream]) == "hi there"
        row = await InProcessAdmin(lambda: gateway).log(stream.info.request_id)
    assert row is not None and row.response_text == "hi there"


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Only reference counting frees objects here: what lives on was kept by a reference cycle."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("collector_off")
async def test_a_logged_stream_leaves_nothing_for_the_garbage_collector() -> None:
    async with Gateway() as gateway:  # logging on (the default), into the test's SQLite file
        request = {"model": "fake/echo", "messages": [{"role": "user", "content": "hi there"}]}
        stream = await gateway.stream(request)
        assert "".join([c.text async for c in stream]) == "hi there"
        await stream_ends_settled()
        gone = weakref.ref(stream)
        del stream
        assert gone() is None  # before: the logging hook and the stream held each other until a collection
