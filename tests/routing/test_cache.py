"""The response cache: exact match, deterministic only by default, streams replayed, per-request controls."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from modelyard import errors
from modelyard.gateway import Gateway
from modelyard.pipeline import CallOptions
from modelyard.providers.fake import FakeProvider
from modelyard.storage.base import RequestLog
from modelyard.storage.cache_store import MemoryCache
from modelyard.streaming import ChunkAccumulator
from tests.routing.conftest import gateway_settings
from tests.support.live_server import LiveServer

PRICES = {"fake/paid": {"input": 1000, "output": 1000}}


def ask(text: str = "a b c", **extra: Any) -> dict[str, Any]:
    return {"model": "fake/paid", "messages": [{"role": "user", "content": text}], "temperature": 0, **extra}


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path, prefix: str) -> dict[str, Any]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return {"redis_url": url, "shared": {"prefix": prefix}, "cache": {"enabled": True, "backend": "redis"}}
    return {"cache": {"enabled": True, "backend": request.param, "path": str(tmp_path / "cache.db")}}


@pytest.fixture
async def gw(tmp_path: pathlib.Path, backend: dict[str, Any]) -> AsyncIterator[Gateway]:
    async with Gateway(gateway_settings(tmp_path, prices=PRICES, **backend)) as gateway:
        yield gateway


def fake(gw: Gateway) -> FakeProvider:
    provider = gw.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider


async def logged(gw: Gateway, request_id: str) -> RequestLog:
    store = await gw.stores()
    for _ in range(200):
        row = await store.logs.get(request_id)
        if row is not None:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"no log row for {request_id}")


async def test_a_hit_costs_nothing_and_reports_what_it_saved(gw: Gateway) -> None:
    first = await gw.chat(ask(user="alice"))
    second = await gw.chat(ask(user="bob", metadata={"x": 1}))  # user and metadata are not part of the key
    assert len(fake(gw).calls) == 1
    assert first.modelyard is not None and second.modelyard is not None
    assert not first.modelyard.cache_hit and second.modelyard.cache_hit
    assert second.text == first.text and second.usage == first.usage
    assert first.modelyard.cost == pytest.approx(0.006)  # 3 + 3 tokens at $0.001
    assert second.modelyard.cost == 0 and second.modelyard.cost_saved == pytest.approx(0.006)  # type: ignore[attr-defined]
    row = await logged(gw, second.modelyard.request_id)
    assert row.status == "cache_hit" and row.cache_hit and row.cost == 0
    assert row.metadata["cache_cost_saved"] == pytest.approx(0.006)
    await gw.chat(ask("something else"))
    await gw.chat(ask(max_tokens=7))
    assert len(fake(gw).calls) == 3  # other messages or parameters: misses


async def test_streams_are_cached_and_replayed_as_streams(gw: Gateway) -> None:
    async def collect() -> tuple[ChunkAccumulator, Any]:
        stream = await gw.stream(ask("one two three four"))
        acc = ChunkAccumulator()
        async with stream:
            async for chunk in stream:
                acc.add(chunk)
        return acc, stream.info

    miss, miss_info = await collect()
    hit, hit_info = await collect()
    assert len(fake(gw).calls) == 1
    assert not miss_info.cache_hit and hit_info.cache_hit
    assert hit.text == miss.text == "one two three four" and hit.usage == miss.usage
    assert (await gw.chat(ask("one two three four"))).modelyard.cache_hit  # type: ignore[union-attr]
    row = await logged(gw, hit_info.request_id)
    assert row.status == "cache_hit" and row.stream and row.cost == 0


async def test_a_stream_cut_short_is_not_cached(gw: Gateway) -> None:
    stream = await gw.stream(ask("one two three four"))
    await stream.__anext__()
    await stream.aclose()
    await gw.chat(ask("one two three four"))
    assert len(fake(gw).calls) == 2


async def test_only_deterministic_requests_are_cached(tmp_path: pathlib.Path) -> None:
    async with Gateway(gateway_settings(tmp_path, cache={"enabled": True})) as gateway:
        for body in ({"temperature": 0.7}, {}, {"temperature": 0.7}):
            await gateway.chat({"model": "fake/m", "messages": [{"role": "user", "content": "hi"}], **body})
        await gateway.chat({"model": "fake/m", "messages": [{"role": "user", "content": "hi"}], "seed": 3})
        await gateway.chat({"model": "fake/m", "messages": [{"role": "user", "content": "hi"}], "seed": 3})
        assert len(fake(gateway).calls) == 4
    async with Gateway(gateway_settings(tmp_path, cache={"enabled": True, "mode": "all"})) as gateway:
        for _ in range(2):
            await gateway.chat({"model": "fake/m", "messages": [{"role": "user", "content": "hi"}]})
        assert len(fake(gateway).calls) == 1


async def test_per_request_controls_in_the_body_and_header(gw: Gateway) -> None:
    calls = fake(gw).calls
    await gw.chat(ask(cache=False))
    await gw.chat(ask())
    assert len(calls) == 2  # cache: false neither read nor stored
    assert (await gw.chat(ask())).modelyard.cache_hit  # type: ignore[union-attr]
    await gw.chat(ask(cache={"refresh": True}))
    assert len(calls) == 3
    await gw.chat(ask(), CallOptions(extra_headers={"x-modelyard-cache": "no-cache"}))
    assert len(calls) == 4
    assert all("cache" not in (c.request.model_extra or {}) for c in calls)
    assert all("x-modelyard-cache" not in c.headers for c in calls)
    await gw.chat(ask("short", cache={"ttl": 0.2}))
    await gw.chat(ask("short"))
    assert len(calls) == 5
    await asyncio.sleep(0.3)
    await gw.chat(ask("short"))
    assert len(calls) == 6
    await gw.chat(ask("kept out", cache={"no_store": True}))
    await gw.chat(ask("kept out"))
    assert len(calls) == 8
    with pytest.raises(errors.BadRequestError):
        await gw.chat(ask(cache={"ttl": -1}))
    with pytest.raises(errors.BadRequestError):
        await gw.chat(ask(), CallOptions(extra_headers={"x-modelyard-cache": "sometimes"}))


async def test_the_cache_field_never_goes_upstream_when_the_cache_is_off(tmp_path: pathlib.Path) -> None:
    async with Gateway(gateway_settings(tmp_path)) as gateway:
        await gateway.chat({"model": "fake/m", "messages": [{"role": "user", "content": "hi"}], "cache": False})
        assert "cache" not in (fake(gateway).calls[0].request.model_extra or {})


async def test_memory_lru_is_bounded_by_entries_and_bytes() -> None:
    cache = MemoryCache(max_entries=3, max_bytes=1024)
    for i in range(5):
        await cache.set(f"k{i}", b"x" * 10, ttl=60)
    assert len(cache) == 3 and await cache.get("k0") is None and await cache.get("k4") == b"x" * 10
    await cache.get("k2")  # recently used: kept
    await cache.set("big", b"y" * 1000, ttl=60)
    assert await cache.get("k2") is not None and await cache.get("k3") is None
    assert cache.bytes <= 1024
    await cache.set("huge", b"z" * 2000, ttl=60)
    assert await cache.get("huge") is None
    await cache.set("soon", b"s", ttl=0.01)
    await asyncio.sleep(0.02)
    assert await cache.get("soon") is None


async def test_cache_header_through_the_server(tmp_path: pathlib.Path) -> None:
    settings = gateway_settings(tmp_path, cache={"enabled": True}, prices=PRICES)
    server = await asyncio.to_thread(LiveServer(settings).start)
    try:
        url = f"{server.url}/v1/chat/completions"
        first = await asyncio.to_thread(httpx2.post, url, json=ask())
        second = await asyncio.to_thread(httpx2.post, url, json=ask())
        third = await asyncio.to_thread(httpx2.post, url, json=ask(), headers={"x-modelyard-cache": "refresh"})
        assert "x-modelyard-cache" not in first.headers
        assert second.headers["x-modelyard-cache"] == "hit" and second.headers["x-modelyard-cost"] == "0"
        assert "x-modelyard-cache" not in third.headers
        assert second.json()["choices"] == first.json()["choices"]
    finally:
        await asyncio.to_thread(server.stop)


async def test_an_alias_pointed_elsewhere_does_not_serve_the_old_models_answers(
    tmp_path: pathlib.Path, backend: dict[str, Any]
) -> None:
    """The cache outlives a restart (sqlite, redis): a name re-pointed in the config must miss, not replay."""
    request = {"model": "best", "messages": [{"role": "user", "content": "a b c"}], "temperature": 0}
    served: list[str | None] = []
    for target in ("fake/old", "fake/new", "fake/new"):
        async with Gateway(gateway_settings(tmp_path, aliases={"best": target}, **backend)) as gateway:
            response = await gateway.chat(request)
            assert response.modelyard is not None
            served.append(None if response.modelyard.cache_hit else response.modelyard.served_model)
    if backend["cache"]["backend"] == "memory":
        assert served == ["fake/old", "fake/new", "fake/new"]  # a memory cache starts empty each time
    else:
        assert served == ["fake/old", "fake/new", None]  # the third is a hit of the second's answer
