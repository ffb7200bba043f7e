"""Anthropic adapter: request translation, thinking, cache-token usage and stream errors, at the HTTP seam."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from modelyard import errors
from modelyard.config import ProviderSettings, Settings
from modelyard.providers import anthropic_wire as wire
from modelyard.providers._http import HttpClient
from modelyard.providers.base import EmbedCall, Provider, ProviderCall, ProviderContext, Timeouts
from modelyard.providers.registry import build_provider, provider_specs
from modelyard.streaming import ChunkAccumulator
from modelyard.types import ChatChunk, ChatRequest, EmbeddingRequest, Message
from tests.providers.cases_anthropic import MODEL, error_reply, load_json, load_sse
from tests.support.scripted_server import Reply, ScriptedServer

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
SIGNATURE = (
    "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds3yGQpqXwY0wgVZs9I2D8Ibu3QqBdDfEeyo8m2b8fn9aZF5ZrGUxYtLo"
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
async def provider(upstream: ScriptedServer) -> AsyncIterator[Provider]:
    settings = Settings(
        providers={
            "anthropic": ProviderSettings(
                base_url=upstream.url, api_key="test-key", headers={"anthropic-beta": "test-beta"}
            )
        }
    )
    spec = provider_specs(settings)["anthropic"]
    http = HttpClient(settings.http)
    p = build_provider(spec, ProviderContext(spec, settings, http))
    yield p
    await p.aclose()
    await http.aclose()


def _call(request: dict[str, Any], **kwargs: Any) -> ProviderCall:
    request.setdefault("model", MODEL)
    return ProviderCall(
        request=ChatRequest.model_validate(request),
        request_id="req-test",
        api_key="test-key",
        timeouts=Timeouts(read=5),
        **kwargs,
    )


async def _collect(provider: Provider, call: ProviderCall) -> tuple[list[ChatChunk], ChunkAccumulator]:
    chunks: list[ChatChunk] = []
    acc = ChunkAccumulator()
    async for chunk in provider.stream(call):
        chunks.append(chunk)
        acc.add(chunk)
    return chunks, acc


def _weather_call(call_id: str, city: str) -> dict[str, Any]:
    arguments = f'{{"city": "{city}"}}'
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}


def _conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [_weather_call("toolu_1", "Paris"), _weather_call("toolu_2", "Rome")],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "24C, clear"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And what is in these pictures?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
    ]


async def test_request_translation(provider: Provider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(json=load_json("plain.json")))
    call = _call(
        {
            "messages": _conversation(),
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "parallel_tool_calls": False,
            "temperature": 0.3,
            "top_p": 0.9,
            "stop": "END",
            "user": "user-42",
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "logit_bias": {"50256": -100},
        },
        headers={"X-Request-ID": "req-test", "X-Custom": "yes"},
        extra_body={"top_k": 5},
    )
    await provider.chat(call)

    sent = upstream.requests[0]
    assert sent.method == "POST" and sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "test-key"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["X-Request-ID"] == "req-test"
    assert sent.headers["X-Custom"] == "yes"
    assert sent.headers["anthropic-beta"] == "test-beta"
    assert "Authorization" not in sent.headers
    body = sent.body
    assert body == load_json("translated_request.json")
    # the same, spelled out: system hoisted, both tool results in ONE user turn, max_tokens defaulted
    assert [b["text"] for b in body["system"]] == ["Be brief.", "Use metric units."]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in body["messages"][2]["content"]] == [
        "tool_result",
        "tool_result",
        "text",
        "image",
        "image",
    ]
    assert body["max_tokens"] == 4096
    assert not {"seed", "presence_penalty", "frequency_penalty", "logit_bias", "n"} & body.keys()


async def test_single_system_message_is_a_string_and_limit_passes(provider: Provider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(json=load_json("plain.json")))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    await provider.chat(_call({"messages": messages, "max_completion_tokens": 77}))
    body = upstream.requests[0].body
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert body["max_tokens"] == 77
    assert "stream" not in body


async def test_stream_request_asks_for_a_stream(provider: Provider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(sse=load_sse("stream.sse")))
    await _collect(provider, _call({"messages": [{"role": "user", "content": "Say hello"}]}))
    sent = upstream.requests[0]
    assert sent.body["stream"] is True
    assert sent.headers["Accept"] == "text/event-stream"


def test_tool_results_never_move_into_system() -> None:
    system, messages = wire.convert_messages([Message.model_validate(m) for m in _conversation()[3:6]])
    assert system is None
    assert [m["role"] for m in messages] == ["assistant", "user"]
    assert [b["type"] for b in messages[1]["content"]] == ["tool_result", "tool_result"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    assert wire.tool_choice(choice) == expected


def test_assistant_reasoning_needs_a_signature() -> None:
    signed = Message.model_validate(
        {"role": "assistant", "content": "Hi", "reasoning_content": "Think.", wire.SIGNATURE_FIELD: SIGNATURE}
    )
    unsigned = Message(role="assistant", content="Hi", reasoning_content="Think.")
    assert wire.assistant_blocks(signed) == [
        {"type": "thinking", "thinking": "Think.", "signature": SIGNATURE},
        {"type": "text", "text": "Hi"},
    ]
    assert wire.assistant_blocks(unsigned) == [{"type": "text", "text": "Hi"}]


def test_reasoning_effort_becomes_a_thinking_budget() -> None:
    base = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    body = wire.request_body(ChatRequest.model_validate({**base, "reasoning_effort": "medium"}))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] > 4096  # the budget must stay below max_tokens
    explicit = {"type": "enabled", "budget_tokens": 2048}
    body = wire.request_body(ChatRequest.model_validate({**base, "thinking": explicit, "max_tokens": 8000}))
    assert body["thinking"] == explicit and body["max_tokens"] == 8000


async def test_thinking_becomes_reasoning_content(provider: Provider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(json=load_json("thinking.json")))
    response = await provider.chat(_call({"messages": [{"role": "user", "content": "Say hello"}]}))
    message = response.choices[0].message
    assert response.text == "Hello there!"
    assert message.reasoning_content == "The user wants a greeting. A short one will do."
    assert (message.model_extra or {})[wire.SIGNATURE_FIELD] == SIGNATURE
    assert response.id == "msg_01Thinking5Bq2vNnWmQ3xyz"
    assert response.model == MODEL


async def test_streamed_thinking_becomes_reasoning_content(provider: Provider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(sse=load_sse("thinking_stream.sse")))
    chunks, acc = await _collect(provider, _call({"messages": [{"role": "user", "content": "Say hello"}]}))
    response = acc.response()
    assert response.text == "Hello there!"
    assert response.choices[0].message.reasoning_content == "The user wants a greeting. A short one will do."
    signatures = [(c.choices[0].delta.model_extra or {}).get(wire.SIGNATURE_FIELD) for c in chunks if c.choices]
    assert SIGNATURE in signatures
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_cache_token_arithmetic(provider: Provider, upstream: ScriptedServer) -> None:
    # Anthropic: input_tokens 50 (uncached) + cache_read 1800 + cache_creation 248 = 2098 prompt tokens.
    upstream.script(Reply(json=load_json("cache_usage.json")))
    response = await provider.chat(_call({"messages": [{"role": "user", "content": "Say hello"}]}))
    usage = response.usage
    assert usage is not None
    assert usage.prompt_tokens == 2098
    assert usage.completion_tokens == 3
    assert usage.total_tokens == 2101
    assert usage.cached_tokens == 1800
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cache_creation_tokens == 248


async def test_streamed_cache_usage_is_complete_on_the_final_chunk(
    provider: Provider, upstream: ScriptedServer
) -> None:
    upstream.script(Reply(sse=load_sse("cache_usage_stream.sse")))
    chunks, _ = await _collect(provider, _call({"messages": [{"role": "user", "content": "Say hello"}]}))
    assert [c.usage for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    final = chunks[-1].usage
    assert final is not None
    assert (final.prompt_tokens, final.completion_tokens, final.total_tokens) == (2098, 3, 2101)
    assert final.cached_tokens == 1800


async def test_streamed_tool_call_indexes(provider: Provider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(sse=load_sse("tool_call_stream.sse")))
    chunks, acc = await _collect(provider, _call({"messages": [{"role": "user", "content": "Weather?"}]}))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert {d.index for d in deltas} == {0}  # the tool ordinal, not Anthropic's content block index (1)
    assert deltas[0].id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    message = acc.response().choices[0].message
    assert message.content == "I'll check the weather in Paris."
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.arguments == '{"city": "Paris"}'


async def test_overloaded_mid_stream(provider: Provider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(sse=load_sse("overloaded_stream.sse")))
    seen: list[str] = []
    with pytest.raises(errors.ServiceUnavailableError) as info:
        async for chunk in provider.stream(_call({"messages": [{"role": "user", "content": "Say hello"}]})):
            seen.append(chunk.text)
    assert "Hello" in seen
    assert info.value.provider == "anthropic"
    assert info.value.code == "overloaded_error"
    assert info.value.message == "Overloaded"


async def test_overloaded_status_is_retryable(provider: Provider, upstream: ScriptedServer) -> None:
    upstream.script(error_reply(529))
    with pytest.raises(errors.ServiceUnavailableError) as info:
        await provider.chat(_call({"messages": [{"role": "user", "content": "Say hello"}]}))
    assert info.value.status_code == 529
    assert info.value.is_retryable
    assert info.value.request_id == "req_test"


async def test_error_class_comes_from_the_type_not_the_message(provider: Provider, upstream: ScriptedServer) -> None:
    error = {"type": "invalid_request_error", "message": "prompt is too long: 200001 tokens > 200000 maximum"}
    body = {"type": "error", "error": error}
    upstream.script(Reply(status=400, json=body))
    with pytest.raises(errors.BadRequestError) as info:
        await provider.chat(_call({"messages": [{"role": "user", "content": "Say hello"}]}))
    assert type(info.value) is errors.BadRequestError
    assert info.value.code == "invalid_request_error"


async def test_n_above_one_is_refused_before_the_network(provider: Provider, upstream: ScriptedServer) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        await provider.chat(_call({"messages": [{"role": "user", "content": "Hi"}], "n": 2}))
    assert info.value.param == "n"
    assert upstream.requests == []


async def test_embed_is_unsupported(provider: Provider) -> None:
    call = EmbedCall(request=EmbeddingRequest.model_validate({"model": MODEL, "input": "hi"}), request_id="r")
    with pytest.raises(errors.UnsupportedOperationError):
        await provider.embed(call)
