"""The SSE decoder (any split, every line ending) and the chunk accumulator (tool-call argument deltas)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.streaming import ChunkAccumulator, SSEDecoder, encode_json_sse
from modelyard.types.chat import ChatChunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta
from modelyard.types.usage import Usage

PAYLOAD = b'event: x\r\ndata: a\r\n\r\ndata: b\n\ndata: c\rdata: d\r\r: comment\ndata: e\n\nid: 7\ndata: {"k": 1}\n'
EXPECTED = [("x", "a"), (None, "b"), (None, "c\nd"), (None, "e"), (None, '{"k": 1}')]


def decode(*parts: bytes) -> list[tuple[str | None, str]]:
    decoder = SSEDecoder()
    events = [e for part in parts for e in decoder.feed(part)] + decoder.flush()
    return [(e.event, e.data) for e in events]


def test_every_line_ending_and_comments() -> None:
    assert decode(PAYLOAD) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(PAYLOAD)), max_size=6))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    parts = [PAYLOAD[a:b] for a, b in zip([0, *points], [*points, len(PAYLOAD)], strict=True)]
    assert decode(*parts) == EXPECTED


LF_PAYLOAD = (
    'event: x\ndata: a\n\ndata:b\n\n: comment\ndata: c\ndata:  d\n\nid: 7\ndata: {"k": 1}\n\ndata: é\n\n'.encode()
)
LF_EXPECTED = [("x", "a"), (None, "b"), (None, "c\n d"), (None, '{"k": 1}'), (None, "é")]


@given(st.lists(st.integers(min_value=0, max_value=len(LF_PAYLOAD)), max_size=6))
def test_lf_only_streams_split_anywhere_give_the_same_events(cuts: list[int]) -> None:
    """LF line endings (what every provider sends), a multi-byte character cut in two included."""
    points = sorted(set(cuts))
    parts = [LF_PAYLOAD[a:b] for a, b in zip([0, *points], [*points, len(LF_PAYLOAD)], strict=True)]
    assert decode(*parts) == LF_EXPECTED


def test_byte_by_byte() -> None:
    assert decode(*(bytes([b]) for b in PAYLOAD)) == EXPECTED


def test_oversized_line_is_refused() -> None:
    with pytest.raises(ValueError, match="size limit"):
        SSEDecoder().feed(b"data: " + b"x" * (16 * 1024 * 1024 + 1))


def test_encoder_round_trip() -> None:
    assert decode(encode_json_sse({"a": "b\nc"}, event="e")) == [
        ("e", json.dumps({"a": "b\nc"}, separators=(",", ":")))
    ]


def chunk(delta: Delta | None = None, finish: str | None = None, usage: Usage | None = None) -> ChatChunk:
    choices = [] if delta is None and finish is None else [ChunkChoice(delta=delta or Delta(), finish_reason=finish)]
    return ChatChunk(id="c1", model="m", choices=choices, usage=usage)


def test_accumulator_rebuilds_text_reasoning_and_tool_calls() -> None:
    acc = ChunkAccumulator()
    parts = [
        chunk(Delta(role="assistant", reasoning_content="think ")),
        chunk(Delta(reasoning_content="hard")),
        chunk(Delta(content="Hel")),
        chunk(Delta(content="lo")),
        chunk(
            Delta(
                tool_calls=[ToolCallDelta(index=0, id="call_1", function=FunctionCallDelta(name="get", arguments=""))]
            )
        ),
        chunk(Delta(tool_calls=[ToolCallDelta(index=1, id="call_2", function=FunctionCallDelta(name="put"))])),
        chunk(Delta(tool_calls=[ToolCallDelta(index=0, function=FunctionCallDelta(arguments='{"a":'))])),
        chunk(Delta(tool_calls=[ToolCallDelta(index=1, function=FunctionCallDelta(arguments='{"b": 2}'))])),
        chunk(Delta(tool_calls=[ToolCallDelta(index=0, function=FunctionCallDelta(arguments=" 1}"))])),
        chunk(finish="tool_calls"),
        chunk(usage=Usage.of(5, 7)),
    ]
    for part in parts:
        acc.add(part)
    response = acc.response()
    message = response.choices[0].message
    assert acc.finished and response.id == "c1"
    assert (message.content, message.reasoning_content) == ("Hello", "think hard")
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []] == [
        ("call_1", "get", {"a": 1}),
        ("call_2", "put", {"b": 2}),
    ]
    assert response.choices[0].finish_reason == "tool_calls"
    assert response.usage is not None and response.usage.total_tokens == 12


def test_unfinished_stream_is_not_finished() -> None:
    acc = ChunkAccumulator()
    acc.add(chunk(Delta(content="half")))
    assert not acc.finished
