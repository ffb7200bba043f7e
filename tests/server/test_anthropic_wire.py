"""The Anthropic Messages API front door: requests in, answers and streams out, checked against the official SDK.

The SDK tests run the real ``anthropic`` client over an in-memory transport whose handler does what the route
does (translate, answer, encode), so the SDK's own request serializer, response parser and stream accumulator
judge the wire format.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from modelyard import errors
from modelyard.providers import anthropic_wire as upstream_wire
from modelyard.server.anthropic_wire import (
    AnthropicStreamEncoder,
    anthropic_error_body,
    anthropic_to_chat,
    chat_to_anthropic,
    count_tokens_request,
    count_tokens_response,
)
from modelyard.streaming import SSEDecoder
from modelyard.types.chat import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    Message,
    ToolCall,
    ToolCallDelta,
)
from modelyard.types.usage import PromptTokensDetails, Usage

MODEL = "claude-test"
EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}], **fields}


def reply(
    text: str | None = "Hi there",
    *,
    finish: str = "stop",
    calls: list[ToolCall] | None = None,
    reasoning: str | None = None,
    usage: Usage | None = None,
    **extra: Any,
) -> ChatResponse:
    message = Message(role="assistant", content=text, tool_calls=calls, reasoning_content=reasoning, **extra)
    usage = usage or Usage(prompt_tokens=12, completion_tokens=5, total_tokens=17)
    return ChatResponse(
        id="chatcmpl-abc", model="upstream", choices=[Choice(message=message, finish_reason=finish)], usage=usage
    )


def chunk(finish: str | None = None, usage: Usage | None = None, **delta: Any) -> ChatChunk:
    choices = [ChunkChoice(delta=Delta.model_validate(delta), finish_reason=finish)] if delta or finish else []
    return ChatChunk(id="chatcmpl-abc", choices=choices, usage=usage)


def call_delta(index: int, id: str | None = None, name: str | None = None, args: str | None = None) -> ToolCallDelta:
    return ToolCallDelta(index=index, id=id, function=FunctionCallDelta(name=name, arguments=args))


def encode(chunks: list[ChatChunk], **kwargs: Any) -> list[bytes]:
    encoder = AnthropicStreamEncoder(MODEL, **kwargs)
    frames = encoder.start()
    for c in chunks:
        frames += encoder.feed(c)
    return frames + encoder.finish()


def events(frames: list[bytes]) -> list[RawMessageStreamEvent]:
    decoded = SSEDecoder().feed(b"".join(frames))
    for event in decoded:
        assert event.event == orjson.loads(event.data)["type"]  # the SSE event name matches the payload type
    return [EVENTS.validate_python(event.json()) for event in decoded]


class Route:
    """What ``POST /v1/messages`` does, minus the gateway: translate in, answer with a script, translate out."""

    def __init__(self, answer: ChatResponse | None = None, chunks: list[ChatChunk] | None = None) -> None:
        self.answer = answer or reply()
        self.chunks = chunks
        self.seen: list[ChatRequest] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        data = orjson.loads(request.content)
        try:
            if request.url.path.endswith("/count_tokens"):
                self.seen.append(count_tokens_request(data))
                return httpx2.Response(200, json=count_tokens_response(42))
            chat, stream = anthropic_to_chat(data)
        except errors.ModelyardError as exc:
            status, error = anthropic_error_body(exc)
            return httpx2.Response(status, json=error)
        self.seen.append(chat)
        if not stream:
            return httpx2.Response(200, json=chat_to_anthropic(self.answer, chat.model))
        frames = encode(self.chunks if self.chunks is not None else replay(self.answer))
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"".join(frames))


def replay(response: ChatResponse) -> list[ChatChunk]:
    """A response as a finely split stream: reasoning, signature, text and each tool call in pieces."""
    message = response.choices[0].message
    chunks = [chunk(role="assistant", content="")]
    reasoning = message.reasoning_content or ""
    chunks += [chunk(reasoning_content=reasoning[i : i + 3]) for i in range(0, len(reasoning), 3)]
    if (message.model_extra or {}).get("reasoning_signature"):
        chunks.append(chunk(reasoning_signature=message.model_extra["reasoning_signature"]))  # type: ignore[index]
    text = message.text()
    chunks += [chunk(content=text[i : i + 4]) for i in range(0, len(text), 4)]
    for n, call in enumerate(message.tool_calls or []):
        args = call.function.arguments
        chunks.append(chunk(tool_calls=[call_delta(n, call.id, call.function.name, "")]))
        chunks += [chunk(tool_calls=[call_delta(n, args=args[i : i + 5])]) for i in range(0, len(args), 5)]
    chunks.append(chunk(finish=response.choices[0].finish_reason))
    return [*chunks, chunk(usage=response.usage)]


def sdk(handler: Callable[[httpx2.Request], httpx2.Response]) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(handler)
    return anthropic.Anthropic(
        api_key="test", base_url="http://gateway.test", http_client=httpx2.Client(transport=transport), max_retries=0
    )


# ---------------------------------------------------------------- requests in


def test_text_request() -> None:
    chat, stream = anthropic_to_chat(body())
    assert stream is False
    assert chat.model == MODEL
    assert chat.max_tokens == 256
    assert [m.model_dump(exclude_none=True) for m in chat.messages] == [{"role": "user", "content": "Hello"}]
    assert anthropic_to_chat(body(stream=True))[1] is True


def test_system_string_and_blocks_come_first() -> None:
    chat, _ = anthropic_to_chat(body(system="Be brief."))
    assert chat.messages[0].model_dump(exclude_none=True) == {"role": "system", "content": "Be brief."}
    blocks = [
        {"type": "text", "text": "You are a pirate."},
        {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}},
    ]
    chat, _ = anthropic_to_chat(body(system=blocks))
    system = chat.messages[0]
    assert system.role == "system" and isinstance(system.content, list)
    assert [p.model_dump(exclude_none=True) for p in system.content] == blocks
    assert upstream_wire.request_body(chat)["system"] == blocks  # the cache breakpoint survives to Anthropic


def test_system_turns_inside_messages_stay_in_place() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "system", "content": [{"type": "text", "text": "Now answer in French."}]},
        {"role": "user", "content": "How are you?"},
    ]
    chat, _ = anthropic_to_chat(body(system="Be kind.", messages=messages))
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "Be kind."),
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("system", "Now answer in French."),
        ("user", "How are you?"),
    ]


def test_sampling_metadata_and_stop_sequences_through_the_sdk() -> None:
    route = Route()
    sdk(route).messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": "Hi"}],
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 40},  # older SDKs' parameters; raw HTTP still sends them
        stop_sequences=["###", "END"],
        metadata={"user_id": "user-7"},
    )
    chat = route.seen[0]
    assert (chat.temperature, chat.top_p, chat.stop, chat.user) == (0.3, 0.9, ["###", "END"], "user-7")
    assert (chat.model_extra or {})["top_k"] == 40
    assert chat.stream is None  # the route picks chat or stream from the returned flag


def test_images_become_image_url_parts() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What are these?"},
    ]
    chat, _ = anthropic_to_chat(body(messages=[{"role": "user", "content": content}]))
    parts = chat.messages[0].content
    assert isinstance(parts, list)
    assert [p.model_dump(exclude_none=True) for p in parts] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What are these?"},
    ]
    assert upstream_wire.request_body(chat)["messages"][0]["content"] == content


def test_unmapped_blocks_pass_through() -> None:
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    chat, _ = anthropic_to_chat(body(messages=[{"role": "user", "content": [document]}]))
    assert upstream_wire.request_body(chat)["messages"][0]["content"] == [document]


CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C and sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "service down", "is_error": True},
            {"type": "text", "text": "Also, which is warmer?"},
        ],
    },
]


def test_tool_conversation_becomes_tool_messages() -> None:
    chat, _ = anthropic_to_chat(body(system="Use tools.", messages=CONVERSATION, tools=[WEATHER]))
    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert chat.messages[0].content == "Use tools."  # tool results never leak into the system prompt
    assistant = chat.messages[2]
    assert assistant.content == "Checking both."
    assert [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in assistant.tool_calls or []] == [
        ("toolu_1", "get_weather", {"city": "Paris"}),
        ("toolu_2", "get_weather", {"city": "Rome"}),
    ]
    first, second = chat.messages[3], chat.messages[4]
    assert (first.tool_call_id, first.content, (first.model_extra or {}).get("is_error")) == (
        "toolu_1",
        "18C and sunny",
        None,
    )
    assert (second.tool_call_id, second.content, (second.model_extra or {})["is_error"]) == (
        "toolu_2",
        "service down",
        True,
    )
    assert chat.messages[5].content == "Also, which is warmer?"
    tool = chat.tools[0].function if chat.tools else None
    assert tool is not None and (tool.name, tool.description, tool.parameters) == (
        WEATHER["name"],
        WEATHER["description"],
        WEATHER["input_schema"],
    )


def test_tool_conversation_round_trips_to_an_anthropic_upstream() -> None:
    chat, _ = anthropic_to_chat(body(system="Use tools.", messages=CONVERSATION, tools=[WEATHER]))
    out = upstream_wire.request_body(chat)
    assert out["messages"] == CONVERSATION
    assert out["system"] == "Use tools."
    assert out["tools"] == [WEATHER]


def test_tool_result_with_blocks() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}, image],
    }
    messages = [*CONVERSATION[:2], {"role": "user", "content": [result]}]
    chat, _ = anthropic_to_chat(body(messages=messages))
    tool = chat.messages[-1]
    assert tool.role == "tool" and isinstance(tool.content, list)
    assert [p.type for p in tool.content] == ["text", "text", "image_url"]
    assert upstream_wire.request_body(chat)["messages"][-1]["content"] == [result]
    single = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "ok"}]}
    chat, _ = anthropic_to_chat(body(messages=[*CONVERSATION[:2], {"role": "user", "content": [single]}]))
    assert chat.messages[-1].content == "ok"


def test_thinking_blocks_become_reasoning_content() -> None:
    turn = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Paris is in France.", "signature": "sig-123"},
            {"type": "text", "text": "It is Paris."},
        ],
    }
    messages = [{"role": "user", "content": "Capital of France?"}, turn, {"role": "user", "content": "Sure?"}]
    chat, _ = anthropic_to_chat(body(messages=messages))
    assistant = chat.messages[1]
    assert assistant.reasoning_content == "Paris is in France."
    assert (assistant.model_extra or {})["reasoning_signature"] == "sig-123"
    assert upstream_wire.request_body(chat)["messages"] == messages


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}, None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any", "disable_parallel_tool_use": False}, "required", None),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any, parallel: bool | None) -> None:
    chat, _ = anthropic_to_chat(body(tools=[WEATHER], tool_choice=choice))
    assert (chat.tool_choice, chat.parallel_tool_calls) == (expected, parallel)


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 5000}, "medium"),
        ({"type": "enabled", "budget_tokens": 32000}, "high"),
        ({"type": "adaptive"}, None),
        ({"type": "disabled"}, None),
    ],
)
def test_thinking_config(thinking: dict[str, Any], effort: str | None) -> None:
    chat, _ = anthropic_to_chat(body(max_tokens=64000, thinking=thinking))
    assert chat.reasoning_effort == effort
    assert (chat.model_extra or {})["thinking"] == thinking
    assert upstream_wire.request_body(chat)["thinking"] == thinking  # an Anthropic upstream gets it verbatim


def test_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    config = {"effort": "max", "format": {"type": "json_schema", "schema": schema}}
    chat, _ = anthropic_to_chat(body(output_config=config))
    assert chat.reasoning_effort == "high"
    assert chat.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_unknown_top_level_fields_are_ignored() -> None:
    chat, _ = anthropic_to_chat(body(service_tier="auto", container="c1", context_management={"edits": []}))
    assert "service_tier" not in chat.model_dump(exclude_none=True)
    assert not chat.model_extra


def test_count_tokens_request_needs_no_max_tokens() -> None:
    route = Route()
    counted = sdk(route).messages.count_tokens(
        model=MODEL,
        system="sys",
        messages=[{"role": "user", "content": "Hi"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert counted.input_tokens == 42
    chat = route.seen[0]
    assert (chat.max_tokens, [m.role for m in chat.messages], len(chat.tools or [])) == (None, ["system", "user"], 1)
    assert count_tokens_response(7) == {"input_tokens": 7}
    with pytest.raises(errors.BadRequestError) as info:
        count_tokens_request({"model": MODEL})
    assert info.value.param == "messages"


def _without(key: str) -> dict[str, Any]:
    data = body()
    del data[key]
    return data


INVALID: list[tuple[Any, str]] = [
    (_without("max_tokens"), "max_tokens"),
    (_without("model"), "model"),
    (_without("messages"), "messages"),
    (["not", "an", "object"], "body"),
    (body(model=""), "model"),
    (body(max_tokens=0), "max_tokens"),
    (body(max_tokens="100"), "max_tokens"),
    (body(max_tokens=True), "max_tokens"),
    (body(messages=[]), "messages"),
    (body(messages=[{"role": "tool", "content": "x"}]), "messages.0.role"),
    (body(messages=[{"role": "system", "content": [{"type": "image", "source": {}}]}]), "messages.0.content.0.type"),
    (body(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
    (body(messages=[{"role": "user"}]), "messages.0.content"),
    (body(messages=[{"role": "user", "content": [{"text": "no type"}]}]), "messages.0.content.0.type"),
    (body(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages.0.content.0.text"),
    (
        body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]),
        "messages.0.content.0.source.media_type",
    ),
    (
        body(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "tool_result"}]}]),
        "messages.1.content.0.tool_use_id",
    ),
    (
        body(messages=[{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]),
        "messages.0.content.0.type",
    ),
    (
        body(messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}]}]),
        "messages.0.content.0.input",
    ),
    (
        body(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]}]),
        "messages.0.content.0.is_error",
    ),
    (body(system=[{"type": "image", "source": {}}]), "system.0.type"),
    (body(system=5), "system"),
    (body(temperature=1.5), "temperature"),
    (body(top_p="high"), "top_p"),
    (body(top_k=-1), "top_k"),
    (body(stop_sequences="###"), "stop_sequences"),
    (body(stop_sequences=["ok", 3]), "stop_sequences.1"),
    (body(stream="yes"), "stream"),
    (body(metadata={"user_id": 5}), "metadata.user_id"),
    (body(tools=[{"name": "f"}]), "tools.0.input_schema"),
    (body(tools=[{"input_schema": {}}]), "tools.0.name"),
    (body(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type"),
    (body(tool_choice={"type": "sometimes"}), "tool_choice.type"),
    (body(tool_choice={"type": "tool"}), "tool_choice.name"),
    (body(tool_choice={"type": "auto", "disable_parallel_tool_use": "y"}), "tool_choice.disable_parallel_tool_use"),
    (body(thinking={"type": "enabled"}), "thinking.budget_tokens"),
    (body(thinking={"type": "lots"}), "thinking.type"),
    (body(output_config={"effort": "extreme"}), "output_config.effort"),
    (body(output_config={"format": {"type": "regex"}}), "output_config.format.type"),
]


@pytest.mark.parametrize(("data", "param"), INVALID, ids=[p for _, p in INVALID])
def test_invalid_requests_name_the_field(data: Any, param: str) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        anthropic_to_chat(data)
    assert info.value.param == param
    assert info.value.message.startswith(param)


def test_invalid_request_reaches_the_sdk_as_bad_request() -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk(Route()).messages.create(model=MODEL, max_tokens=10, messages=[])
    assert info.value.status_code == 400
    error = info.value.body
    assert isinstance(error, dict) and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith("messages:")


# ---------------------------------------------------------------- answers out


def test_text_answer_is_an_sdk_message() -> None:
    out = chat_to_anthropic(reply(), MODEL)
    message = SDKMessage.model_validate(out)
    assert out["id"] == "msg_abc"
    assert (message.model, message.role, message.stop_reason, message.stop_sequence) == (
        MODEL,
        "assistant",
        "end_turn",
        None,
    )
    assert out["content"] == [{"type": "text", "text": "Hi there"}]
    assert out["usage"] == {
        "input_tokens": 12,
        "output_tokens": 5,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_thinking_text_and_tool_calls_in_order() -> None:
    calls = [ToolCall(id="call_1", function=FunctionCall(name="get_weather", arguments='{"city": "Paris"}'))]
    out = chat_to_anthropic(
        reply("Let me check.", finish="tool_calls", calls=calls, reasoning="Need weather.", reasoning_signature="sig"),
        MODEL,
    )
    SDKMessage.model_validate(out)
    assert out["content"] == [
        {"type": "thinking", "thinking": "Need weather.", "signature": "sig"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert out["stop_reason"] == "tool_use"
    only_calls = chat_to_anthropic(reply(None, finish="tool_calls", calls=calls), MODEL)
    assert [b["type"] for b in only_calls["content"]] == ["tool_use"]


@pytest.mark.parametrize(
    ("finish", "extra", "reason", "sequence"),
    [
        ("stop", {}, "end_turn", None),
        ("length", {}, "max_tokens", None),
        ("tool_calls", {}, "tool_use", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "###"}, "stop_sequence", "###"),  # vLLM reports the matched stop string
        ("stop", {"stop_sequence": "END"}, "stop_sequence", "END"),
        ("length", {"stop_reason": None}, "max_tokens", None),
    ],
)
def test_stop_reasons(finish: str, extra: dict[str, Any], reason: str, sequence: str | None) -> None:
    response = reply(finish=finish)
    for key, value in extra.items():
        setattr(response.choices[0], key, value)
    out = chat_to_anthropic(response, MODEL)
    assert (out["stop_reason"], out["stop_sequence"]) == (reason, sequence)
    SDKMessage.model_validate(out)


def test_usage_excludes_cache_reads_and_writes_from_input_tokens() -> None:
    usage = Usage(
        prompt_tokens=1000,
        completion_tokens=40,
        total_tokens=1040,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=600, cache_creation_tokens=300),
    )
    out = chat_to_anthropic(reply(usage=usage), MODEL)
    assert out["usage"] == {
        "input_tokens": 100,
        "output_tokens": 40,
        "cache_read_input_tokens": 600,
        "cache_creation_input_tokens": 300,
    }
    assert upstream_wire.usage_from(out["usage"]) == usage  # and the adapter's arithmetic undoes it exactly
    assert chat_to_anthropic(reply(usage=Usage()), MODEL)["usage"]["input_tokens"] == 0


def test_answer_round_trips_through_the_anthropic_reader() -> None:
    calls = [ToolCall(id="toolu_9", function=FunctionCall(name="f", arguments='{"x":[1,2]}'))]
    original = reply("Done.", finish="tool_calls", calls=calls, reasoning="hmm", reasoning_signature="s1")
    back = upstream_wire.chat_response(chat_to_anthropic(original, MODEL), MODEL)
    assert back.choices[0].message == original.choices[0].message
    assert back.choices[0].finish_reason == "tool_calls"
    assert back.usage == original.usage


def test_refusal_and_bad_tool_arguments() -> None:
    out = chat_to_anthropic(reply(None, finish="content_filter", refusal="I can't help with that."), MODEL)
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"
    calls = [ToolCall(id="c", function=FunctionCall(name="f", arguments="{not json"))]
    with pytest.raises(errors.ProviderError):
        chat_to_anthropic(reply(None, finish="tool_calls", calls=calls), MODEL)


def test_answers_through_the_sdk() -> None:
    calls = [ToolCall(id="call_1", function=FunctionCall(name="get_weather", arguments='{"city": "Rome"}'))]
    route = Route(reply("On it.", finish="tool_calls", calls=calls))
    message = sdk(route).messages.create(
        model=MODEL,
        max_tokens=100,
        messages=CONVERSATION,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Rome"}  # type: ignore[union-attr]
    assert [m.role for m in route.seen[0].messages] == ["user", "assistant", "tool", "tool", "user"]


# ---------------------------------------------------------------- streams out


def test_text_stream_exact_bytes() -> None:
    usage = Usage(prompt_tokens=9, completion_tokens=2, total_tokens=11)
    frames = encode(
        [
            chunk(role="assistant", content=""),
            chunk(content="Hel"),
            chunk(content="lo"),
            chunk("stop"),
            chunk(usage=usage),
        ],
        message_id="msg_1",
        input_tokens=8,
    )
    start = (
        b'{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-test",'
        b'"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":8,"output_tokens":0,'
        b'"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}}'
    )
    final = (
        b'{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":9,'
        b'"output_tokens":2,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}'
    )
    text_delta = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%s"}}'
    assert frames == [
        b"event: message_start\ndata: " + start + b"\n\n",
        b"event: content_block_start\ndata: "
        b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
        b"event: content_block_delta\ndata: " + text_delta % b"Hel" + b"\n\n",
        b"event: content_block_delta\ndata: " + text_delta % b"lo" + b"\n\n",
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
        b"event: message_delta\ndata: " + final + b"\n\n",
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]


def test_thinking_then_text_stream() -> None:
    parsed = events(
        encode(
            [
                chunk(reasoning_content="Let me "),
                chunk(reasoning_content="think."),
                chunk(reasoning_signature="sig"),
                chunk(content="42"),
                chunk("stop"),
            ]
        )
    )
    assert [(e.type, getattr(e, "index", None)) for e in parsed] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    deltas = [e.delta.type for e in parsed if e.type == "content_block_delta"]
    assert deltas == ["thinking_delta", "thinking_delta", "signature_delta", "text_delta"]


def test_tool_call_stream_one_block_per_call() -> None:
    chunks = [
        chunk(content="Checking."),
        chunk(tool_calls=[call_delta(0, "call_a", "get_weather", "")]),
        chunk(tool_calls=[call_delta(0, args='{"city":')]),
        chunk(tool_calls=[call_delta(0, args=' "Paris"}')]),
        chunk(tool_calls=[call_delta(1, "call_b", "get_weather", '{"city": "Rome"}')]),
        chunk("tool_calls"),
    ]
    parsed = events(encode(chunks))
    starts = [e for e in parsed if e.type == "content_block_start"]
    assert [(e.index, e.content_block.type) for e in starts] == [(0, "text"), (1, "tool_use"), (2, "tool_use")]
    assert [(b.content_block.id, b.content_block.name) for b in starts[1:]] == [  # type: ignore[union-attr]
        ("call_a", "get_weather"),
        ("call_b", "get_weather"),
    ]
    json_deltas = [
        (e.index, e.delta.partial_json)
        for e in parsed
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert json_deltas == [(1, '{"city":'), (1, ' "Paris"}'), (2, '{"city": "Rome"}')]
    stops = [e.index for e in parsed if e.type == "content_block_stop"]
    assert stops == [0, 1, 2]
    assert parsed[-2].type == "message_delta" and parsed[-2].delta.stop_reason == "tool_use"


def test_tool_name_arriving_after_the_id_waits_for_it() -> None:
    chunks = [
        chunk(tool_calls=[call_delta(0, "call_a", None, '{"a"')]),
        chunk(tool_calls=[call_delta(0, None, "f", ": 1}")]),
        chunk(tool_calls=[call_delta(1, None, None, "{}")]),  # never named: started at the end, named ""
        chunk("tool_calls"),
    ]
    parsed = events(encode(chunks))
    starts = [e.content_block for e in parsed if e.type == "content_block_start"]
    assert (starts[0].id, starts[0].name) == ("call_a", "f")  # type: ignore[union-attr]
    assert starts[1].id.startswith("toolu_")  # type: ignore[union-attr]
    deltas = [e.delta.partial_json for e in parsed if e.type == "content_block_delta"]  # type: ignore[union-attr]
    assert deltas == ['{"a": 1}', "{}"]  # arguments held back while the name was unknown go out as one


def test_stream_usage_and_stop_sequence() -> None:
    usage = Usage(
        prompt_tokens=500,
        completion_tokens=9,
        total_tokens=509,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=400, cache_creation_tokens=50),
    )
    stop = chunk("stop", content="x")
    stop.choices[0].stop_reason = "###"  # type: ignore[attr-defined]
    parsed = events(encode([stop, chunk(usage=usage)]))
    final = parsed[-2]
    assert final.type == "message_delta"
    assert (final.delta.stop_reason, final.delta.stop_sequence) == ("stop_sequence", "###")
    assert final.usage.model_dump(exclude_none=True) == {
        "input_tokens": 50,
        "output_tokens": 9,
        "cache_read_input_tokens": 400,
        "cache_creation_input_tokens": 50,
    }


def test_empty_stream_is_still_a_message() -> None:
    encoder = AnthropicStreamEncoder(MODEL)
    frames = encoder.finish()
    assert [e.type for e in events(frames)] == ["message_start", "message_delta", "message_stop"]
    assert encoder.finish() == [] and encoder.start() == [] and encoder.feed(chunk(content="late")) == []


def test_feed_starts_the_message_and_ignores_other_choices() -> None:
    encoder = AnthropicStreamEncoder(MODEL)
    other = ChatChunk(choices=[ChunkChoice(index=1, delta=Delta(content="other"))])
    frames = encoder.feed(other) + encoder.feed(chunk(content="mine")) + encoder.finish()
    parsed = events(frames)
    assert parsed[0].type == "message_start"
    assert [e.delta.text for e in parsed if e.type == "content_block_delta"] == ["mine"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "answer",
    [
        reply("Hello, world! A slightly longer answer."),
        reply(
            None,
            finish="tool_calls",
            calls=[ToolCall(id="call_1", function=FunctionCall(name="f", arguments='{"q": "a b c", "n": [1, 2, 3]}'))],
        ),
        reply("Sure.", reasoning="Step one, step two.", reasoning_signature="sig==", finish="length"),
        reply(
            "Two calls.",
            finish="tool_calls",
            calls=[
                ToolCall(id="call_1", function=FunctionCall(name="f", arguments='{"a": 1}')),
                ToolCall(id="call_2", function=FunctionCall(name="g", arguments="{}")),
            ],
            usage=Usage(
                prompt_tokens=90,
                completion_tokens=20,
                total_tokens=110,
                prompt_tokens_details=PromptTokensDetails(cached_tokens=60),
            ),
        ),
    ],
    ids=["text", "tool", "thinking", "two-tools"],
)
def test_sdk_stream_accumulates_what_the_non_stream_answer_says(answer: ChatResponse) -> None:
    client = sdk(Route(answer))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]) as stream:
        streamed = stream.get_final_message()
    expected = chat_to_anthropic(answer, MODEL)
    got = streamed.model_dump(exclude_none=True)
    for block in got["content"]:
        block.pop("parsed_output", None)
    got["usage"] = {k: v for k, v in got["usage"].items() if k in expected["usage"]}
    assert {**got, "id": expected["id"]} == {k: v for k, v in expected.items() if v is not None}


def test_error_mid_stream() -> None:
    encoder = AnthropicStreamEncoder(MODEL)
    frames = encoder.start() + encoder.feed(chunk(content="partial"))
    failure = encoder.error(errors.ServiceUnavailableError("upstream overloaded", request_id="req_1"))
    assert failure == [
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"upstream overloaded"},'
        b'"request_id":"req_1"}\n\n'
    ]
    ErrorResponse.model_validate(orjson.loads(failure[0].split(b"data: ", 1)[1]))
    assert encoder.finish() == [] and encoder.error(errors.ProviderError("again")) == []

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"".join(frames + failure))

    stream = sdk(handler).messages.stream(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.APIStatusError) as info, stream as events_in:
        events_in.get_final_message()
    assert "upstream overloaded" in str(info.value)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (errors.BadRequestError("bad", param="x"), 400, "invalid_request_error"),
        (errors.ContextWindowExceededError("too long"), 400, "invalid_request_error"),
        (errors.UnprocessableEntityError("odd"), 422, "invalid_request_error"),
        (errors.AuthenticationError("who"), 401, "authentication_error"),
        (errors.PermissionDeniedError("no"), 403, "permission_error"),
        (errors.NotFoundError("gone"), 404, "not_found_error"),
        (errors.RequestTooLargeError("big"), 413, "request_too_large"),
        (errors.RateLimitError("slow down"), 429, "rate_limit_error"),
        (errors.BudgetExceededError("spent"), 402, "billing_error"),
        (errors.TimeoutError("late"), 504, "timeout_error"),
        (errors.TimeoutError("late", status=408), 504, "timeout_error"),
        (errors.ServiceUnavailableError("busy"), 529, "overloaded_error"),
        (errors.ServiceUnavailableError("busy", status=529), 529, "overloaded_error"),
        (errors.NoDeploymentAvailableError("none"), 529, "overloaded_error"),
        (errors.ProviderError("boom"), 502, "api_error"),
        (errors.ProviderError("boom", status=500), 500, "api_error"),
        (errors.ConnectionError("down"), 502, "api_error"),
        (errors.ConfigError("no key"), 500, "api_error"),
        (errors.ModelyardError("odd", status=200), 500, "api_error"),
    ],
)
def test_error_mapping(exc: errors.ModelyardError, status: int, kind: str) -> None:
    got_status, payload = anthropic_error_body(exc)
    assert (got_status, payload) == (status, {"type": "error", "error": {"type": kind, "message": exc.message}})
    if kind != "request_too_large":  # documented by Anthropic (413) but not in the SDK's error-object union
        ErrorResponse.model_validate(payload)


@pytest.mark.parametrize(
    ("exc", "sdk_error"),
    [
        (errors.AuthenticationError("who"), anthropic.AuthenticationError),
        (errors.NotFoundError("gone"), anthropic.NotFoundError),
        (errors.RateLimitError("slow down"), anthropic.RateLimitError),
        (errors.ServiceUnavailableError("busy"), anthropic.OverloadedError),
        (errors.ProviderError("boom"), anthropic.InternalServerError),
    ],
)
def test_errors_become_the_sdks_exceptions(exc: errors.ModelyardError, sdk_error: type[Exception]) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        status, payload = anthropic_error_body(exc)
        return httpx2.Response(status, json=payload)

    with pytest.raises(sdk_error) as info:
        sdk(handler).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert exc.message in str(info.value)


def test_inputs_are_not_mutated() -> None:
    data = body(
        system=[{"type": "text", "text": "s"}],
        messages=copy.deepcopy(CONVERSATION),
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 2000},
    )
    before = copy.deepcopy(data)
    anthropic_to_chat(data)
    assert data == before
