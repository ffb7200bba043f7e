"""Runs every adapter through the same scripted scenarios (see contract.py)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import time
from collections.abc import AsyncIterator

import pytest

from modelyard import errors
from modelyard.config import ProviderSettings, Settings
from modelyard.providers._http import HttpClient
from modelyard.providers.base import Provider, ProviderCall, ProviderContext, Timeouts
from modelyard.providers.registry import build_provider, provider_specs
from modelyard.streaming import ChunkAccumulator
from modelyard.types import ChatRequest, Message, Tool
from tests.providers import contract
from tests.support.scripted_server import ScriptedServer


def _all_cases() -> list[contract.ProviderCases]:
    import tests.providers as pkg

    found = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("cases_"):
            found.append(importlib.import_module(f"tests.providers.{info.name}").CASES)
    return found


CASES = _all_cases()


@pytest.fixture(params=CASES, ids=[c.provider for c in CASES])
def cases(request: pytest.FixtureRequest) -> contract.ProviderCases:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def provider(cases: contract.ProviderCases, upstream: ScriptedServer) -> AsyncIterator[Provider]:
    settings = Settings(
        providers={cases.provider: ProviderSettings(base_url=upstream.url + cases.base_url_suffix, api_key="test-key")}
    )
    spec = provider_specs(settings)[cases.provider]
    http = HttpClient(settings.http)
    p = build_provider(spec, ProviderContext(spec, settings, http))
    yield p
    await p.aclose()
    await http.aclose()


def _call(cases: contract.ProviderCases, tools: bool = False, read_timeout: float = 5) -> ProviderCall:
    request = ChatRequest(
        model=cases.model,
        messages=[Message(role="system", content="Be brief."), Message(role="user", content="Say hello")],
        max_tokens=50,
        tools=[
            Tool.model_validate(
                {
                    "type": "function",
                    "function": {
                        "name": contract.TOOL_NAME,
                        "description": "Weather for a city",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    },
                }
            )
        ]
        if tools
        else None,
    )
    timeouts = Timeouts(read=read_timeout)
    return ProviderCall(request=request, request_id="req-test", api_key="test-key", timeouts=timeouts)


async def test_plain(provider: Provider, cases: contract.ProviderCases, upstream: ScriptedServer) -> None:
    upstream.script(cases.plain)
    response = await provider.chat(_call(cases))
    assert response.text == contract.TEXT
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.prompt_tokens == contract.PROMPT_TOKENS
    assert response.usage.completion_tokens == contract.COMPLETION_TOKENS
    assert response.usage.total_tokens == contract.PROMPT_TOKENS + contract.COMPLETION_TOKENS
    assert len(upstream.requests) == 1


async def test_stream(provider: Provider, cases: contract.ProviderCases, upstream: ScriptedServer) -> None:
    upstream.script(cases.stream)
    acc = ChunkAccumulator()
    async for chunk in provider.stream(_call(cases)):
        acc.add(chunk)
    response = acc.response()
    assert acc.chunks >= 2
    assert response.text == contract.TEXT
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.prompt_tokens == contract.PROMPT_TOKENS
    assert response.usage.completion_tokens == contract.COMPLETION_TOKENS


async def test_tool_call(provider: Provider, cases: contract.ProviderCases, upstream: ScriptedServer) -> None:
    upstream.script(cases.tool_call)
    response = await provider.chat(_call(cases, tools=True))
    calls = response.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == contract.TOOL_NAME
    assert json.loads(calls[0].function.arguments) == contract.TOOL_ARGS
    assert calls[0].id
    assert response.choices[0].finish_reason == "tool_calls"


async def test_tool_call_stream(provider: Provider, cases: contract.ProviderCases, upstream: ScriptedServer) -> None:
    upstream.script(cases.tool_call_stream)
    acc = ChunkAccumulator()
    async for chunk in provider.stream(_call(cases, tools=True)):
        acc.add(chunk)
    message = acc.response().choices[0]
    assert message.finish_reason == "tool_calls"
    assert message.message.tool_calls is not None
    assert message.message.tool_calls[0].function.name == contract.TOOL_NAME
    assert json.loads(message.message.tool_calls[0].function.arguments) == contract.TOOL_ARGS


async def test_truncated_stream_is_an_error(
    provider: Provider, cases: contract.ProviderCases, upstream: ScriptedServer
) -> None:
    upstream.script(cases.truncated_stream)
    with pytest.raises(errors.StreamInterruptedError):
        async for _ in provider.stream(_call(cases)):
            pass


async def test_stream_silent_for_the_read_timeout_fails(
    provider: Provider, cases: contract.ProviderCases, upstream: ScriptedServer
) -> None:
    upstream.script(dataclasses.replace(cases.stream, chunk_delay=5))  # the first event, then 5 s of silence
    started = time.monotonic()
    with pytest.raises(errors.TimeoutError):
        async for _ in provider.stream(_call(cases, read_timeout=0.3)):
            pass
    assert 0.25 <= time.monotonic() - started < 2


async def test_a_slow_steady_stream_is_within_the_read_timeout(
    provider: Provider, cases: contract.ProviderCases, upstream: ScriptedServer
) -> None:
    assert cases.stream.sse is not None and len(cases.stream.sse) >= 2
    upstream.script(dataclasses.replace(cases.stream, chunk_delay=0.3))  # a pause after each event
    started = time.monotonic()
    acc = ChunkAccumulator()
    async for chunk in provider.stream(_call(cases, read_timeout=0.5)):
        acc.add(chunk)
    assert acc.response().text == contract.TEXT
    assert time.monotonic() - started > 0.5  # longer than one read timeout: the limit is per read


async def test_errors(provider: Provider, cases: contract.ProviderCases, upstream: ScriptedServer) -> None:
    assert cases.errors, "each adapter must script its error classes"
    for expected, reply in cases.errors.items():
        upstream.script(reply)
        with pytest.raises(expected) as info:
            await provider.chat(_call(cases))
        assert type(info.value) is expected, f"{reply.status} gave {type(info.value).__name__}"
        assert info.value.provider == cases.provider
        assert info.value.message
