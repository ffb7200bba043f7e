"""Playground: stream a prompt from the embedded local model and from a scripted model; hostile output stays text."""

from __future__ import annotations

from typing import Any

from modelyard.providers.fake import FakeReply
from tests.browser.conftest import Watch, fake_of, shot, wait_for_log
from tests.support.live_server import LiveServer

HOSTILE = "<img src=x onerror=alert(1)> [click](javascript:alert(2)) <script>alert(3)</script> **bold**"


def test_local_model_streams_with_stats(page: Any, watch: Watch, server: LiveServer) -> None:
    page.goto(server.url + "/")
    assert page.locator("#model").input_value() == "local/smollm2"
    page.click("details.params > summary")
    page.fill("#max_tokens", "12")
    page.fill("#temperature", "0")
    page.fill("#prompt", "Say hello.")
    page.press("#prompt", "Enter")
    run = page.locator("#output .run").first
    run.locator(".stats").wait_for(timeout=60_000)
    assert "local/smollm2" in run.locator(".model-name").inner_text()
    assert run.locator(".output").inner_text().strip() != ""
    stats = run.locator(".stats").inner_text()
    for label in ("Tokens", "Cost", "Latency", "TTFT", "Speed"):
        assert label in stats
    assert "$0" in stats  # the local model is free
    assert run.locator("a.head-link").get_attribute("href", timeout=1000) is not None
    shot(page, "playground")


def test_scripted_stream_shows_partial_text_then_markdown(page: Any, watch: Watch, server: LiveServer) -> None:
    words = " ".join(f"w{i}" for i in range(30))
    fake_of(server).queue(
        FakeReply(text=f"**Answer:** {words}", reasoning="thinking it over", chunk_delay=0.04), model="stream"
    )
    page.goto(server.url + "/playground")
    page.fill("#model_other", "fake/stream")
    page.fill("#prompt", "count")
    page.click("#run-button")
    live = page.locator("#output .run.streaming .stream-text")
    page.wait_for_function(
        "() => { const el = document.querySelector('#output .run.streaming .stream-text');"
        " return el && el.textContent.includes('w3') && !el.textContent.includes('w29'); }"
    )
    assert "**Answer:**" in live.inner_text()  # raw text while streaming, never HTML
    assert page.locator("#output .run.streaming details.reasoning").is_visible()
    done = page.locator("#output .run.done").first
    done.wait_for()
    assert done.locator(".output strong").inner_text() == "Answer:"
    assert "w29" in done.locator(".output").inner_text()
    assert "thinking it over" in (done.locator("details.reasoning").text_content() or "")


def test_hostile_output_is_rendered_as_text(page: Any, watch: Watch, server: LiveServer) -> None:
    fake_of(server).queue(FakeReply(text=HOSTILE, reasoning=HOSTILE, chunk_delay=0.01), model="evil")
    page.goto(server.url + "/playground")
    page.fill("#model_other", "fake/evil")
    page.fill("#prompt", "be evil")
    page.click("#run-button")
    done = page.locator("#output .run.done").first
    done.wait_for()
    output = done.locator(".output")
    assert "<img src=x onerror=alert(1)>" in output.inner_text()
    assert "<script>" in output.inner_text()
    assert output.locator("strong").inner_text() == "bold"
    assert page.locator("#output img, #output script, #output a[href^='javascript']").count() == 0
    assert page.evaluate("() => document.querySelectorAll('img').length") == 0
    href = done.locator("a.head-link").get_attribute("href")
    assert href is not None
    wait_for_log(server, href.rsplit("/", 1)[1])
    page.goto(server.url + href)  # the logged copy is escaped too
    page.locator("#response-text").wait_for()
    assert "<img src=x onerror=alert(1)>" in page.locator("#response-text").inner_text()
    assert page.locator("main img, main script, main a[href^='javascript']").count() == 0
    shot(page, "xss-log-detail")
    assert watch.dialogs == []


def test_templates_and_saved_system_prompts(page: Any, watch: Watch, server: LiveServer) -> None:
    page.goto(server.url + "/playground")
    page.select_option("#template", "reviewer")
    page.locator("#var_focus").wait_for()
    assert "correctness" in page.locator("#var_focus").input_value()
    page.select_option("#template", "")
    page.fill("#system", "You answer in haiku.")
    page.click("details.library > summary")
    page.fill("input[name=prompt_name]", "haiku")
    page.click("details.library form.inline-form button[type=submit]")
    page.locator("details.library .notice").wait_for()
    assert page.locator("#prompt-picker option", has_text="haiku").count() == 1
    row = page.locator("details.library li form").first
    row.locator("input[name=name]").fill("haiku-poet")
    row.locator("button[type=submit]").click()
    page.get_by_text("Renamed to").wait_for()
    page.fill("#system", "")
    page.locator("details.library li form").first.get_by_text("Use").click()
    page.wait_for_function("() => document.querySelector('#system').value === 'You answer in haiku.'")
    page.locator("details.library li form").first.get_by_text("Delete").click()
    page.get_by_text("Deleted.").wait_for()
    assert page.locator("details.library li form").count() == 0


def test_template_run_json_schema_field_and_model_errors(page: Any, watch: Watch, server: LiveServer) -> None:
    page.goto(server.url + "/playground")
    page.fill("#model_other", "fake/templated")
    page.select_option("#template", "reviewer")
    page.locator("#var_focus").wait_for()
    page.fill("#prompt", "def f(): return 1")
    page.click("#run-button")
    done = page.locator("#output .run.done").first
    done.wait_for()
    assert "Review this:" in done.locator(".output").inner_text()  # the fake echoes the rendered prompt
    page.click("details.params > summary")
    schema = page.locator("textarea[name=json_schema]")
    assert not schema.is_visible()
    page.select_option("#response_format", "json_schema")
    schema.wait_for()
    page.select_option("#response_format", "text")
    page.select_option("#template", "")
    page.fill("#model_other", "nosuchprovider/model")
    page.fill("#prompt", "hello")
    page.click("#run-button")
    page.wait_for_function("() => document.querySelectorAll('#output .run.done').length === 2")
    assert page.locator("#output .run.done").first.locator(".alert-error").is_visible()
