"""Every page at phone width: nothing wider than the screen, navigation reachable, a run still works."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Watch, shot, watch_page
from tests.support.live_server import LiveServer

PAGES = ("playground", "chat", "compare", "logs", "usage")


@pytest.fixture
def phone(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    yield context
    context.close()


def test_pages_fit_a_phone(phone: Any, server: LiveServer) -> None:
    page = phone.new_page()
    watch = Watch()
    watch_page(page, watch)
    for name in PAGES:
        page.goto(f"{server.url}/{name}")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} is {overflow}px wider than the phone"
        assert page.get_by_role("link", name="Logs").is_visible()
        shot(page, f"phone-{name}")
    page.goto(server.url + "/playground")
    page.fill("#model_other", "fake/phone")
    page.fill("#prompt", "hello from a phone")
    page.press("#prompt", "Enter")
    page.locator("#output .run.done").wait_for()
    assert "hello from a phone" in page.locator("#output .run.done .output").inner_text()
    shot(page, "phone-playground-run")
    assert watch.problems() == []
