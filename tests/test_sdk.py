"""The SDK behaves the same in-process and against a live server: one test suite, both modes."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from modelyard import errors
from modelyard.config import Settings
from modelyard.gateway import Gateway
from modelyard.providers.fake import FakeProvider, FakeReply
from modelyard.sdk.sync import Client
from modelyard.types.usage import Usage
from tests.support.live_server import LiveServer

HELLO = [{"role": "user", "content": "hello world"}]


class Mode:
    def __init__(self, client: Client, gateway: Gateway) -> None:
        self.client = client
        self.gateway = gateway

    @property
    def fake(self) -> FakeProvider:
        provider = self.gateway.provider("fake")
        assert isinstance(provider, FakeProvider)
        return provider


@pytest.fixture(params=["in-process", "remote"])
def mode(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Mode]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'sdk.db'}", spill_dir=str(tmp_path / "spill"))
    if request.param == "in-process":
        client = Client(settings)
        yield Mode(client, client.gateway)
        client.close()
        return
    server = LiveServer(settings).start()
    client = Client(base_url=server.url)
    yield Mode(client, server.gateway)
    client.close()
    server.stop()


def test_chat(mode: Mode) -> None:
    mode.fake.queue(FakeReply(text="hi back", usage=Usage.of(2, 2)))
    response = mode.client.chat("fake/m", HELLO, temperature=0)
    assert response.text == "hi back"
    assert response.usage is not None and response.usage.total_tokens == 4
    assert response.modelyard is not None and response.modelyard.served_model == "fake/m"


def test_stream_and_info(mode: Mode) -> None:
    mode.fake.queue(FakeReply(text="a b c"))
    stream = mode.client.stream("fake/m", HELLO)
    text = "".join(chunk.text for chunk in stream)
    assert text == "a b c"
    assert stream.info is not None and stream.info.served_model == "fake/m"


def test_stream_context_manager_releases_on_break(mode: Mode) -> None:
    mode.fake.queue(FakeReply(text="a b c d e f g", chunk_delay=0.01))
    with mode.client.stream("fake/m", HELLO) as stream:
        for chunk in stream:
            if chunk.text:
                break
    mode.fake.queue(FakeReply(text="next"))
    assert mode.client.chat("fake/m", HELLO).text == "next"


def test_embed_and_models(mode: Mode) -> None:
    result = mode.client.embed(["a", "b"], model="fake/e")
    assert len(result.vectors()) == 2
    assert any(m.id == "local/smollm2" for m in mode.client.models())


def test_typed_errors(mode: Mode) -> None:
    mode.fake.queue(FakeReply(error=errors.BadRequestError("bad thing", param="temperature")))
    with pytest.raises(errors.BadRequestError) as info:
        mode.client.chat("fake/m", HELLO)
    assert info.value.param == "temperature"
    with pytest.raises(errors.NotFoundError):
        mode.client.chat("nosuch/model", HELLO)
    mode.fake.queue(FakeReply(text="a b c d", cut_after=2))
    with pytest.raises(errors.StreamInterruptedError):
        for _ in mode.client.stream("fake/m", HELLO):
            pass


def test_fallbacks(mode: Mode) -> None:
    mode.fake.queue(FakeReply(error=errors.ServiceUnavailableError("down")), model="primary")
    mode.fake.queue(FakeReply(text="from backup"), model="backup")
    response = mode.client.chat("fake/primary", HELLO, fallbacks=["fake/backup"], max_retries=0)
    assert response.text == "from backup"
    assert response.modelyard is not None and response.modelyard.served_model == "fake/backup"


def test_conversations(mode: Mode) -> None:
    conv = mode.client.create_conversation(title="trip", system_prompt="Be brief.")
    mode.fake.queue(FakeReply(text="Paris"))
    mode.client.chat("fake/m", [{"role": "user", "content": "Capital of France?"}], conversation_id=conv.id)
    mode.fake.queue(FakeReply(text="Yes"))
    for _ in mode.client.stream("fake/other", [{"role": "user", "content": "Sure?"}], conversation_id=conv.id):
        pass
    saved = mode.client.conversation(conv.id)
    assert saved is not None and [m.text() for m in saved.messages] == ["Capital of France?", "Paris", "Sure?", "Yes"]
    forked = mode.client.fork_conversation(conv.id, 1)
    assert [m.text() for m in forked.messages] == ["Capital of France?", "Paris"]
    assert mode.client.conversation("conv_missing") is None
