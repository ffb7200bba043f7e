"""Chat: start, send (Enter), keep a line break (Shift+Enter), rename, reopen, fork, continue on another model."""

from __future__ import annotations

import re
from typing import Any

from modelyard.providers.fake import FakeReply
from modelyard.storage.base import Conversation
from modelyard.types.chat import Message
from tests.browser.conftest import Watch, fake_of, shot
from tests.support.live_server import LiveServer


def _send(page: Any, text: str) -> Any:
    before = page.locator("#messages .run.done").count()
    page.fill("#content", text)
    page.press("#content", "Enter")
    page.wait_for_function(f"() => document.querySelectorAll('#messages .run.done').length > {before}")
    return page.locator("#messages .run.done").last


def test_save_and_reopen_a_conversation(page: Any, watch: Watch, server: LiveServer) -> None:
    reply = FakeReply(
        text="Noted: **pineapple**.", reasoning="remember it", tool_calls=[("remember", {"word": "pineapple"})]
    )
    fake_of(server).queue(reply, model="chat")
    page.goto(server.url + "/chat")
    page.fill("#new-model_other", "fake/chat")
    page.fill("#new-system", "You are terse.")
    page.click("#new-chat")
    page.wait_for_url(re.compile(r"/chat/conv_"))
    conversation_url = page.url

    page.fill("#content", "first line")
    page.press("#content", "Shift+Enter")
    page.keyboard.type("second line")
    assert page.locator("#content").input_value() == "first line\nsecond line"
    assert page.locator("#messages .msg").count() == 0  # Shift+Enter did not send
    page.fill("#content", "")

    answer = _send(page, "Remember the word pineapple")
    assert page.locator("#content").input_value() == ""
    assert answer.locator(".output strong").inner_text() == "pineapple"
    assert "remember" in answer.locator(".tool-call").inner_text()
    assert "remember it" in (answer.locator("details.reasoning").text_content() or "")
    second = _send(page, "And a second turn")
    assert "And a second turn" in second.locator(".output").inner_text()

    page.fill("input[name=title]", "Fruit memory")
    page.click("form.inline-form.grow button[type=submit]")
    page.wait_for_url(conversation_url)
    page.goto(server.url + "/chat")
    page.get_by_role("link", name=re.compile("Fruit memory")).click()
    page.wait_for_url(conversation_url)
    messages = page.locator("#messages .msg")
    assert messages.count() == 4  # reopened: two turns, saved
    assert "pineapple" in messages.nth(1).inner_text()
    assert "remember" in messages.nth(1).locator(".tool-call").inner_text()
    shot(page, "chat")


def test_fork_and_continue_on_another_model(page: Any, watch: Watch, server: LiveServer) -> None:
    saved = Conversation(
        title="Two turns",
        model="fake/chat",
        messages=[
            Message(role="user", content="first question"),
            Message(role="assistant", content="first answer"),
            Message(role="user", content="second question"),
            Message(role="assistant", content="second answer"),
        ],
    )
    created = server.run(_create(server, saved))
    page.goto(f"{server.url}/chat/{created.id}")
    page.locator("#messages .msg").nth(1).get_by_role("button", name="Fork here").click()
    page.wait_for_function(f"() => !location.pathname.endsWith({created.id!r})")
    page.locator("#messages").wait_for()
    assert page.locator("#messages .msg").count() == 2
    assert page.locator("input[name=title]").input_value() == "Two turns (fork)"

    page.select_option("#model", "local/smollm2")  # continue the fork on the local model
    page.fill("input[name=max_tokens]", "8")
    answer = _send(page, "Say one word.")
    assert "local/smollm2" in answer.locator(".model-name").inner_text()
    page.reload()
    assert page.locator("#messages .msg").count() == 4
    assert "local/smollm2" in page.locator(".conv-link[aria-current=page]").inner_text()


async def _create(server: LiveServer, conversation: Conversation) -> Conversation:
    store = await server.gateway.stores()
    return await store.conversations.create(conversation)


def test_delete_conversation(page: Any, watch: Watch, server: LiveServer) -> None:
    page.goto(server.url + "/chat")
    page.fill("#new-model_other", "fake/gone")
    page.click("#new-chat")
    page.wait_for_url(re.compile(r"/chat/conv_"))
    _send(page, "a doomed conversation")
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(server.url + "/chat")
    assert page.get_by_text("a doomed conversation").count() == 0
    assert any(d.startswith("confirm") for d in watch.dialogs)
