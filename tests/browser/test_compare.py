"""Compare: two models at once (the local model and a scripted one); the better answer is stored as feedback."""

from __future__ import annotations

from typing import Any

from modelyard.providers.fake import FakeReply
from tests.browser.conftest import Watch, fake_of, shot, wait_for_log
from tests.support.live_server import LiveServer


def test_compare_two_models_and_mark_the_better(page: Any, watch: Watch, server: LiveServer) -> None:
    fake_of(server).queue(FakeReply(text="Blue, **obviously**.", chunk_delay=0.02), model="rival")
    page.goto(server.url + "/compare")
    assert page.locator("#model1").input_value() == "local/smollm2"
    page.fill("#model2_other", "fake/rival")
    page.click("details.params > summary")
    page.fill("#max_tokens", "10")
    page.fill("#prompt", "Name a colour.")
    page.click("#compare-button")
    columns = page.locator("#compare-results .column")
    columns.first.wait_for()
    assert columns.count() == 2
    page.wait_for_function("() => document.querySelectorAll('#compare-results .run.done').length === 2", timeout=60_000)
    local, rival = columns.nth(0), columns.nth(1)
    assert "local/smollm2" in local.locator(".model-name").inner_text()
    assert rival.locator(".output strong").inner_text() == "obviously"
    for column in (local, rival):
        stats = column.locator(".stats").inner_text()
        assert "Latency" in stats and "Speed" in stats and "Cost" in stats
    ids = [c.locator("a.head-link").get_attribute("href").rsplit("/", 1)[1] for c in (local, rival)]  # type: ignore[union-attr]
    for request_id in ids:
        wait_for_log(server, request_id)
    rival.get_by_role("button", name="This one is better").click()
    rival.get_by_text("marked better").wait_for()
    local.get_by_text("not chosen").wait_for()
    assert wait_for_log(server, ids[1]).feedback == "better"
    assert wait_for_log(server, ids[0]).feedback == "worse"
    shot(page, "compare")


def test_compare_needs_two_models(page: Any, watch: Watch, server: LiveServer) -> None:
    page.goto(server.url + "/compare")
    page.select_option("#model2", "")
    page.fill("#prompt", "only one model")
    page.click("#compare-button")
    page.locator("#flash .alert-error").wait_for()
    assert "pick 2 to 4" in page.locator("#flash").inner_text()
