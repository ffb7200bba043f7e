"""``pace_on_rate_limit``: a 429 that says when to come back is waited out within the call's timeout."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator

import orjson
import pytest

from modelyard import errors
from modelyard.config import LimitsSettings, RateLimitSettings
from modelyard.sdk.client import AsyncClient
from modelyard.sdk.pacing import pacing_wait
from modelyard.sdk.sync import Client
from tests.sdk.conftest import settings_for
from tests.support.live_server import LiveServer
from tests.support.scripted_server import Reply, ScriptedServer, sse_json

HELLO = [{"role": "user", "content": "hi"}]
MASTER = "sk-master-pacing"
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
}
LIMITED = {"error": {"message": "slow down", "type": "rate_limit_error", "code": None}}


def limited(**headers: str) -> Reply:
    return Reply(status=429, json=LIMITED, headers=headers)


async def test_waits_out_a_429_and_tries_again(upstream: ScriptedServer) -> None:
    upstream.script(limited(**{"retry-after-ms": "300"}), Reply(json=COMPLETION))
    async with AsyncClient(base_url=upstream.url, pace_on_rate_limit=True) as client:
        started = time.monotonic()
        response = await client.chat("fake/m", HELLO)
    assert response.text == "ok" and len(upstream.requests) == 2
    assert time.monotonic() - started >= 0.3


async def test_off_by_default_the_429_is_raised_with_its_wait(upstream: ScriptedServer) -> None:
    upstream.script(limited(**{"retry-after": "1"}), Reply(json=COMPLETION))
    async with AsyncClient(base_url=upstream.url) as client:
        with pytest.raises(errors.RateLimitError) as info:
            await client.chat("fake/m", HELLO)
    assert info.value.retry_after == 1 and len(upstream.requests) == 1


@pytest.mark.parametrize(
    "headers",
    [{"retry-after": "1", "x-should-retry": "false"}, {}, {"retry-after-ms": "5000"}],
    ids=["server says no", "no retry-after", "past the deadline"],
)
async def test_raises_at_once_when_waiting_cannot_help(upstream: ScriptedServer, headers: dict[str, str]) -> None:
    upstream.script(limited(**headers), Reply(json=COMPLETION))
    async with AsyncClient(base_url=upstream.url, pace_on_rate_limit=True) as client:
        started = time.monotonic()
        with pytest.raises(errors.RateLimitError):
            await client.chat("fake/m", HELLO, timeout=2)
    assert time.monotonic() - started < 0.5 and len(upstream.requests) == 1


async def test_the_deadline_covers_every_wait(upstream: ScriptedServer) -> None:
    upstream.script(limited(**{"retry-after-ms": "400"}))  # always limited
    async with AsyncClient(base_url=upstream.url, pace_on_rate_limit=True) as client:
        started = time.monotonic()
        with pytest.raises(errors.RateLimitError):
            await client.chat("fake/m", HELLO, timeout=1.0)
    assert 0.4 <= time.monotonic() - started < 1.0 and len(upstream.requests) >= 2  # gave up before the deadline
    assert upstream.requests[-1].body["timeout"] < 0.6  # a retried call gets what is left of the timeout


async def test_streams_are_paced_before_the_first_chunk(upstream: ScriptedServer) -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    events = [sse_json({**chunk, "choices": [{"index": 0, "delta": {"content": "paced"}}]}), b"data: [DONE]\n\n"]
    upstream.script(limited(**{"retry-after-ms": "200"}), Reply(sse=events))
    async with AsyncClient(base_url=upstream.url, pace_on_rate_limit=True) as client:
        text = "".join([c.text async for c in client.stream("fake/m", HELLO)])
    assert text == "paced" and len(upstream.requests) == 2
    assert orjson.loads(orjson.dumps(upstream.requests[1].body))["stream"] is True


def test_which_errors_are_paced() -> None:
    assert pacing_wait(errors.RateLimitError("x", retry_after=2)) == 2
    assert pacing_wait(errors.RateLimitError("x")) is None
    assert pacing_wait(errors.RateLimitError("x", retry_after=2, should_retry=False)) is None
    assert pacing_wait(errors.BudgetExceededError("x", retry_after=2)) is None
    retried = errors.RateLimitError("x", retry_after=2)
    retried.upstream_attempts = 3  # the gateway already retried upstream: what x-should-retry: false says
    assert pacing_wait(retried) is None


@pytest.fixture
def limited_server(tmp_path: pathlib.Path) -> Iterator[LiveServer]:
    server = LiveServer(settings_for(tmp_path, master_key=MASTER)).start()
    yield server
    server.stop()


def test_a_server_keys_rpm_limit_is_waited_out(limited_server: LiveServer) -> None:
    with Client(base_url=limited_server.url, api_key=MASTER) as admin:
        _, key = admin.admin.create_key("paced", rpm=60)
    with Client(base_url=limited_server.url, api_key=key) as plain:
        with pytest.raises(errors.RateLimitError) as info:
            for _ in range(70):  # the bucket holds one minute of requests
                plain.chat("fake/m", HELLO)
        assert info.value.retry_after is not None and info.value.retry_after >= 1
    with Client(base_url=limited_server.url, api_key=key, pace_on_rate_limit=True) as paced:
        started = time.monotonic()
        assert paced.chat("fake/m", HELLO, timeout=10).text == "hi"
        assert time.monotonic() - started >= 0.5


def test_in_process_limits_are_paced_too(tmp_path: pathlib.Path) -> None:
    limits = LimitsSettings(keys={"local": RateLimitSettings(rps=4, burst=1)})
    with Client(settings_for(tmp_path, limits=limits), pace_on_rate_limit=True) as client:
        started = time.monotonic()
        answers = [client.chat("fake/m", HELLO).text for _ in range(3)]
    assert answers == ["hi"] * 3 and time.monotonic() - started >= 0.4
