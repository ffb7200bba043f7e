"""``n > 1`` emulated, plain and streamed, for an upstream whose row drops ``n`` (real sockets, scripted upstream)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from modelyard import errors
from modelyard.config import ModelRule, ProviderSettings, Settings
from modelyard.gateway import Gateway
from modelyard.types.chat import ChatChunk
from tests.providers.cases_openai import CASES, DONE, USAGE, chunk, error
from tests.support.scripted_server import Reply, ScriptedServer

ASK = {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], "n": 2}


def story(text: str, usage: dict[str, int] | None = USAGE, delay: float = 0.0) -> Reply:
    words = text.split(" ")
    pieces = [chunk({"content": w if i == 0 else f" {w}"}) for i, w in enumerate(words)]
    tail = [chunk(None, usage=usage)] if usage is not None else []
    return Reply(
        sse=[chunk({"role": "assistant", "content": ""}), *pieces, chunk({}, "stop"), *tail, DONE], chunk_delay=delay
    )


@pytest.fixture
async def gateway(upstream: ScriptedServer) -> AsyncIterator[Gateway]:
    row = ProviderSettings(base_url=upstream.url, rules=[ModelRule(drop=["n"])])
    async with Gateway(Settings(providers={"up": row}, timeout=30, log_requests=False)) as gw:
        yield gw


async def collect(gateway: Gateway) -> list[ChatChunk]:
    async with await gateway.stream(ASK) as stream:
        return [chunk async for chunk in stream]


def texts(chunks: list[ChatChunk]) -> dict[int, str]:
    out: dict[int, str] = {}
    for c in chunks:
        for choice in c.choices:
            out[choice.index] = out.get(choice.index, "") + (choice.delta.content or "")
    return out


async def test_plain_n_is_one_call_per_choice_with_usage_summed(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(CASES.plain)
    response = await gateway.chat(ASK)
    assert [c.index for c in response.choices] == [0, 1]
    assert len(upstream.requests) == 2 and all("n" not in r.body for r in upstream.requests)
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (10, 6)


async def test_copies_are_not_counted_as_retries_but_a_retry_within_a_copy_is(
    gateway: Gateway, upstream: ScriptedServer
) -> None:
    upstream.script(CASES.plain, error(503, "server_error", None), CASES.plain)
    response = await gateway.chat(ASK)
    assert response.modelyard is not None
    assert [a.status for a in response.modelyard.attempts] == [200, 503, 200]
    assert (response.modelyard.retries, response.modelyard.fallbacks) == (1, 0)
    upstream.script(CASES.plain, CASES.plain)
    response = await gateway.chat(ASK)
    assert response.modelyard is not None and (response.modelyard.retries, response.modelyard.fallbacks) == (0, 0)


async def test_streamed_n_chains_one_stream_per_choice(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(story("Hello there friend"), story("Bonjour"))
    chunks = await collect(gateway)
    assert len(upstream.requests) == 2 and all("n" not in r.body for r in upstream.requests)
    assert texts(chunks) == {0: "Hello there friend", 1: "Bonjour"}
    finishes = {c.index: c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason}
    assert finishes == {0: "stop", 1: "stop"}
    assert len({c.id for c in chunks}) == 1
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and chunks[-1].usage is usage[0] and not chunks[-1].choices
    assert (usage[0].prompt_tokens, usage[0].completion_tokens) == (10, 6)  # prompt once, completions added


async def test_the_next_copy_starts_when_the_previous_one_ends(gateway: Gateway, upstream: ScriptedServer) -> None:
    """Servers that ignore ``n`` serve one request at a time: concurrent copies would queue or interrupt."""
    upstream.script(story("a b c d", delay=0.05), story("w x y z"))
    seen_requests = []
    async with await gateway.stream(ASK) as stream:
        async for chunk in stream:
            seen_requests.append((chunk.choices[0].index if chunk.choices else None, len(upstream.requests)))
    assert all(count == 1 for index, count in seen_requests if index == 0)
    assert [index for index, _ in seen_requests] == [0] * 6 + [1] * 6 + [None]


async def test_streamed_n_without_upstream_usage_is_estimated_over_every_choice(
    gateway: Gateway, upstream: ScriptedServer
) -> None:
    upstream.script(story("Hello there", usage=USAGE), story("Bonjour mes amis", usage=None))
    chunks = await collect(gateway)
    usage = chunks[-1].usage
    assert usage is not None and getattr(usage, "estimated", False) is True
    assert usage.completion_tokens >= 5  # both answers' words counted, not the one that reported usage


async def test_first_copy_refused_fails_before_any_chunk(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(error(400, "invalid_request_error", None), story("unused"))
    with pytest.raises(errors.BadRequestError):
        await gateway.stream(ASK)
    assert len(upstream.requests) == 1


async def test_a_later_copy_refused_fails_the_stream_midway(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(story("Hello there"), error(400, "invalid_request_error", None))
    received: list[ChatChunk] = []
    stream = await gateway.stream(ASK)
    with pytest.raises(errors.BadRequestError):
        async for chunk in stream:
            received.append(chunk)
    assert texts(received) == {0: "Hello there"} and len(upstream.requests) == 2


async def test_closing_the_chained_stream_closes_the_upstream(gateway: Gateway, upstream: ScriptedServer) -> None:
    upstream.script(story("a b c d e f g h", delay=0.2), story("s t u v w x y z"))
    stream = await gateway.stream(ASK)
    await stream.__anext__()
    started = time.monotonic()
    await stream.aclose()
    while not upstream.disconnects and time.monotonic() - started < 5:
        await asyncio.sleep(0.02)
    assert len(upstream.disconnects) == 1 and time.monotonic() - started < 1.0
    assert len(upstream.requests) == 1  # the second copy was never asked for


async def test_a_copy_cut_mid_stream_fails_the_chained_stream(gateway: Gateway, upstream: ScriptedServer) -> None:
    cut = story("a b c d e f g h")
    cut.cut_after = 4
    upstream.script(story("s t u"), cut)
    with pytest.raises(errors.StreamInterruptedError):
        await collect(gateway)
    assert len(upstream.requests) == 2
