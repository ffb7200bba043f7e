"""What the CLI needs from the client besides the admin facade, in both modes: the gateway's default model,
warming up, and errors that read the same in-process and through a server."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from modelyard import errors
from modelyard.sdk.sync import Client
from tests.sdk.conftest import settings_for
from tests.support.live_server import LiveServer

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(params=["in-process", "remote"])
def client(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Client]:
    """A client whose gateway defaults to ``fake/echo``."""
    settings = settings_for(tmp_path, default_model="fake/echo")
    if request.param == "in-process":
        with Client(settings) as local:
            yield local
        return
    server = LiveServer(settings).start()
    with Client(base_url=server.url) as remote:
        yield remote
    server.stop()


def test_the_gateways_default_model_is_used(client: Client) -> None:
    assert client.default_model() == "fake/echo"
    response = client.chat(None, HELLO)
    assert response.modelyard is not None and response.modelyard.served_model == "fake/echo"
    stream = client.stream(None, HELLO)
    assert "".join(chunk.text for chunk in stream) == "hello"
    assert stream.info.served_model == "fake/echo"


def test_warm_up_then_errors_read_the_same(client: Client) -> None:
    client.warm_up()
    with pytest.raises(errors.NotFoundError) as unknown:
        client.chat("fakee/echo", HELLO)
    assert unknown.value.model == "fakee/echo" and unknown.value.param == "model"
    with pytest.raises(errors.ConfigError, match="OPENAI_API_KEY"):
        client.chat("openai/gpt-4o-mini", HELLO)


def test_a_key_without_admin_rights_falls_back_to_the_builtin_default(tmp_path: pathlib.Path) -> None:
    server = LiveServer(settings_for(tmp_path, master_key="sk-master", default_model="fake/echo")).start()
    try:
        with Client(base_url=server.url, api_key="sk-master") as admin:
            _, key = admin.admin.create_key("user")
        with Client(base_url=server.url, api_key=key) as user:
            assert user.default_model() == "local/smollm2"
            with pytest.raises(errors.PermissionDeniedError):
                user.admin.logs()
    finally:
        server.stop()
