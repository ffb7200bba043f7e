"""The SDK in both modes: an in-process gateway, and a live server reached over HTTP."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from modelyard.config import Settings
from modelyard.gateway import Gateway
from modelyard.providers.fake import FakeProvider
from modelyard.sdk.sync import Client
from tests.support.live_server import LiveServer


class Mode:
    """A client and the gateway that serves it (in this process, or inside the live server)."""

    def __init__(self, name: str, client: Client, gateway: Gateway, server: LiveServer | None = None) -> None:
        self.name = name
        self.client = client
        self.gateway = gateway
        self.server = server

    @property
    def remote(self) -> bool:
        return self.server is not None

    @property
    def fake(self) -> FakeProvider:
        provider = self.gateway.provider("fake")
        assert isinstance(provider, FakeProvider)
        return provider


def settings_for(tmp_path: pathlib.Path, **extra: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'sdk.db'}", spill_dir=str(tmp_path / "spill"), key_secret="s", **extra
    )


@pytest.fixture(params=["in-process", "remote"])
def mode(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Mode]:
    settings = settings_for(tmp_path)
    if request.param == "in-process":
        client = Client(settings)
        yield Mode(request.param, client, client.gateway)
        client.close()
        return
    server = LiveServer(settings).start()
    client = Client(base_url=server.url)
    yield Mode(request.param, client, server.gateway, server)
    client.close()
    server.stop()
