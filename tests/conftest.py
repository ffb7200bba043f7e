from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.scripted_server import ScriptedServer


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedServer]:
    """A scripted HTTP upstream on 127.0.0.1."""
    server = await ScriptedServer().start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the user's real config, data and provider keys."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.chdir(home)
    for var in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "MOONSHOT_API_KEY",
        "OPENROUTER_API_KEY",
        "MODELYARD_CONFIG",
        "MODELYARD_DATABASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """llama_cpp._utils opens two /dev/null files at import and never closes them (a ResourceWarning at exit)."""
    import sys

    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: pytest-playwright's session-wide sync API keeps an event loop running in the main
    thread from its first use to the end of the session, which breaks every later ``asyncio.run``."""
    items.sort(key=lambda item: "tests/browser/" in item.nodeid.replace("\\", "/"))
