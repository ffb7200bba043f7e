"""The workbench in a real browser: Debian's Chromium driven by Playwright against live servers on 127.0.0.1.

Every test fails on a console error or an uncaught page error, and on any request to a host other than
127.0.0.1 (such requests are also blocked). Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from modelyard.config import Settings
from modelyard.providers.fake import FakeProvider
from modelyard.storage.base import RequestLog
from tests.support.live_server import LiveServer

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = pathlib.Path(__file__).resolve().parents[1] / "artifacts"
MASTER = "sk-master-browser-0123456789"
PRICED = "fake/priced"
PRICES = {PRICED: {"input": 1000.0, "output": 2000.0, "context_window": 8000}}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium, headless, quiet: no background traffic of its own.

    scripts/test.sh installs it; without it (a machine where it cannot be installed) browser tests are skipped.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Chromium is not installed: apt-get install chromium")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def base_url() -> str | None:
    """Replaces pytest-playwright's fallback fixture (an instance method, which pytest 9 warns about)."""
    return None


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1360, "height": 860}, "accept_downloads": True}


def _settings(folder: pathlib.Path, **extra: Any) -> Settings:
    return Settings(
        database_url=f"sqlite:///{folder / 'browser.db'}",
        spill_dir=str(folder / "spill"),
        key_secret="browser-test-secret",
        prices=PRICES,
        **extra,
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server without a master key (the loopback default): the workbench is open."""
    live = LiveServer(_settings(tmp_path_factory.mktemp("web"))).start()
    yield live
    live.stop()


@pytest.fixture(scope="session")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with a master key: the workbench needs a login and shows the Keys page."""
    live = LiveServer(_settings(tmp_path_factory.mktemp("web-secured"), master_key=MASTER)).start()
    yield live
    live.stop()


def fake_of(live: LiveServer) -> FakeProvider:
    provider = live.gateway.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider


@dataclass
class Watch:
    """What a page did wrong: console errors, page errors, requests off 127.0.0.1, dialogs."""

    console: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [*self.console, *(f"request to {u}" for u in self.offsite)]


def watch_page(page: Any, watch: Watch, accept_dialogs: bool = True) -> None:
    """Record console errors, uncaught exceptions and dialogs; block and record requests off 127.0.0.1."""

    def on_console(message: Any) -> None:
        if message.type == "error":
            watch.console.append(f"console error: {message.text} at {message.location}")

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        if accept_dialogs and dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    def on_route(route: Any) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
            route.continue_()
            return
        watch.offsite.append(url)
        route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watch.console.append(f"page error: {exc}"))
    page.on("dialog", on_dialog)
    page.context.route("**/*", on_route)


@pytest.fixture
def watch(page: Any) -> Iterator[Watch]:
    """Watches the default ``page``; the test fails afterwards if anything went wrong."""
    found = Watch()
    watch_page(page, found)
    page.set_default_timeout(20_000)
    yield found
    assert found.problems() == []
    assert [d for d in found.dialogs if not d.startswith("confirm")] == []


def shot(page: Any, name: str, full_page: bool = True) -> None:
    """Keep a screenshot of the page as a CI artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def wait_for_log(live: LiveServer, request_id: str, timeout: float = 10.0) -> RequestLog:
    """The log row of ``request_id`` once the log writer has stored it."""

    async def get() -> RequestLog | None:
        store = await live.gateway.stores()
        return await store.logs.get(request_id)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = live.run(get())
        if found is not None:
            return found  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"log row {request_id} was not written")


def log_in(page: Any, live: LiveServer, key: str = MASTER) -> None:
    page.goto(f"{live.url}/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
