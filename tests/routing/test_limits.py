"""Rate limits, in-flight caps and budgets through the gateway, in-process and over Redis."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio

from modelyard import errors
from modelyard.config import LimitsSettings
from modelyard.gateway import Gateway
from modelyard.middleware.limits import LimitExceededError
from modelyard.middleware.policy import LimitPolicy
from modelyard.pipeline import Call, CallOptions
from modelyard.providers.fake import FakeProvider, FakeReply
from modelyard.storage.base import VirtualKey
from modelyard.types.chat import ChatRequest
from tests.routing.conftest import gateway_settings

HELLO = [{"role": "user", "content": "a b c d e"}]
PRICES = {"fake/paid": {"input": 1000, "output": 1000}}  # $0.001 per token: 5 + 5 tokens = $0.01


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, prefix: str) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    # 200 calls started at once in this one event loop delay replies past the 100 ms default: not an outage.
    return {"redis_url": request.getfixturevalue("redis_url"), "shared": {"prefix": prefix, "socket_timeout": 2}}


@pytest.fixture
async def make(tmp_path: pathlib.Path, backend: dict[str, Any]) -> AsyncIterator[Any]:
    made: list[Gateway] = []

    def build(**settings: Any) -> Gateway:
        gw = Gateway(gateway_settings(tmp_path, prices=PRICES, **backend, **settings))
        made.append(gw)
        return gw

    yield build
    for gw in made:
        await gw.aclose()


def fake(gw: Gateway) -> FakeProvider:
    provider = gw.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider


async def test_requests_per_minute_per_caller(make: Any) -> None:
    gw = make(limits={"keys": {"local": {"rpm": 2}}})
    await gw.chat({"model": "fake/m", "messages": HELLO})
    await gw.chat({"model": "fake/m", "messages": HELLO})
    with pytest.raises(LimitExceededError) as info:
        await gw.chat({"model": "fake/m", "messages": HELLO})
    assert info.value.code == "rate_limit_exceeded" and info.value.retry_after is not None
    assert 25 < info.value.retry_after <= 30
    assert info.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.headers["x-ratelimit-limit-requests"] == "2"
    other = make(limits={"keys": {"someone-else": {"rpm": 1}}})
    for _ in range(3):
        await other.chat({"model": "fake/m", "messages": HELLO})


async def test_model_limit_and_tpm_reconciled_with_real_usage(make: Any) -> None:
    gw = make(limits={"models": {"fake/*": {"tpm": 120}}, "output_estimate_tokens": 50})
    for _ in range(6):  # ~60 tokens estimated each, ~10 used: without reconciling, the third would be refused
        await gw.chat({"model": "fake/m", "messages": HELLO})
    with pytest.raises(LimitExceededError, match="tokens per minute"):
        await gw.chat({"model": "fake/m", "messages": HELLO, "max_tokens": 500})  # 500 > what is left


async def test_in_flight_slot_is_released_whatever_happens(make: Any) -> None:
    """Reliability test 25: max_parallel=1 and a run of abort / error / timeout / bad request / fallback."""
    gw = make(limits={"keys": {"local": {"max_parallel": 1}}}, max_retries=0)
    scripted = fake(gw)
    key = "key:local:inflight"

    async def next_is_admitted() -> None:
        assert await gw.shared.counters.in_flight(key) == 0
        await gw.chat({"model": "fake/m", "messages": HELLO})

    for _ in range(3):
        stream = await gw.stream({"model": "fake/m", "messages": HELLO})
        await stream.__anext__()
        await stream.aclose()  # client went away mid-stream
        await next_is_admitted()
        await (await gw.stream({"model": "fake/m", "messages": HELLO})).aclose()  # closed before the first chunk
        await next_is_admitted()
        scripted.queue(FakeReply(error=errors.ProviderError("boom", status=502)))
        with pytest.raises(errors.ProviderError):
            await gw.chat({"model": "fake/m", "messages": HELLO})
        await next_is_admitted()
        scripted.queue(FakeReply(delay=5))
        with pytest.raises(errors.TimeoutError):
            await gw.chat({"model": "fake/m", "messages": HELLO}, CallOptions(timeout=0.05))
        await next_is_admitted()
        scripted.queue(FakeReply(error=errors.BadRequestError("bad request", param="messages")))
        with pytest.raises(errors.BadRequestError):
            await gw.chat({"model": "fake/m", "messages": HELLO})
        await next_is_admitted()
        scripted.queue(FakeReply(error=errors.ServiceUnavailableError("down")), model="a")
        reply = await gw.chat({"model": "fake/a", "messages": HELLO}, CallOptions(fallbacks=["fake/b"]))
        assert reply.modelyard is not None and reply.modelyard.served_model == "fake/b"
        await next_is_admitted()
        scripted.queue(FakeReply(delay=5))
        task = asyncio.ensure_future(gw.chat({"model": "fake/m", "messages": HELLO}))
        await asyncio.sleep(0.05)
        task.cancel()  # the client disconnected during a non-streaming call
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
        await next_is_admitted()


async def test_second_request_in_flight_is_refused(make: Any) -> None:
    gw = make(limits={"keys": {"*": {"max_parallel": 1}}})
    fake(gw).queue(FakeReply(text="slow", delay=0.3))
    slow = asyncio.ensure_future(gw.chat({"model": "fake/m", "messages": HELLO}))
    while not fake(gw).calls:
        await asyncio.sleep(0.005)
    with pytest.raises(LimitExceededError, match="in flight"):
        await gw.chat({"model": "fake/m", "messages": HELLO})
    assert (await slow).text == "slow"


async def test_daily_key_budget(make: Any) -> None:
    gw = make(limits={"key_budgets": {"local": {"amount": 0.015, "period": "daily"}}, "output_estimate_tokens": 5})
    await gw.chat({"model": "fake/paid", "messages": HELLO})
    await gw.chat({"model": "fake/paid", "messages": HELLO})  # $0.01 spent < $0.015: admitted, may overshoot
    with pytest.raises(errors.BudgetExceededError, match=r"daily budget of \$0.01") as spent:
        await gw.chat({"model": "fake/paid", "messages": HELLO})
    assert spent.value.code == "insufficient_quota"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    assert await gw.shared.counters.spent([f"budget:key:local:daily:{stamp}"]) == [pytest.approx(0.02)]


async def _forget_counters(backend: dict[str, Any]) -> None:
    """What a restart does to in-memory counters, done to Redis: its keys are gone (FLUSHALL, no persistence)."""
    if "redis_url" not in backend:
        return
    client = redis.asyncio.Redis.from_url(backend["redis_url"])
    try:
        keys = [k async for k in client.scan_iter(match=backend["shared"]["prefix"] + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_budgets_outlive_lost_counters(make: Any, backend: dict[str, Any]) -> None:
    """A restart (memory) or a flushed Redis must not hand a spent budget back: counters start from the log."""
    limits = {
        "key_budgets": {"local": {"amount": 0.015, "period": "daily"}},
        "tag_budgets": {"research": {"amount": 0.015}},
        "output_estimate_tokens": 5,
    }
    first = make(limits=limits)
    await first.chat({"model": "fake/paid", "messages": HELLO}, CallOptions(tags=["research"]))
    await first.chat({"model": "fake/paid", "messages": HELLO}, CallOptions(tags=["research"]))  # $0.02 spent
    await first.aclose()  # its log rows are written
    await _forget_counters(backend)
    second = make(limits={**limits, "key_budgets": {}})
    with pytest.raises(errors.BudgetExceededError, match="tag 'research' has spent its monthly budget"):
        await second.chat({"model": "fake/paid", "messages": HELLO}, CallOptions(tags=["research"]))
    await second.chat({"model": "fake/paid", "messages": HELLO}, CallOptions(tags=["other"]))  # $0.01 more
    await second.aclose()
    await _forget_counters(backend)
    third = make(limits=limits)
    with pytest.raises(errors.BudgetExceededError, match=r"daily budget of \$0.01"):
        await third.chat({"model": "fake/paid", "messages": HELLO})
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    assert await third.shared.counters.spent([f"budget:key:local:daily:{stamp}"]) == [pytest.approx(0.03)]


async def test_tag_budget_alone(make: Any) -> None:
    gw = make(limits={"tag_budgets": {"research": {"amount": 0.005}}, "output_estimate_tokens": 5})
    research = CallOptions(tags=["research"])
    await gw.chat({"model": "fake/paid", "messages": HELLO}, research)
    with pytest.raises(errors.BudgetExceededError, match="tag 'research' has spent its monthly budget"):
        await gw.chat({"model": "fake/paid", "messages": HELLO}, CallOptions(tags=["research"]))
    await gw.chat({"model": "fake/paid", "messages": HELLO}, CallOptions(tags=["other"]))


async def test_budget_race_overshoots_by_at_most_one_estimate(make: Any) -> None:
    """Reliability test 34: $1.00 budget, 200 concurrent requests of $0.01, in waves until refused."""
    gw = make(limits={"key_budgets": {"local": {"amount": 1.0, "period": "total"}}, "output_estimate_tokens": 5})
    scripted = fake(gw)
    admitted = refused = 0
    for _ in range(20):
        scripted.queue(*[FakeReply(text="a b c d e", delay=0.02) for _ in range(200)])
        results = await asyncio.gather(
            *(gw.chat({"model": "fake/paid", "messages": HELLO}) for _ in range(200)), return_exceptions=True
        )
        scripted.clear()
        wave = [r for r in results if not isinstance(r, BaseException)]
        admitted += len(wave)
        refused += sum(isinstance(r, errors.BudgetExceededError) for r in results)
        assert all(isinstance(r, errors.BudgetExceededError) for r in results if isinstance(r, BaseException))
        if not wave:
            break
    assert gw.routing_status()["shared_state"]["state"] == "ok"
    spent = admitted * 0.01
    assert 1.0 <= spent <= 1.0 + 0.02 + 1e-9, (admitted, refused)  # one in-flight estimate is about $0.017


def test_a_keys_own_limits_win_and_bad_metadata_is_ignored() -> None:
    settings = LimitsSettings.model_validate(
        {"keys": {"*": {"rpm": 100, "max_parallel": 8}, "team": {"tpm": 1000}}, "key_budgets": {"team": {"amount": 5}}}
    )
    key = VirtualKey(
        id="vk_1",
        name="team",
        key_hash="0" * 64,
        prefix="sk-my-x",
        rpm=5,
        budget=2.0,
        spent=0.5,
        metadata={"max_parallel": 2.5, "rps": "fast", "burst": 3, "budget_period": "fortnightly"},
    )
    call = Call(kind="chat", request=ChatRequest(model="fake/m", messages=[{"role": "user", "content": "x"}]))
    call.options.caller = "vk_1"
    policy = LimitPolicy(settings)
    [scope] = policy.scopes(call, key)
    assert (scope.rule.rpm, scope.rule.tpm, scope.rule.max_parallel, scope.rule.burst) == (5, 1000, 8, 3)
    budgets = {check.line.key: check.line for check in policy.budgets(call, key)}
    own = budgets["budget:key:vk_1:total:total"]
    assert (own.limit, own.initial) == (2.0, 0.5)  # a key's own budget counts from its stored spend
    assert any(k.startswith("budget:key:vk_1:monthly:") for k in budgets)
