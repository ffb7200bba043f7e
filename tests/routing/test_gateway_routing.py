"""Deployments through real sockets: failover, ejection, 429 cool-down, adjustments, rollouts, routes, limits."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from modelyard import errors
from modelyard.config import ProviderSettings
from modelyard.gateway import Gateway
from modelyard.pipeline import CallOptions
from tests.providers.cases_openai import CASES, error
from tests.routing.conftest import gateway_settings
from tests.support.live_server import LiveServer
from tests.support.scripted_server import Reply, ScriptedServer

HELLO = [{"role": "user", "content": "Say hello"}]
DOWN = error(503, "service_unavailable_error", None)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[ScriptedServer, ScriptedServer]]:
    a, b = await ScriptedServer().start(), await ScriptedServer().start()
    a.script(CASES.plain)
    b.script(CASES.plain)
    yield a, b
    await a.stop()
    await b.stop()


def group_settings(
    tmp_path: pathlib.Path,
    a: ScriptedServer,
    b: ScriptedServer,
    a_extra: dict[str, Any] | None = None,
    b_extra: dict[str, Any] | None = None,
    **extra: Any,
) -> Any:
    """Group ``chat``: deployment A (row ``up`` with its own URL) first, then B (row ``b``)."""
    groups = {
        "chat": {
            "strategy": "priority",
            "deployments": [
                {"id": "A", "model": "up/m", "base_url": a.url, **(a_extra or {})},
                {"id": "B", "model": "b/m", "priority": 1, **(b_extra or {})},
            ],
        }
    }
    providers = {"up": ProviderSettings(base_url="http://127.0.0.1:9"), "b": ProviderSettings(base_url=b.url)}
    return gateway_settings(tmp_path, providers=providers, model_groups=groups, timeout=20, **extra)


async def test_five_failures_eject_a_deployment_and_it_comes_back(
    tmp_path: pathlib.Path, pair: tuple[ScriptedServer, ScriptedServer]
) -> None:
    a, b = pair
    a.script(DOWN)
    async with Gateway(group_settings(tmp_path, a, b)) as gw:
        now = [1000.0]
        gw.health.clock = lambda: now[0]
        for _ in range(105):
            response = await gw.chat({"model": "chat", "messages": HELLO})
            assert response.modelyard is not None and response.modelyard.served_model == "b/m"
        assert len(a.requests) == 5  # one attempt each (B takes over at once), then ejected: 0 of the next 100
        assert gw.routing_status()["deployments"]["A"]["state"] == "ejected"
        assert gw.health.available_in("A") == 30
        now[0] += 30
        for _ in range(5):
            await gw.chat({"model": "chat", "messages": HELLO})
        assert len(a.requests) == 10
        assert gw.health.available_in("A") == 60  # the second ejection doubles


async def test_429_with_retry_after_cools_one_deployment_and_the_client_sees_no_error(
    tmp_path: pathlib.Path, pair: tuple[ScriptedServer, ScriptedServer]
) -> None:
    a, b = pair
    a.script(Reply(status=429, headers={"Retry-After": "2"}, json=error(429, "requests", "rate_limit_exceeded").json))
    async with Gateway(group_settings(tmp_path, a, b)) as gw:
        served = [(await gw.chat({"model": "chat", "messages": HELLO})).modelyard for _ in range(20)]
        assert all(info is not None and info.served_model == "b/m" for info in served)
        assert len(a.requests) == 1
        assert gw.routing_status()["deployments"]["A"]["state"] == "cooling"


async def test_a_single_deployment_is_never_ejected_and_errors_pass_through(
    tmp_path: pathlib.Path, upstream: ScriptedServer
) -> None:
    upstream.script(DOWN)
    settings = gateway_settings(tmp_path, providers={"up": ProviderSettings(base_url=upstream.url)}, max_retries=0)
    async with Gateway(settings) as gw:
        for _ in range(8):
            with pytest.raises(errors.ServiceUnavailableError):
                await gw.chat({"model": "up/m", "messages": HELLO})
        assert len(upstream.requests) == 8
        assert gw.health.available("up/m")


async def test_per_deployment_adjustments_are_data(
    tmp_path: pathlib.Path, pair: tuple[ScriptedServer, ScriptedServer]
) -> None:
    a, b = pair
    rules = [
        {
            "defaults": {"temperature": 0.6},
            "system_suffix": "Answer briefly.",
            "rename": {"max_tokens": "max_completion_tokens"},
        }
    ]
    settings = group_settings(tmp_path, a, b, a_extra={"rules": rules})
    async with Gateway(settings) as gw:
        await gw.chat({"model": "chat", "messages": HELLO, "max_tokens": 5})
    sent = a.requests[0].body
    assert sent["temperature"] == 0.6 and sent["max_completion_tokens"] == 5 and "max_tokens" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert sent["model"] == "m"


async def test_rollout_switches_at_run_time_and_routes_follow_metadata(
    tmp_path: pathlib.Path, pair: tuple[ScriptedServer, ScriptedServer]
) -> None:
    a, b = pair
    settings = group_settings(
        tmp_path,
        a,
        b,
        rollouts={"chat": {"model": "b/m", "percent": 0}},
        routes=[{"when": {"metadata.team": "research"}, "model": "b/m"}],
    )
    async with Gateway(settings) as gw:

        async def served(user: str, **body: Any) -> str | None:
            response = await gw.chat({"model": "chat", "messages": HELLO, "user": user, **body})
            assert response.modelyard is not None
            return response.modelyard.served_model

        assert {await served(f"u{i}") for i in range(10)} == {"up/m"}
        assert await gw.set_rollout("chat", 100) == 100
        assert {await served(f"u{i}") for i in range(10)} == {"b/m"}
        assert await gw.set_rollout("chat", None) == 0
        assert await served("u1") == "up/m"
        assert await served("u1", metadata={"team": "research"}) == "b/m"
        with pytest.raises(errors.NotFoundError):
            await gw.set_rollout("nope", 5)


async def test_deployment_concurrency_limit_spills_to_the_next_deployment(
    tmp_path: pathlib.Path, pair: tuple[ScriptedServer, ScriptedServer]
) -> None:
    a, b = pair
    slow = Reply(json=CASES.plain.json, delay=0.3)
    a.script(slow)
    b.script(slow)
    settings = group_settings(tmp_path, a, b, a_extra={"max_parallel": 1}, b_extra={"max_parallel": 1})
    async with Gateway(settings) as gw:
        first, second = await asyncio.gather(
            gw.chat({"model": "chat", "messages": HELLO}), gw.chat({"model": "chat", "messages": HELLO})
        )
        served = {r.modelyard.served_model for r in (first, second) if r.modelyard is not None}
        assert served == {"up/m", "b/m"}
        results = await asyncio.gather(
            *(gw.chat({"model": "chat", "messages": HELLO}) for _ in range(3)), return_exceptions=True
        )
        limited = [r for r in results if isinstance(r, errors.RateLimitError)]
        assert len(limited) == 1 and limited[0].retry_after == 1.0
        assert await gw.shared.counters.in_flight("deployment:A:inflight") == 0  # released after each call
        await gw.chat({"model": "chat", "messages": HELLO}, CallOptions(max_retries=0))


async def test_breaker_state_in_ready_metrics_and_admin(
    tmp_path: pathlib.Path, pair: tuple[ScriptedServer, ScriptedServer]
) -> None:
    a, b = pair
    a.script(DOWN)
    settings = group_settings(tmp_path, a, b, rollouts={"chat": {"model": "b/m", "percent": 5}})
    settings = settings.model_copy(update={"default_model": "chat"})
    server = await asyncio.to_thread(LiveServer(settings).start)
    try:
        await asyncio.to_thread(_check_routing_endpoints, server.url)
    finally:
        await asyncio.to_thread(server.stop)


def _check_routing_endpoints(url: str) -> None:
    for _ in range(5):
        body = {"model": "chat", "messages": HELLO}
        assert httpx2.post(f"{url}/v1/chat/completions", json=body).status_code == 200
    ready = httpx2.get(f"{url}/ready").json()
    assert ready["checks"]["deployments"]["A"] == "ejected"
    assert ready["checks"]["shared_state"] == "ok"
    metrics = httpx2.get(f"{url}/metrics").text
    assert 'modelyard_deployment_state{deployment="A"} 2.0' in metrics
    assert 'modelyard_deployment_state{deployment="B"} 0.0' in metrics
    routing = httpx2.get(f"{url}/admin/routing").json()
    assert routing["groups"]["chat"]["deployments"] == ["A", "B"]
    changed = httpx2.put(f"{url}/admin/rollouts/chat", json={"percent": 40})
    assert changed.json() == {"name": "chat", "percent": 40.0}
    assert httpx2.get(f"{url}/admin/routing").json()["rollouts"]["chat"]["percent"] == 40.0
    assert httpx2.put(f"{url}/admin/rollouts/chat", json={"percent": "x"}).status_code == 400
    assert httpx2.delete(f"{url}/admin/rollouts/chat").json()["percent"] == 5.0


async def test_a_rollout_change_reaches_every_replica(
    tmp_path: pathlib.Path, pair: tuple[ScriptedServer, ScriptedServer], redis_url: str, prefix: str
) -> None:
    a, b = pair
    shared = {"redis_url": redis_url, "shared": {"prefix": prefix}, "rollouts": {"chat": {"model": "b/m"}}}
    first = Gateway(group_settings(tmp_path / "one", a, b, **shared))
    second = Gateway(group_settings(tmp_path / "two", a, b, **shared))
    try:
        assert await first.set_rollout("chat", 100) == 100
        await second.shared.flags.refresh(force=True)
        reply = await second.chat({"model": "chat", "messages": HELLO, "user": "anyone"})
        assert reply.modelyard is not None and reply.modelyard.served_model == "b/m"
        assert second.routing_status()["rollouts"]["chat"]["percent"] == 100
    finally:
        await first.aclose()
        await second.aclose()


async def test_readiness_of_a_group_uses_its_deployments_own_key(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = {"chat": {"deployments": [{"model": "openai/gpt-4o", "api_key_env": "EU_OPENAI_KEY"}]}}
    async with Gateway(gateway_settings(tmp_path, model_groups=groups)) as gw:
        assert "EU_OPENAI_KEY" in gw.readiness("chat")
        monkeypatch.setenv("EU_OPENAI_KEY", "sk-test")
        assert gw.readiness("chat") == "ok"
        assert gw.readiness("openai/gpt-4o").startswith("error")  # the row's own OPENAI_API_KEY is not set
        assert "chat" in {m.id for m in await gw.models()}
