"""The official Anthropic SDK against a live modelyard server: any model behind /v1/messages."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from modelyard import errors
from modelyard.providers.fake import FakeReply
from modelyard.types.usage import Usage
from tests.server.conftest import fake_of
from tests.support.live_server import LiveServer

ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


_OPEN: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(live: LiveServer) -> anthropic.Anthropic:
    sdk = anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)
    _OPEN.append(sdk)
    return sdk


def test_message(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="Sunny.", usage=Usage.of(12, 2)))
    message = client(live).messages.create(model="fake/m", max_tokens=64, system="Be brief.", messages=ASK)  # type: ignore[arg-type]
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "Sunny."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 2)
    sent = fake_of(live).calls[-1].request.messages
    assert [m.role for m in sent] == ["system", "user"]


def test_stream(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(text="It is sunny in Paris", reasoning="check the forecast"))
    with client(live).messages.stream(model="fake/m", max_tokens=64, messages=ASK) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "It is sunny in Paris"
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.stop_reason == "end_turn"


def test_tool_use_round_trip(live: LiveServer) -> None:
    fake = fake_of(live)
    fake.queue(FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]))
    sdk = client(live)
    first = sdk.messages.create(model="fake/m", max_tokens=64, messages=ASK, tools=TOOLS)  # type: ignore[arg-type]
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    fake.queue(FakeReply(text="Sunny, 21 C."))
    second = sdk.messages.create(
        model="fake/m",
        max_tokens=64,
        tools=TOOLS,
        messages=[  # type: ignore[arg-type]
            *ASK,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]},
        ],
    )
    assert second.content[0].text == "Sunny, 21 C."  # type: ignore[union-attr]
    sent = fake.calls[-1].request.messages
    assert [m.role for m in sent] == ["user", "assistant", "tool"]
    assert sent[-1].tool_call_id == use.id


def test_streamed_tool_use(live: LiveServer) -> None:
    fake_of(live).queue(FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]))
    with client(live).messages.stream(model="fake/m", max_tokens=64, messages=ASK, tools=TOOLS) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.input == {"city": "Paris"} and final.stop_reason == "tool_use"


def test_count_tokens(live: LiveServer) -> None:
    counted = client(live).messages.count_tokens(model="fake/m", messages=ASK)  # type: ignore[arg-type]
    assert counted.input_tokens > 5


@pytest.mark.parametrize(
    ("error", "sdk_error"),
    [
        (errors.BadRequestError("bad"), anthropic.BadRequestError),
        (errors.RateLimitError("slow"), anthropic.RateLimitError),
        (errors.ServiceUnavailableError("busy"), anthropic.InternalServerError),
        (errors.NotFoundError("no such model"), anthropic.NotFoundError),
    ],
)
def test_errors(live: LiveServer, error: errors.ModelyardError, sdk_error: type[Exception]) -> None:
    fake_of(live).queue(*[FakeReply(error=error)] * 3)
    with pytest.raises(sdk_error):
        client(live).messages.create(model="fake/m", max_tokens=64, messages=ASK)  # type: ignore[arg-type]


def test_invalid_request_names_the_field(live: LiveServer) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client(live).messages.create(model="fake/m", max_tokens=0, messages=ASK)  # type: ignore[arg-type]
    assert "max_tokens" in str(info.value)
