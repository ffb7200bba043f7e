"""Gemini adapter fidelity: request translation, thoughts, usage, safety blocks, embeddings, errors."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from modelyard import errors
from modelyard.config import ProviderSettings, Settings
from modelyard.providers import gemini_wire as wire
from modelyard.providers._http import HttpClient
from modelyard.providers.base import EmbedCall, ProviderCall, ProviderContext, Timeouts
from modelyard.providers.gemini import GeminiProvider
from modelyard.providers.registry import build_provider, provider_specs
from modelyard.streaming import ChunkAccumulator
from modelyard.types import ChatChunk, ChatRequest, EmbeddingRequest, Message
from tests.providers.cases_gemini import MODEL, error_reply, load_json, load_sse
from tests.support.scripted_server import Recorded, Reply, ScriptedServer, sse_json

SIGNATURE = base64.b64encode(b"scrubbed-thought-signature-for-get_weather").decode()
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture
async def gemini(upstream: ScriptedServer) -> AsyncIterator[GeminiProvider]:
    settings = Settings(providers={"gemini": ProviderSettings(base_url=upstream.url + "/v1beta", api_key="test-key")})
    spec = provider_specs(settings)["gemini"]
    http = HttpClient(settings.http)
    provider = build_provider(spec, ProviderContext(spec, settings, http))
    assert isinstance(provider, GeminiProvider)
    yield provider
    await provider.aclose()
    await http.aclose()


def _call(messages: list[dict[str, Any]], **params: Any) -> ProviderCall:
    request = ChatRequest.model_validate({"model": MODEL, "messages": messages, **params})
    return ProviderCall(request=request, request_id="req-1", api_key="test-key", timeouts=Timeouts(read=5))


def _hello(**params: Any) -> ProviderCall:
    return _call([{"role": "user", "content": "Say hello"}], **params)


async def _collect(provider: GeminiProvider, call: ProviderCall) -> tuple[list[ChatChunk], ChunkAccumulator]:
    chunks: list[ChatChunk] = []
    acc = ChunkAccumulator()
    async for chunk in provider.stream(call):
        chunks.append(chunk)
        acc.add(chunk)
    return chunks, acc


CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in these pictures, and what is the weather?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/photos/cat.webp"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                "extra_content": {"google": {"thought_signature": SIGNATURE}},
            },
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 18}'},
    {"role": "tool", "tool_call_id": "call_b", "content": "14:05"},
    {"role": "developer", "content": "Answer in English."},
    {"role": "user", "content": "Thanks! Anything else?"},
]


PARAMS: dict[str, Any] = {
    "temperature": 0.3,
    "top_p": 0.9,
    "max_completion_tokens": 256,
    "stop": "END",
    "n": 2,
    "seed": 7,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.25,
    "logprobs": True,
    "top_logprobs": 3,
    "logit_bias": {"50256": -100},
    "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}},
    "tools": [WEATHER_TOOL],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "reasoning_effort": "low",
}


@pytest.fixture
async def sent(gemini: GeminiProvider, upstream: ScriptedServer) -> Recorded:
    """The request the adapter sent for CONVERSATION + PARAMS (with caller headers and extra body)."""
    upstream.script(Reply(json=load_json("generate_content.json")))
    call = _call(CONVERSATION, **PARAMS)
    call.headers = {"X-Request-ID": "req-1", "X-Goog-Api-Key": "caller-supplied"}
    call.extra_body = {
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "generationConfig": {"topK": 40},
    }
    await gemini.chat(call)
    return upstream.requests[0]


def test_request_url_and_key(sent: Recorded) -> None:
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.query == {}, "the key must never travel in the URL"
    assert headers["x-goog-api-key"] == "test-key", "the configured key wins over a caller's header"
    assert headers["x-request-id"] == "req-1"


def test_request_contents(sent: Recorded) -> None:
    body = sent.body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in English."}]}
    assert [turn["role"] for turn in body["contents"]] == ["user", "model", "user", "user"]
    assert body["contents"][0]["parts"] == [
        {"text": "What is in these pictures, and what is the weather?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"fileUri": "https://example.com/photos/cat.webp", "mimeType": "image/webp"}},
    ]
    assert body["contents"][1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
        {"functionCall": {"name": "get_time", "args": {"tz": "CET"}}},
    ]
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
        {"functionResponse": {"name": "get_time", "response": {"output": "14:05"}}},
    ]
    assert body["contents"][3]["parts"] == [{"text": "Thanks! Anything else?"}]


def test_request_generation_config_and_tools(sent: Recorded) -> None:
    body = sent.body
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "responseLogprobs": True,
        "logprobs": 3,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }
    declaration = {
        "name": "get_weather",
        "description": "Weather for a city",
        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
    }
    assert body["tools"] == [{"functionDeclarations": [declaration]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert "logit_bias" not in orjson.dumps(body).decode()


def test_request_options() -> None:
    def body(**params: Any) -> dict[str, Any]:
        messages = [{"role": "user", "content": "hi"}]
        request = ChatRequest.model_validate({"model": MODEL, "messages": messages, **params})
        return wire.request_body(request, {})

    assert "generationConfig" not in body()
    assert body(response_format={"type": "json_object"})["generationConfig"] == {"responseMimeType": "application/json"}
    assert body(reasoning_effort="none")["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 0}}
    required = body(tools=[WEATHER_TOOL], tool_choice="required")
    assert required["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body(tools=[WEATHER_TOOL], tool_choice="none")["toolConfig"]["functionCallingConfig"] == {"mode": "NONE"}
    assert "toolConfig" not in body(tool_choice="auto"), "no tools, no toolConfig"
    with pytest.raises(errors.BadRequestError):
        body(reasoning_effort="extreme")


def test_signature_fallback_for_foreign_history() -> None:
    messages = [
        Message(role="user", content="weather?"),
        Message.model_validate(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "toolu_1", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                    {"id": "toolu_2", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
                ],
            }
        ),
        Message(role="tool", tool_call_id="toolu_1", content="18C"),
        Message(role="tool", tool_call_id="toolu_2", content="21C"),
    ]
    _, contents = wire.translate_messages(messages)
    assert contents[1]["parts"][0]["thoughtSignature"] == wire.SKIP_SIGNATURE
    assert "thoughtSignature" not in contents[1]["parts"][1]
    assert len(contents) == 3 and len(contents[2]["parts"]) == 2, "tool results share one user turn"
    _, contents = wire.translate_messages(messages, signature_fallback=False)
    assert "thoughtSignature" not in contents[1]["parts"][0]
    with pytest.raises(errors.BadRequestError):
        wire.translate_messages([Message(role="tool", tool_call_id="nobody", content="x")])


async def test_thoughts_and_usage_with_cache(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(json=load_json("thinking.json")))
    response = await gemini.chat(_hello(reasoning_effort="medium"))
    message = response.choices[0].message
    assert message.content == "Hello there!"
    assert message.reasoning_content is not None and message.reasoning_content.startswith("**Choosing a greeting**")
    assert response.id == "p39TaLf9MdiIz7IPvbCe2Q4"
    assert response.model == MODEL
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens) == (1200, 1024)
    assert (usage.completion_tokens, usage.reasoning_tokens) == (3 + 150, 150)
    assert usage.total_tokens == 1353


async def test_streamed_thoughts_and_final_usage(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(sse=load_sse("thinking_stream.sse")))
    chunks, acc = await _collect(gemini, _hello(reasoning_effort="medium"))
    assert upstream.requests[0].path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert upstream.requests[0].query == {"alt": "sse"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.reasoning_content
    assert [c.usage is not None for c in chunks] == [False, False, True]
    response = acc.response()
    assert response.text == "Hello there!"
    assert response.choices[0].message.reasoning_content
    assert response.usage is not None
    assert (response.usage.completion_tokens, response.usage.reasoning_tokens) == (153, 150)
    assert response.usage.cached_tokens == 1024


async def test_tool_call_signature_round_trip(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(json=load_json("tool_call.json")), Reply(json=load_json("generate_content.json")))
    first = await gemini.chat(_hello(tools=[WEATHER_TOOL]))
    calls = first.choices[0].message.tool_calls
    assert calls is not None and calls[0].id.startswith("call_")
    assert (calls[0].model_extra or {})["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    assert first.usage is not None and first.usage.completion_tokens == 15 + 48

    history = [
        {"role": "user", "content": "Say hello"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18C and sunny"},
    ]
    await gemini.chat(_call(history, tools=[WEATHER_TOOL]))
    contents = upstream.requests[1].body["contents"]
    assert contents[1]["parts"][0]["thoughtSignature"] == SIGNATURE
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "18C and sunny"}}}
    ]


async def test_streamed_tool_call_keeps_signature(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(sse=load_sse("tool_call_stream.sse")))
    chunks, _ = await _collect(gemini, _hello(tools=[WEATHER_TOOL]))
    deltas = chunks[0].choices[0].delta.tool_calls
    assert deltas is not None and deltas[0].index == 0 and deltas[0].id
    assert (deltas[0].model_extra or {})["extra_content"]["google"]["thought_signature"] == SIGNATURE


@pytest.mark.parametrize("fixture", ["prompt_blocked.json", "candidate_safety.json"])
async def test_safety_block(gemini: GeminiProvider, upstream: ScriptedServer, fixture: str) -> None:
    upstream.script(Reply(json=load_json(fixture)))
    with pytest.raises(errors.ContentPolicyError) as info:
        await gemini.chat(_hello())
    assert info.value.provider == "gemini" and info.value.fallback


async def test_safety_block_streamed(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(sse=load_sse("prompt_blocked_stream.sse")))
    with pytest.raises(errors.ContentPolicyError):
        await _collect(gemini, _hello())
    upstream.script(Reply(sse=[sse_json(load_json("candidate_safety.json"))]))
    with pytest.raises(errors.ContentPolicyError):
        await _collect(gemini, _hello())


async def test_error_inside_stream(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    overloaded = load_json("errors/503_unavailable.json")
    upstream.script(Reply(sse=[sse_json(overloaded)]))
    with pytest.raises(errors.ServiceUnavailableError):
        await _collect(gemini, _hello())
    upstream.script(Reply(sse=[*load_sse("truncated_stream.sse"), sse_json(overloaded)]))
    with pytest.raises(errors.StreamInterruptedError):
        await _collect(gemini, _hello())


async def test_rate_limit_carries_retry_delay(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    upstream.script(error_reply("429_resource_exhausted"))
    with pytest.raises(errors.RateLimitError) as info:
        await gemini.chat(_hello())
    assert info.value.retry_after == 37.0


async def test_unauthenticated(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    upstream.script(error_reply("401_unauthenticated"))
    with pytest.raises(errors.AuthenticationError):
        await gemini.chat(_hello())


def test_finish_reasons_and_candidates() -> None:
    data = {
        "candidates": [
            {"content": {"parts": [{"text": "Hel"}], "role": "model"}, "finishReason": "MAX_TOKENS"},
            {"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": "RECITATION", "index": 1},
        ]
    }
    response = wire.chat_response(data, MODEL, "gemini")
    assert [(c.index, c.message.content, c.finish_reason) for c in response.choices] == [
        (0, "Hel", "length"),
        (1, "Hi", "content_filter"),
    ]
    assert response.usage is None


async def test_embeddings(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(json=load_json("batch_embed_contents.json")))
    request = EmbeddingRequest(model="gemini-embedding-001", input=["first", "second"], dimensions=4)
    response = await gemini.embed(
        EmbedCall(
            request=request, request_id="req-e", api_key="test-key", extra_body={"taskType": "RETRIEVAL_DOCUMENT"}
        )
    )
    sent = upstream.requests[0]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.query == {}
    assert sent.body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "outputDimensionality": 4,
                "taskType": "RETRIEVAL_DOCUMENT",
                "content": {"parts": [{"text": text}]},
            }
            for text in ("first", "second")
        ]
    }
    assert response.vectors() == [[0.0123, -0.0456, 0.0789, -0.0012], [-0.0311, 0.0402, 0.0075, 0.0999]]
    assert [d.index for d in response.data] == [0, 1]
    assert response.model == "gemini-embedding-001"


async def test_embeddings_base64(gemini: GeminiProvider, upstream: ScriptedServer) -> None:
    upstream.script(Reply(json=load_json("batch_embed_contents.json")))
    request = EmbeddingRequest(model="gemini-embedding-001", input="first", encoding_format="base64")
    response = await gemini.embed(EmbedCall(request=request, request_id="req-e", api_key="test-key"))
    encoded = response.data[0].embedding
    assert isinstance(encoded, str)
    assert struct.unpack("<4f", base64.b64decode(encoded)) == pytest.approx([0.0123, -0.0456, 0.0789, -0.0012])
