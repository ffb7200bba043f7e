"""Run the CLI in-process with typer's CliRunner, in the per-test XDG folders of tests/conftest.py.

``cli`` runs each test twice: ``local`` (the gateway in-process) and ``server`` (``--server URL`` against a live
modelyard server in this process, on the same config, started on the first command that needs it). Tests of
what only exists on one side use ``local_cli``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import modelyard.sdk.sync
from modelyard.cli.main import app
from modelyard.config import load_settings
from modelyard.providers.fake import FakeProvider, FakeReply
from modelyard.sdk.sync import Client
from tests.support.live_server import LiveServer

Invoke = Callable[..., Result]

#: Two fake models listed by `modelyard models` (the fake provider answers any name).
CONFIG = """\
providers:
  fake:
    models: [echo, other]
"""

MODES = ["local", "server"]


@contextlib.contextmanager
def environment(env: dict[str, str] | None) -> Iterator[None]:
    """``os.environ`` with ``env`` applied (a value of None removes the variable), restored afterwards."""
    saved = {name: os.environ.get(name) for name in env or {}}
    for name, value in (env or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Target:
    """Where commands run: in-process, or through a live server started lazily (with the first command's env)."""

    def __init__(self, mode: str, api_key: str | None = None) -> None:
        self.mode = mode
        self.api_key = api_key
        self.replies: list[FakeReply] = []  # queued afresh before each command (each CLI run is a new client)
        self.server: LiveServer | None = None
        self.runner = CliRunner()

    @property
    def remote(self) -> bool:
        return self.mode == "server"

    def start(self, env: dict[str, str] | None = None, **settings: Any) -> LiveServer:
        """The live server (started now if needed, reading the config and ``env`` as `modelyard serve` would)."""
        if self.server is None:
            with environment(env):
                self.server = LiveServer(load_settings(**settings)).start()
        return self.server

    @property
    def fake(self) -> FakeProvider:
        provider = self.start().gateway.provider("fake")
        assert isinstance(provider, FakeProvider)
        return provider

    def args(self, args: tuple[str, ...], env: dict[str, str] | None) -> list[str]:
        if not self.remote:
            return list(args)
        server = self.start(env)
        self.fake.clear()
        self.fake.queue(*self.replies)
        key = ["--api-key", self.api_key] if self.api_key else []
        return ["--server", server.url, *key, *args]

    def invoke(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        full = self.args(args, env)
        return self.runner.invoke(app, full, input=input, env=env, prog_name="modelyard")

    def client(self) -> Client:
        """An SDK client on the same database as the commands."""
        if self.remote:
            return Client(base_url=self.start().url, api_key=self.api_key)
        return Client()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def write_config(root: Path, text: str = CONFIG) -> Path:
    folder = root / "modelyard"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modelyard.yaml").write_text(text)
    return folder


@pytest.fixture
def config_dir() -> Path:
    return write_config(Path(os.environ["XDG_CONFIG_HOME"]))


@pytest.fixture(params=MODES)
def target(request: pytest.FixtureRequest, config_dir: Path) -> Iterator[Target]:
    opened = Target(request.param)
    yield opened
    opened.stop()


@pytest.fixture
def cli(target: Target) -> Invoke:
    """``cli("prompt", "-m", "fake/echo", "hi", input=...)`` -> typer ``Result`` (stdout and stderr apart)."""
    return target.invoke


@pytest.fixture
def local_cli(config_dir: Path) -> Invoke:
    """The CLI in-process only: for what has no server side (help, the local doctor, db upgrade)."""
    return Target("local").invoke


@pytest.fixture
def fake_replies(target: Target, monkeypatch: pytest.MonkeyPatch) -> list[FakeReply]:
    """Replies queued on the fake provider afresh for every command (append to the list)."""
    if not target.remote:

        class ScriptedClient(Client):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.gateway.provider("fake").queue(*target.replies)

        monkeypatch.setattr(modelyard.sdk.sync, "Client", ScriptedClient)
    return target.replies


@pytest.fixture
def client(target: Target) -> Iterator[Client]:
    """An SDK client on the same database as the CLI, to check what the commands stored."""
    with target.client() as opened:
        yield opened


def conversation_id(text: str) -> str:
    """The conversation id printed in a usage line or a /save answer."""
    import re

    found = re.search(r"conv_[0-9a-f]{32}", text)
    assert found is not None, text
    return found.group(0)
