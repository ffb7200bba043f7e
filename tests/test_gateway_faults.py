"""Retries, deadlines and fallbacks through real sockets against a scripted upstream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from modelyard import errors
from modelyard.config import ProviderSettings, Settings
from modelyard.gateway import Gateway
from modelyard.pipeline import CallOptions
from modelyard.streaming import ChunkAccumulator
from tests.providers.cases_openai import CASES, STREAM, error
from tests.support.scripted_server import Reply, ScriptedServer

HELLO = {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


@pytest.fixture
async def gateway(upstream: ScriptedServer) -> AsyncIterator[Gateway]:
    settings = Settings(providers={"up": ProviderSettings(base_url=upstream.url)}, timeout=30)
    async with Gateway(settings) as gw:
        yield gw


async def test_429_with_retry_after_twice_then_ok(gateway: Gateway, upstream: ScriptedServer) -> None:
    limited = Reply(status=429, headers={"Retry-After": "1"}, json=error(429, "requests", "rate_limit_exceeded").json)
    upstream.script(limited, limited, CASES.plain)
    started = time.monotonic()
    response = await gateway.chat(HELLO)
    elapsed = time.monotonic() - started
    assert response.text == "Hello there!"
    assert len(upstream.requests) == 3
    assert 1.9 <= elapsed < 4, elapsed
    assert [a.status for a in response.modelyard.attempts] == [429, 429, 200]  # type: ignore[union-attr]
    request_ids = {r.headers["X-Request-ID"] for r in upstream.requests}
    assert request_ids == {response.modelyard.request_id}  # type: ignore[union-attr]


async def test_503_then_ok(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(error(503, "service_unavailable_error", None), CASES.plain)
    response = await gateway.chat(HELLO)
    assert response.text == "Hello there!"
    assert len(upstream.requests) == 2


async def test_retries_are_capped(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(error(500, "server_error", None))
    with pytest.raises(errors.ProviderError):
        await gateway.chat(HELLO, CallOptions(max_retries=1))
    assert len(upstream.requests) == 2


async def test_retry_after_over_cap_fails_at_once(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(Reply(status=429, headers={"Retry-After": "120"}, json={"error": {"message": "slow"}}))
    started = time.monotonic()
    with pytest.raises(errors.RateLimitError) as info:
        await gateway.chat(HELLO)
    assert time.monotonic() - started < 1
    assert info.value.retry_after == 120
    assert len(upstream.requests) == 1


async def test_x_should_retry_both_ways(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(Reply(status=500, headers={"x-should-retry": "false"}, json={"error": {"message": "no"}}))
    with pytest.raises(errors.ProviderError):
        await gateway.chat(HELLO)
    assert len(upstream.requests) == 1
    upstream.requests.clear()
    upstream.script(
        Reply(status=400, headers={"x-should-retry": "true"}, json={"error": {"message": "again"}}), CASES.plain
    )
    assert (await gateway.chat(HELLO)).text == "Hello there!"
    assert len(upstream.requests) == 2


async def test_stream_cut_after_three_chunks_is_an_error_without_retry(
    gateway: Gateway, upstream: ScriptedServer
) -> None:
    upstream.script(Reply(sse=STREAM, cut_after=3))
    received = []
    stream = await gateway.stream(HELLO)
    with pytest.raises(errors.StreamInterruptedError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    assert len(upstream.requests) == 1


async def test_clean_close_without_finish_is_an_error(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(Reply(sse=STREAM[:3]))
    stream = await gateway.stream(HELLO)
    with pytest.raises(errors.StreamInterruptedError):
        async for _ in stream:
            pass
    assert len(upstream.requests) == 1


async def test_stall_hits_the_deadline(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(Reply(delay=10, json={}))
    started = time.monotonic()
    with pytest.raises(errors.TimeoutError):
        await gateway.chat(HELLO, CallOptions(timeout=1.0))
    assert 0.9 <= time.monotonic() - started < 2


async def test_stream_stall_before_first_byte_hits_the_deadline(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(Reply(delay=10, sse=STREAM))
    started = time.monotonic()
    with pytest.raises(errors.TimeoutError):
        await gateway.stream(HELLO, CallOptions(timeout=1.0))
    assert time.monotonic() - started < 2


async def test_deadline_includes_retries(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(Reply(status=503, headers={"Retry-After": "2"}, json={"error": {"message": "busy"}}))
    started = time.monotonic()
    with pytest.raises(errors.ServiceUnavailableError):
        await gateway.chat(HELLO, CallOptions(timeout=1.5))
    assert time.monotonic() - started < 1.5
    assert len(upstream.requests) == 1


async def test_stream_delivers_everything(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(CASES.stream)
    acc = ChunkAccumulator()
    async with await gateway.stream(HELLO) as stream:
        async for chunk in stream:
            acc.add(chunk)
    assert acc.response().text == "Hello there!"
    assert upstream.requests[0].body["stream_options"] == {"include_usage": True}


async def test_fallback_on_5xx_reports_what_was_tried(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(error(503, "service_unavailable_error", None))
    response = await gateway.chat(HELLO, CallOptions(fallbacks=["fake/backup"], max_retries=1))
    info = response.modelyard
    assert info is not None
    assert info.served_model == "fake/backup"
    assert info.provider == "fake"
    assert [a.model for a in info.attempts] == ["up/gpt-4o-mini", "up/gpt-4o-mini", "fake/backup"]
    assert response.text == "Say hello"


async def test_no_fallback_on_bad_request(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(error(400, "invalid_request_error", None))
    with pytest.raises(errors.BadRequestError):
        await gateway.chat(HELLO, CallOptions(fallbacks=["fake/backup"]))


async def test_stream_falls_back_only_before_first_byte(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(error(503, "service_unavailable_error", None))
    stream = await gateway.stream(HELLO, CallOptions(fallbacks=["fake/backup"], max_retries=0))
    assert stream.info.served_model == "fake/backup"
    await stream.aclose()
    upstream.script(Reply(sse=STREAM, cut_after=3))
    stream = await gateway.stream(HELLO, CallOptions(fallbacks=["fake/backup"]))
    with pytest.raises(errors.StreamInterruptedError):
        async for _ in stream:
            pass
    assert stream.info.served_model == "up/gpt-4o-mini"


async def test_missing_key_is_a_config_error_before_any_network_call(upstream: ScriptedServer) -> None:
    settings = Settings(providers={"openai": ProviderSettings(base_url=upstream.url)})
    async with Gateway(settings) as gw:
        with pytest.raises(errors.ConfigError, match="OPENAI_API_KEY"):
            await gw.chat({**HELLO, "model": "openai/gpt-4o-mini"})
    assert upstream.requests == []


async def test_unconfigured_fallback_is_skipped(upstream: ScriptedServer) -> None:
    settings = Settings(providers={"up": ProviderSettings(base_url=upstream.url)})
    upstream.script(error(503, "service_unavailable_error", None))
    async with Gateway(settings) as gw:
        response = await gw.chat(HELLO, CallOptions(fallbacks=["moonshot/kimi-k2", "fake/last"], max_retries=0))
    assert response.modelyard is not None and response.modelyard.served_model == "fake/last"


async def test_connection_refused_is_a_connection_error() -> None:
    settings = Settings(providers={"down": ProviderSettings(base_url="http://127.0.0.1:9/v1")})
    async with Gateway(settings) as gw:
        with pytest.raises(errors.ConnectionError):
            await gw.chat({**HELLO, "model": "down/x"}, CallOptions(max_retries=0))
