"""Run the CLI in-process with typer's CliRunner, in the per-test XDG folders of tests/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import modelyard.sdk.sync
from modelyard.cli.main import app
from modelyard.providers.fake import FakeReply
from modelyard.sdk.sync import Client

Invoke = Callable[..., Result]

#: Two fake models listed by `modelyard models` (the fake provider answers any name).
CONFIG = """\
providers:
  fake:
    models: [echo, other]
"""


@pytest.fixture
def config_dir() -> Path:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "modelyard"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modelyard.yaml").write_text(CONFIG)
    return folder


@pytest.fixture
def cli(config_dir: Path) -> Invoke:
    """``cli("prompt", "-m", "fake/echo", "hi", input=...)`` -> typer ``Result`` (stdout and stderr apart)."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, env=env, prog_name="modelyard")

    return invoke


@pytest.fixture
def fake_replies(monkeypatch: pytest.MonkeyPatch) -> list[FakeReply]:
    """Replies queued on the fake provider of every client the CLI opens (append to the list)."""
    queued: list[FakeReply] = []

    class ScriptedClient(Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.gateway.provider("fake").queue(*queued)

    monkeypatch.setattr(modelyard.sdk.sync, "Client", ScriptedClient)
    return queued


@pytest.fixture
def client(config_dir: Path) -> Iterator[Client]:
    """An SDK client on the same database as the CLI, to check what the commands stored."""
    with Client() as opened:
        yield opened


def conversation_id(text: str) -> str:
    """The conversation id printed in a usage line or a /save answer."""
    import re

    found = re.search(r"conv_[0-9a-f]{32}", text)
    assert found is not None, text
    return found.group(0)
