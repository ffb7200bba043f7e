"""Serve a ``ChatStream`` as OpenAI server-sent events, with timeouts and correct failure framing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson

from modelyard import errors
from modelyard.pipeline import ChatStream
from modelyard.server.errors import error_event
from modelyard.server.responses import LastFrame
from modelyard.streaming import SSE_DONE
from modelyard.types.chat import ChatChunk, ModelyardInfo

ChunkEncoder = Callable[[ChatChunk], bytes | None]


def openai_chunk_bytes(include_usage: bool, model: str, info: ModelyardInfo | None = None) -> ChunkEncoder:
    """Encode chunks as ``data: {...}``. Usage goes out only when asked for, and then (as OpenAI sends it) in a
    chunk of its own with empty ``choices``; every other chunk carries ``"usage": null``.

    The usage chunk also carries a ``modelyard`` object (cost, its source, the served model): headers are sent
    before a stream's cost is known. OpenAI clients ignore the extra field."""

    def frame(data: dict[str, object]) -> bytes:
        return b"".join((b"data: ", orjson.dumps(data), b"\n\n"))

    def encode(chunk: ChatChunk) -> bytes | None:
        # An OpenAI-compatible upstream's own object: forwarded as it came (cheaper than a dump), and only once.
        data = chunk.take_wire()
        if data is not None:
            data.pop("usage", None)
        else:
            data = chunk.model_dump(exclude_none=True, exclude={"modelyard", "usage"})
        data["model"] = model
        data.setdefault("choices", [])
        if chunk.usage is None:
            if include_usage:
                data["usage"] = None  # ``data`` is this chunk's own copy (its wire form, taken, or a dump)
            return frame(data)
        if not include_usage:
            return frame(data) if data["choices"] else None
        usage = chunk.usage.model_dump(exclude_none=True)
        accounting = _accounting(info)
        if not data["choices"]:
            return frame({**data, "usage": usage, **accounting})
        return frame({**data, "usage": None}) + frame({**data, "choices": [], "usage": usage, **accounting})

    return encode


def _accounting(info: ModelyardInfo | None) -> dict[str, object]:
    if info is None:
        return {}
    fields = {"cost", "cost_source", "billed_cost", "served_model", "provider", "request_id", "usage_estimated"}
    return {"modelyard": info.model_dump(include=fields, exclude_none=True)}


async def paced_batches(
    stream: ChatStream, first_token_timeout: float, idle_timeout: float, *, keep_open: bool = False
) -> AsyncIterator[list[ChatChunk]]:
    """The stream's batches, failing with ``TimeoutError`` when the first or the next chunk is too slow.

    ``keep_open``: see ``ChatStream.next_batch`` (the caller then closes the stream after its last frame)."""
    timeout, kind = first_token_timeout, "first chunk"
    while True:
        try:
            batch = await stream.next_batch(timeout, kind, keep_open=keep_open)
        except StopAsyncIteration:
            return
        timeout, kind = idle_timeout, "next chunk"
        yield batch


async def paced(stream: ChatStream, first_token_timeout: float, idle_timeout: float) -> AsyncIterator[ChatChunk]:
    """``paced_batches``, chunk by chunk."""
    async for batch in paced_batches(stream, first_token_timeout, idle_timeout):
        for chunk in batch:
            yield chunk


async def sse_body(
    stream: ChatStream,
    encode: ChunkEncoder,
    *,
    first_token_timeout: float,
    idle_timeout: float,
    done: bytes | None = SSE_DONE,
    on_error: Callable[[BaseException], bytes] = error_event,
) -> AsyncIterator[bytes]:
    """Yield SSE frames (those of chunks that arrived together in one piece); a failure after the start becomes
    an error event and the stream ends without [DONE]. The stream is closed after the last frame: its hooks that
    may (the request log's, metrics') then run once the client has the whole answer."""
    try:
        async for batch in paced_batches(stream, first_token_timeout, idle_timeout, keep_open=True):
            frames = [frame for frame in map(encode, batch) if frame is not None]
            if frames:
                yield frames[0] if len(frames) == 1 else b"".join(frames)
        if done:
            yield LastFrame(done)
    except errors.ModelyardError as exc:
        yield LastFrame(on_error(exc))
    except Exception as exc:  # a bug: still tell the client the stream failed instead of ending quietly
        yield LastFrame(on_error(exc))
        raise
    finally:
        await stream.aclose()
