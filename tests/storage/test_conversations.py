"""Conversations: create, append, fork, rename, delete — reasoning_content and tool_calls survive."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelyard.errors import BadRequestError, NotFoundError
from modelyard.storage import Conversation, SQLStore
from modelyard.types.chat import Message

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Lisbon?"}]},
    {
        "role": "assistant",
        "content": None,
        "reasoning_content": "The user wants the weather; call the tool.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Lisbon"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    {"role": "assistant", "content": "21 °C.", "reasoning_content": "Report it.", "x_extra": {"kept": True}},
]


@pytest.fixture
async def saved(store: SQLStore) -> Conversation:
    conversation = Conversation(
        title="Lisbon",
        model="openai/gpt-4o",
        system_prompt="Be brief.",
        messages=[Message.model_validate(m) for m in MESSAGES],
        metadata={"pinned": True},
    )
    return await store.conversations.create(conversation)


async def test_create_and_get_round_trip(store: SQLStore, saved: Conversation) -> None:
    found = await store.conversations.get(saved.id)
    assert found is not None
    assert found.messages == [Message.model_validate(m) for m in MESSAGES]
    assert found.messages[2].tool_calls is not None and found.messages[2].tool_calls[0].function.name == "weather"
    assert found.messages[4].reasoning_content == "Report it."
    assert (found.title, found.model, found.system_prompt, found.metadata) == (
        "Lisbon",
        "openai/gpt-4o",
        "Be brief.",
        {"pinned": True},
    )
    assert found.message_count == 5 and found.created_at == saved.created_at
    assert await store.conversations.get("conv_missing") is None


async def test_append_list_rename_update(store: SQLStore, saved: Conversation) -> None:
    other = await store.conversations.create(Conversation(title="Other"))
    count = await store.conversations.append(
        saved.id, [{"role": "user", "content": "And Porto?"}, Message(role="assistant", content="19 °C.")]
    )
    assert count == 7
    listed = await store.conversations.list()
    assert [c.id for c in listed] == [saved.id, other.id]  # most recently updated first
    assert [c.message_count for c in listed] == [7, 0] and listed[0].messages == []
    assert await store.conversations.rename(other.id, "Renamed")
    assert not await store.conversations.rename("conv_missing", "x")
    updated = await store.conversations.update(saved.id, model="anthropic/claude", metadata={"pinned": False})
    assert updated is not None and updated.model == "anthropic/claude" and updated.metadata == {"pinned": False}
    assert updated.messages[-1].content == "19 °C."
    assert [c.title for c in await store.conversations.list(limit=1, offset=1)] == ["Renamed"]
    with pytest.raises(BadRequestError):
        await store.conversations.update(saved.id, id="hijack")
    with pytest.raises(NotFoundError):
        await store.conversations.append("conv_missing", [{"role": "user", "content": "hi"}])


async def test_concurrent_appends_keep_every_message(store: SQLStore, saved: Conversation) -> None:
    await asyncio.gather(
        *(store.conversations.append(saved.id, [{"role": "user", "content": f"m{i}"}]) for i in range(10))
    )
    found = await store.conversations.get(saved.id)
    assert found is not None and len(found.messages) == 15
    assert sorted(str(m.content) for m in found.messages[5:]) == sorted(f"m{i}" for i in range(10))


async def test_replace_messages(store: SQLStore, saved: Conversation) -> None:
    assert await store.conversations.replace_messages(saved.id, MESSAGES[:2])
    found = await store.conversations.get(saved.id)
    assert found is not None and found.message_count == 2
    assert not await store.conversations.replace_messages("conv_missing", [])


async def test_fork_then_delete_the_original(store: SQLStore, saved: Conversation) -> None:
    fork = await store.conversations.fork(saved.id, 2)
    assert fork is not None and fork.id != saved.id
    assert (fork.forked_from, fork.forked_at_message, fork.title) == (saved.id, 2, "Lisbon")
    found = await store.conversations.get(fork.id)
    assert found is not None
    assert found.messages == [Message.model_validate(m) for m in MESSAGES[:3]]
    assert found.messages[2].reasoning_content == MESSAGES[2]["reasoning_content"]
    await store.conversations.append(fork.id, [{"role": "user", "content": "diverge"}])
    original = await store.conversations.get(saved.id)
    assert original is not None and original.message_count == 5
    with pytest.raises(BadRequestError):
        await store.conversations.fork(saved.id, 5)
    assert await store.conversations.fork("conv_missing", 0) is None
    named = await store.conversations.fork(saved.id, 0, title="Just the system prompt")
    assert named is not None and named.title == "Just the system prompt" and named.message_count == 1

    assert await store.conversations.delete(saved.id)
    assert not await store.conversations.delete(saved.id)
    assert await store.conversations.get(saved.id) is None
    still = await store.conversations.get(fork.id)
    assert still is not None and still.message_count == 4
