"""Faults through the live server with a scripted upstream, each with a number in its assertion."""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time
from collections.abc import Iterator

import httpx2
import openai
import orjson
import pytest

from modelyard import Client
from modelyard.config import ProviderSettings
from modelyard.storage.base import RequestLog
from tests.providers.cases_openai import CASES, STREAM, USAGE
from tests.server.conftest import server_settings
from tests.support.live_server import LiveServer
from tests.support.scripted_server import Reply, ScriptedServer, sse_json

HELLO = [{"role": "user", "content": "hello"}]
MODEL = "up/gpt-4o-mini"


class Upstream:
    """A ScriptedServer running on its own loop thread (the SDK under test is synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self._run(ScriptedServer().start())

    def _run(self, coro: object) -> ScriptedServer:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def upstream_thread() -> Iterator[ScriptedServer]:
    up = Upstream()
    yield up.server
    up.stop()


@pytest.fixture
def live_up(tmp_path: pathlib.Path, upstream_thread: ScriptedServer) -> Iterator[LiveServer]:
    settings = server_settings(
        tmp_path,
        providers={"up": ProviderSettings(base_url=upstream_thread.url)},
        server={"first_token_timeout": 1.0, "stream_idle_timeout": 1.0},
    )
    server = LiveServer(settings).start()
    yield server
    server.stop()


def sdk(live: LiveServer, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0, **kw)  # type: ignore[arg-type]


def row(live: LiveServer, request_id: str | None = None) -> RequestLog:
    async def find() -> RequestLog:
        store = await live.gateway.stores()
        for _ in range(100):
            page = await store.logs.query(store_query())
            for item in page.items:
                if request_id is None or item.request_id == request_id:
                    return item
            await asyncio.sleep(0.05)
        raise AssertionError("no log row")

    return live.run(find())  # type: ignore[no-any-return]


def store_query() -> object:
    from modelyard.storage.base import LogQuery

    return LogQuery(limit=50)


def test_kill_mid_stream_is_an_error_event_not_a_quiet_end(
    live_up: LiveServer, upstream_thread: ScriptedServer
) -> None:
    upstream_thread.script(Reply(sse=STREAM, cut_after=3))
    started = time.monotonic()
    received = []
    with pytest.raises(openai.APIError):
        for chunk in sdk(live_up).chat.completions.create(model=MODEL, messages=HELLO, stream=True):
            received.append(chunk)
    assert time.monotonic() - started < 5  # the cut is immediate; generous for a loaded CI machine
    assert len(received) == 3
    assert len(upstream_thread.requests) == 1  # never retried after the first byte
    assert row(live_up).status == "error"


def test_clean_close_without_finishing_is_an_error(live_up: LiveServer, upstream_thread: ScriptedServer) -> None:
    upstream_thread.script(Reply(sse=STREAM[:3]))
    with httpx2.stream(
        "POST", f"{live_up.url}/v1/chat/completions", json={"model": MODEL, "messages": HELLO, "stream": True}
    ) as response:
        body = b"".join(response.iter_bytes())
    assert b'"error"' in body and b"stream_interrupted" in body
    assert not body.endswith(b"data: [DONE]\n\n")


def test_stall_before_first_byte_times_out(live_up: LiveServer, upstream_thread: ScriptedServer) -> None:
    upstream_thread.script(Reply(delay=10, json=CASES.plain.json))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        sdk(live_up).chat.completions.create(model=MODEL, messages=HELLO, extra_body={"timeout": 1.0})
    assert info.value.status_code == 504
    assert time.monotonic() - started < 2.5


def test_stream_idle_timeout(live_up: LiveServer, upstream_thread: ScriptedServer) -> None:
    upstream_thread.script(Reply(sse=STREAM, chunk_delay=3))
    started = time.monotonic()
    with pytest.raises(openai.APIError):
        for _ in sdk(live_up).chat.completions.create(model=MODEL, messages=HELLO, stream=True):
            pass
    assert time.monotonic() - started < 2.5  # idle timeout 1 s after the first chunk
    logged = row(live_up)
    assert (logged.status, logged.error_type) == ("error", "TimeoutError")  # not mistaken for a disconnect


def test_429_storm_is_retried_then_reported_once(live_up: LiveServer, upstream_thread: ScriptedServer) -> None:
    upstream_thread.script(
        Reply(
            status=429,
            headers={"retry-after-ms": "50"},
            json={"error": {"message": "slow", "type": "requests", "code": "rate_limit_exceeded"}},
        )
    )
    with pytest.raises(openai.RateLimitError) as info:
        sdk(live_up).chat.completions.create(model=MODEL, messages=HELLO)
    assert len(upstream_thread.requests) == 3  # our 2 retries, then stop
    assert info.value.response.headers["x-should-retry"] == "false"  # so the SDK does not multiply them


def test_a_retry_that_succeeds_is_reported_in_the_headers(live_up: LiveServer, upstream_thread: ScriptedServer) -> None:
    busy = {"error": {"message": "slow", "type": "requests", "code": "rate_limit_exceeded"}}
    upstream_thread.script(Reply(status=429, headers={"retry-after-ms": "50"}, json=busy), CASES.plain)
    raw = sdk(live_up).chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    assert raw.parse().choices[0].message.content
    assert (raw.headers["x-modelyard-retries"], raw.headers["x-modelyard-fallbacks"]) == ("1", "0")
    assert len(upstream_thread.requests) == 2
    upstream_thread.script(Reply(status=429, headers={"retry-after-ms": "50"}, json=busy), CASES.plain)
    with Client(base_url=live_up.url) as remote:  # the SDK's remote mode reports the same
        info = remote.chat(model=MODEL, messages=HELLO).modelyard
    assert info is not None and (info.retries, info.fallbacks) == (1, 0)
    assert "modelyard_retries_total 2.0" in httpx2.get(f"{live_up.url}/metrics").text  # one for each request


def test_disconnect_cancels_upstream_within_a_second(live_up: LiveServer, upstream_thread: ScriptedServer) -> None:
    upstream_thread.script(Reply(delay=10, json=CASES.plain.json))
    left = time.monotonic()
    with pytest.raises(httpx2.TimeoutException):
        httpx2.post(f"{live_up.url}/v1/chat/completions", json={"model": MODEL, "messages": HELLO}, timeout=0.3)
    left = time.monotonic()
    deadline = left + 3
    while not upstream_thread.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream_thread.disconnects, "upstream call was not cancelled"
    assert upstream_thread.disconnects[0] - left < 1.0
    assert row(live_up).status == "client_disconnected"


def test_stream_disconnect_cancels_upstream_and_logs_delivered_tokens(
    live_up: LiveServer, upstream_thread: ScriptedServer
) -> None:
    upstream_thread.script(Reply(sse=STREAM, chunk_delay=0.5))
    with httpx2.stream(
        "POST", f"{live_up.url}/v1/chat/completions", json={"model": MODEL, "messages": HELLO, "stream": True}
    ) as response:
        lines = response.iter_lines()
        while "Hello" not in next(lines):
            pass
    left = time.monotonic()
    deadline = left + 3
    while not upstream_thread.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream_thread.disconnects and upstream_thread.disconnects[0] - left < 1.0
    logged = row(live_up)
    assert logged.status == "client_disconnected"
    assert logged.response_text == "Hello" and logged.completion_tokens == 1


def test_a_stream_read_to_done_is_logged_whole_though_the_client_leaves_at_once(
    live_up: LiveServer, upstream_thread: ScriptedServer
) -> None:
    """The request log's and the metrics' end-of-stream work runs after ``[DONE]`` is written: a client that
    closes its connection as soon as it has it must still leave a whole, completed row and an "ok" count."""
    upstream_thread.script(Reply(sse=STREAM))
    body = {"model": MODEL, "messages": HELLO, "stream": True}
    with httpx2.stream("POST", f"{live_up.url}/v1/chat/completions", json=body, timeout=10) as response:
        raw = b"".join(response.iter_bytes())
        request_id = response.headers["x-request-id"]
    assert raw.endswith(b"data: [DONE]\n\n")
    logged = row(live_up, request_id)
    assert (logged.status, logged.response_text, logged.finish_reason) == ("ok", "Hello there!", "stop")
    assert (logged.prompt_tokens, logged.completion_tokens) == (USAGE["prompt_tokens"], USAGE["completion_tokens"])
    metrics = httpx2.get(f"{live_up.url}/metrics").text
    assert f'modelyard_requests_total{{kind="stream",model="{MODEL}",status="ok"}} 1.0' in metrics


def test_upstream_chunks_are_forwarded_as_sent_with_only_the_model_rewritten(
    live_up: LiveServer, upstream_thread: ScriptedServer
) -> None:
    base = {"id": "chatcmpl-w", "object": "chat.completion.chunk", "created": 7, "model": "gpt-4o-mini-2024"}
    extra = {"service_tier": "default", "system_fingerprint": None, "obfuscation": "x1"}
    first = {**base, **extra, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]}
    last = {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    usage = {**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    upstream_thread.script(Reply(sse=[sse_json(first), sse_json(last), sse_json(usage), b"data: [DONE]\n\n"]))
    body = {"model": MODEL, "messages": HELLO, "stream": True}
    with httpx2.stream("POST", f"{live_up.url}/v1/chat/completions", json=body, timeout=10) as response:
        raw = b"".join(response.iter_bytes())
    frames = [f for f in raw.split(b"\n\n") if f]
    assert frames[-1] == b"data: [DONE]" and len(frames) == 3  # usage not asked for: not sent
    sent = [orjson.loads(f.removeprefix(b"data: ")) for f in frames[:-1]]
    assert sent[0] == {**first, "model": MODEL}  # extra fields and explicit nulls kept, as the upstream sent them
    assert sent[1] == {**last, "model": MODEL}
