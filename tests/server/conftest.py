from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from modelyard.config import ProviderSettings, Settings
from modelyard.providers.fake import FakeProvider
from tests.support.live_server import LiveServer


def server_settings(tmp_path: pathlib.Path, **extra: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'server.db'}",
        spill_dir=str(tmp_path / "spill"),
        key_secret="test-secret",
        **extra,
    )


@pytest.fixture
def live(tmp_path: pathlib.Path) -> Iterator[LiveServer]:
    server = LiveServer(server_settings(tmp_path)).start()
    yield server
    server.stop()


def fake_of(server: LiveServer) -> FakeProvider:
    provider = server.gateway.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider


def upstream_row(url: str) -> dict[str, ProviderSettings]:
    return {"up": ProviderSettings(base_url=url)}
