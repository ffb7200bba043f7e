"""Agent tests: an in-process client on a SQLite file per test, with the fake provider scripted."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from modelyard.config import Settings
from modelyard.providers.fake import FakeProvider
from modelyard.sdk.client import AsyncClient

#: USD per 1M tokens: ``fake/priced`` costs 1000 per million, i.e. 0.001 per token.
PRICES = {"fake/priced": {"input": 1000, "output": 1000}}


def make_settings(tmp_path: pathlib.Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'agent.db'}", spill_dir=str(tmp_path / "spill"), prices=PRICES)


@pytest.fixture
def settings(tmp_path: pathlib.Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(settings) as opened:
        yield opened


@pytest.fixture
def fake(client: AsyncClient) -> FakeProvider:
    provider = client.gateway.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider
