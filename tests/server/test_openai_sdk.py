"""The official OpenAI SDK (sync and async) against a live modelyard server."""

from __future__ import annotations

import json
import pathlib
import time
import uuid
from collections.abc import Iterator

import httpx2
import openai
import pytest

from modelyard import errors
from modelyard.providers.fake import FakeReply
from modelyard.providers.local_models import default_model_path
from modelyard.storage.base import LogQuery
from modelyard.types.usage import Usage
from tests.server.conftest import fake_of, server_settings
from tests.support.live_server import LiveServer

HELLO = [{"role": "user", "content": "hello there"}]


def client(live: LiveServer, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0, **kwargs)  # type: ignore[arg-type]


def test_chat(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="General Kenobi", usage=Usage.of(2, 2)))
    raw = client(live).chat.completions.with_raw_response.create(model="fake/m", messages=HELLO, temperature=0.2)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "fake/m"
    assert completion.choices[0].message.content == "General Kenobi"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 4
    assert raw.headers["x-modelyard-provider"] == "fake"
    assert raw.headers["x-modelyard-model"] == "fake/m"
    assert uuid.UUID(raw.headers["x-request-id"]).version == 4
    assert float(raw.headers["x-modelyard-overhead-ms"]) >= 0


def test_stream_with_usage(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="one two three", usage=Usage.of(2, 3)))
    stream = client(live).chat.completions.create(
        model="fake/m", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].choices == []


def test_stream_without_usage_request_sends_no_usage_chunk(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="a b"))
    chunks = list(client(live).chat.completions.create(model="fake/m", messages=HELLO, stream=True))
    assert all(c.choices for c in chunks)


def test_raw_stream_ends_with_done(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="a b"))
    with httpx2.stream(
        "POST", f"{live.url}/v1/chat/completions", json={"model": "fake/m", "messages": HELLO, "stream": True}
    ) as response:
        body = b"".join(response.iter_bytes())
    assert response.headers["content-type"].startswith("text/event-stream")
    assert body.endswith(b"data: [DONE]\n\n")


def test_tool_call_round_trip(live: LiveServer) -> None:
    fake = fake_of(live)
    fake.queue(FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    sdk = client(live)
    first = sdk.chat.completions.create(model="fake/m", messages=HELLO, tools=tools)  # type: ignore[arg-type]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    fake.queue(FakeReply(text="It is sunny in Paris"))
    second = sdk.chat.completions.create(
        model="fake/m",
        tools=tools,
        messages=[  # type: ignore[arg-type]
            *HELLO,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert second.choices[0].message.content == "It is sunny in Paris"
    sent = fake.calls[-1].request.messages
    assert [m.role for m in sent] == ["user", "assistant", "tool"]


def test_streamed_tool_call(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]))
    args = ""
    for chunk in client(live).chat.completions.create(model="fake/m", messages=HELLO, stream=True):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args += tc.function.arguments or ""  # type: ignore[union-attr]
    assert json.loads(args) == {"city": "Paris"}


async def test_async_client(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="async hi"))
    sdk = openai.AsyncOpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
    completion = await sdk.chat.completions.create(model="fake/m", messages=HELLO)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "async hi"
    fake_of(live).queue(FakeReply(text="streamed async"))
    stream = await sdk.chat.completions.create(model="fake/m", messages=HELLO, stream=True)  # type: ignore[arg-type]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "streamed async"
    await sdk.close()


def test_completions(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="a poem"))
    completion = client(live).completions.create(model="fake/m", prompt="write a poem")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "a poem"


def test_embeddings(live: LiveServer) -> None:
    result = client(live).embeddings.create(model="fake/e", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 16


def test_models(tmp_path: pathlib.Path) -> None:
    settings = server_settings(tmp_path, providers={"openai": {"api_key": "sk-test"}}, aliases={"fast": "fake/m"})
    live = LiveServer(settings).start()
    try:
        with client(live) as sdk:
            ids = {m.id for m in sdk.models.list().data}
            assert {"local/smollm2", "openai/gpt-4o-mini", "fast"} <= ids
            assert not any(i.startswith("anthropic/") for i in ids)  # no key, not listed
            model = sdk.models.retrieve("openai/gpt-4o-mini")
            extra = model.model_extra or {}
            assert model.id == "openai/gpt-4o-mini" and extra["context_window"] == 128000
            assert extra["price"]["input"] > 0 and "tools" in extra["capabilities"]
            with pytest.raises(openai.NotFoundError) as info:
                sdk.models.retrieve("nosuch/model")
            assert info.value.code == "model_not_found"
            by_path = f"local/{default_model_path()}"  # servable, though never listed
            assert sdk.models.retrieve(by_path).model_extra["provider"] == "local"  # type: ignore[index]
            for unknown in ("local//no/such/model.gguf", "openai/not-a-listed-model"):
                with pytest.raises(openai.NotFoundError):
                    sdk.models.retrieve(unknown)
    finally:
        live.stop()


@pytest.mark.parametrize(
    ("error", "sdk_error", "code"),
    [
        (errors.BadRequestError("bad", param="temperature"), openai.BadRequestError, None),
        (
            errors.ContextWindowExceededError("too long", param="messages"),
            openai.BadRequestError,
            "context_length_exceeded",
        ),
        (errors.RateLimitError("slow down"), openai.RateLimitError, "rate_limit_exceeded"),
        (errors.BudgetExceededError("spent"), openai.RateLimitError, "insufficient_quota"),
        (errors.ProviderError("boom", status=500), openai.InternalServerError, None),
        (errors.ServiceUnavailableError("down"), openai.InternalServerError, "service_unavailable"),
        (errors.TimeoutError("slow"), openai.InternalServerError, "timeout"),
        (
            errors.AuthenticationError("our key was refused", provider="fake"),
            openai.InternalServerError,
            "upstream_authentication_failed",
        ),
    ],
)
def test_errors_map_to_sdk_exceptions(
    live: LiveServer, error: errors.ModelyardError, sdk_error: type[Exception], code: str | None
) -> None:
    fake_of(live).queue(FakeReply(error=error), FakeReply(error=error), FakeReply(error=error))
    with pytest.raises(sdk_error) as info:
        client(live).chat.completions.create(model="fake/m", messages=HELLO)
    exc = info.value
    assert isinstance(exc, openai.APIStatusError)
    assert exc.code == code
    if error.param:
        assert exc.param == error.param
    assert exc.response.headers.get("x-should-retry") == "false"  # we already tried upstream


def test_validation_errors_name_the_param(live: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(live).chat.completions.create(model="fake/m", messages=HELLO, temperature=5)
    assert info.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as info:
        client(live).chat.completions.create(model="fake/m", messages=[])
    assert info.value.param == "messages"
    with pytest.raises(openai.NotFoundError) as info:
        client(live).chat.completions.create(model="nope/x", messages=HELLO)
    assert info.value.code == "model_not_found"


def test_invalid_json_and_unknown_routes(live: LiveServer) -> None:
    response = httpx2.post(f"{live.url}/v1/chat/completions", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    for path in (
        "/v1/audio/speech",
        "/v1/images/generations",
        "/v1/moderations",
        "/v1/files",
        "/v1/batches",
        "/v1/responses",
        "/v1/fine_tuning/jobs",
    ):
        response = httpx2.post(f"{live.url}{path}", json={})
        assert response.status_code == 501, path
        assert response.json()["error"]["code"] == "not_implemented"
    response = httpx2.get(f"{live.url}/v1/nothing-here")
    assert response.status_code == 404 and "error" in response.json()


def test_body_limit(tmp_path: pathlib.Path) -> None:
    settings = server_settings(tmp_path, server={"max_body_bytes": 2048})
    live = LiveServer(settings).start()
    try:
        big = [{"role": "user", "content": "x" * 5000}]
        with pytest.raises(openai.APIStatusError) as info:
            client(live).chat.completions.create(model="fake/m", messages=big)  # type: ignore[arg-type]
        assert info.value.status_code == 413

        def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body streams in
            yield b'{"model": "fake/m", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}]}'

        response = httpx2.post(f"{live.url}/v1/chat/completions", content=chunked())
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
        body = json.dumps({"model": "fake/m", "messages": HELLO}).encode()
        small = httpx2.post(f"{live.url}/v1/chat/completions", content=iter([body]))
        assert small.status_code == 200
    finally:
        live.stop()


def test_every_request_is_logged(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="logged"))
    raw = client(live).chat.completions.with_raw_response.create(model="fake/m", messages=HELLO)
    request_id = raw.headers["x-request-id"]

    async def find() -> object:
        writer = live.gateway.writer
        assert writer is not None
        store = await live.gateway.stores()
        for _ in range(50):
            row = await store.logs.get(request_id)
            if row is not None:
                return row
            import asyncio

            await asyncio.sleep(0.05)
        return None

    row = live.run(find())
    assert row is not None and row.status == "ok"  # type: ignore[attr-defined]
    assert live.run(_count(live)) >= 1


async def _count(live: LiveServer) -> int:
    store = await live.gateway.stores()
    return await store.logs.count(LogQuery())


def test_usage_on_a_content_chunk_is_split_out_and_hidden_unless_asked(live: LiveServer) -> None:
    from modelyard.server.sse import openai_chunk_bytes
    from modelyard.types.chat import ChatChunk, ChunkChoice, Delta

    chunk = ChatChunk(
        id="c", choices=[ChunkChoice(delta=Delta(content="x"), finish_reason="stop")], usage=Usage.of(1, 1)
    )
    hidden = openai_chunk_bytes(False, "m")(chunk)
    assert hidden is not None and b"usage" not in hidden
    shown = openai_chunk_bytes(True, "m")(chunk)
    assert shown is not None
    frames = [json.loads(f.removeprefix(b"data: ")) for f in shown.split(b"\n\n") if f]
    assert [f["usage"] for f in frames] == [None, {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}]
    assert frames[1]["choices"] == []


@pytest.mark.parametrize(
    ("field", "value"), [("conversation_id", ["a"]), ("tags", "not-a-list"), ("tags", [1]), ("fallbacks", "x")]
)
def test_gateway_fields_are_validated(live: LiveServer, field: str, value: object) -> None:
    response = httpx2.post(f"{live.url}/v1/chat/completions", json={"model": "fake/m", "messages": HELLO, field: value})
    assert response.status_code == 400 and response.json()["error"]["param"] == field


def test_metrics_count_each_request_once_however_it_ends(live: LiveServer) -> None:
    slow = FakeReply(text="a b c d e f", chunk_delay=0.2)
    fake_of(live).queue(FakeReply(text="plain"), FakeReply(text="a b c"), slow)
    client(live).chat.completions.create(model="fake/m", messages=HELLO)
    list(client(live).chat.completions.create(model="fake/m", messages=HELLO, stream=True))
    with client(live).chat.completions.create(model="fake/m", messages=HELLO, stream=True) as stream:
        next(iter(stream))  # the client leaves after the first chunk
    text = ""
    for _ in range(50):  # the server notices the disconnect on its own schedule
        text = httpx2.get(f"{live.url}/metrics").text
        if "ClosedEarly" in text or "CancelledError" in text:
            break
        time.sleep(0.05)
    assert 'modelyard_requests_total{kind="chat",model="fake/m",status="ok"} 1.0' in text
    assert 'modelyard_requests_total{kind="stream",model="fake/m",status="ok"} 1.0' in text
    assert 'modelyard_requests_total{kind="stream",model="fake/m",status="error"} 1.0' in text
    assert "modelyard_in_flight 0.0" in text
    assert "modelyard_ttft_seconds_count 2.0" in text


def test_metrics_show_the_log_writer_queue_and_what_became_of_each_row(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="one"), FakeReply(text="two"))
    with client(live) as openai_client:
        openai_client.chat.completions.create(model="fake/m", messages=HELLO)
        openai_client.chat.completions.create(model="fake/m", messages=HELLO)
    text = ""
    for _ in range(100):  # the writer flushes on its own schedule (flush interval 0.2 s)
        text = httpx2.get(f"{live.url}/metrics").text
        if 'modelyard_log_rows_total{fate="written"} 2.0' in text:
            break
        time.sleep(0.05)
    assert 'modelyard_log_rows_total{fate="written"} 2.0' in text
    assert 'modelyard_log_rows_total{fate="spilled"} 0.0' in text
    assert 'modelyard_log_rows_total{fate="lost"} 0.0' in text
    assert "modelyard_log_queue_rows 0.0" in text
