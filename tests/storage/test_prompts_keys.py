"""System prompts, stored templates and virtual keys."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from modelyard.errors import ConflictError
from modelyard.storage import (
    SQLStore,
    StoredTemplate,
    SystemPrompt,
    VirtualKey,
    hash_key,
    new_virtual_key,
)
from modelyard.storage.base import utcnow
from modelyard.storage.schema import virtual_keys, web_session_revocations

SECRET = b"server-side hmac secret"


async def test_system_prompts_crud(store: SQLStore) -> None:
    terse = await store.prompts.create_prompt(SystemPrompt(name="terse", text="Answer in one line."))
    await store.prompts.create_prompt(SystemPrompt(name="pirate", text="Talk like a pirate."))
    assert await store.prompts.get_prompt(terse.id) == terse
    assert await store.prompts.get_prompt("terse") == terse
    assert [p.name for p in await store.prompts.list_prompts()] == ["pirate", "terse"]
    with pytest.raises(ConflictError):
        await store.prompts.create_prompt(SystemPrompt(name="terse", text="dup"))
    updated = await store.prompts.update_prompt(terse.id, text="One line, please.")
    assert updated is not None and updated.text == "One line, please." and updated.name == "terse"
    assert updated.updated_at >= terse.updated_at
    with pytest.raises(ConflictError):
        await store.prompts.update_prompt(terse.id, name="pirate")
    assert await store.prompts.update_prompt("sp_missing", text="x") is None
    assert await store.prompts.delete_prompt(terse.id)
    assert not await store.prompts.delete_prompt(terse.id)
    assert await store.prompts.get_prompt("terse") is None


async def test_templates_crud(store: SQLStore) -> None:
    source = "name: summarize\nmessages:\n  - role: user\n    content: 'Summarize: {{ text }}'\n"
    saved = await store.prompts.save_template(StoredTemplate(name="summarize", yaml=source))
    assert saved.yaml == source
    assert saved.content == {"name": "summarize", "messages": [{"role": "user", "content": "Summarize: {{ text }}"}]}
    await store.prompts.save_template(StoredTemplate(name="classify", content={"messages": [], "temperature": 0}))
    classify = await store.prompts.get_template("classify")
    assert classify is not None and "temperature: 0" in classify.yaml
    replaced = await store.prompts.save_template(StoredTemplate(name="summarize", content={"v": 2}))
    assert replaced.content == {"v": 2} and replaced.created_at == saved.created_at
    assert replaced.updated_at >= saved.updated_at
    assert [t.name for t in await store.prompts.list_templates()] == ["classify", "summarize"]
    assert await store.prompts.delete_template("classify")
    assert not await store.prompts.delete_template("classify")
    assert await store.prompts.get_template("classify") is None


async def test_keys_store_only_the_hash(store: SQLStore, db_url: str) -> None:
    key, plaintext = new_virtual_key("ci", SECRET, allowed_models=["fast"], rpm=60, budget=5.0, created_by="admin")
    assert plaintext.startswith("sk-my-") and key.prefix == plaintext[:12]
    await store.keys.create(key)
    found = await store.keys.get_by_hash(hash_key(plaintext, SECRET))
    assert found == key and found is not None and found.is_active()
    assert await store.keys.get_by_hash(hash_key(plaintext, b"another secret")) is None
    async with store.engine.connect() as connection:
        row = (await connection.execute(select(virtual_keys))).one()
    assert plaintext not in repr(tuple(row)) and plaintext[12:] not in repr(tuple(row))
    if db_url.startswith("sqlite"):
        database = Path(db_url.removeprefix("sqlite:///"))
        for path in database.parent.glob(database.name + "*"):
            assert plaintext[12:].encode() not in path.read_bytes()
    with pytest.raises(ConflictError):
        await store.keys.create(key)


async def test_keys_revoke_list_and_spend(store: SQLStore) -> None:
    first, _ = new_virtual_key("first", SECRET, budget=10.0)
    second, _ = new_virtual_key("second", SECRET, expires_at=utcnow() - timedelta(seconds=1))
    await store.keys.create(first)
    await store.keys.create(second)
    assert [k.name for k in await store.keys.list()] == ["first", "second"]
    assert not second.is_active()
    assert await store.keys.revoke(first.id)
    assert not await store.keys.revoke(first.id)
    revoked = await store.keys.get(first.id)
    assert revoked is not None and revoked.revoked_at is not None and not revoked.is_active()
    assert [k.name for k in await store.keys.list(include_revoked=False)] == ["second"]
    await asyncio.gather(*(store.keys.add_spend(second.id, 0.25) for _ in range(20)))
    assert await store.keys.add_spend(second.id, 0.5) == 5.5
    assert await store.keys.add_spend("vk_missing", 1.0) is None


def test_virtual_key_rejects_a_non_hash() -> None:
    with pytest.raises(ValueError, match="key_hash"):
        VirtualKey(name="x", key_hash="sk-my-plaintext", prefix="sk-my-")


async def test_web_session_logouts_last_until_the_session_would_expire(store: SQLStore) -> None:
    now = utcnow()
    await store.web_sessions.revoke("gone-already", now - timedelta(seconds=1))
    await store.web_sessions.revoke("logged-out", now + timedelta(hours=1))
    await store.web_sessions.revoke("logged-out", now + timedelta(hours=1))  # a second logout is harmless
    assert await store.web_sessions.revoked() == {"logged-out"}
    async with store.engine.connect() as connection:  # expired rows were deleted by the next revoke
        assert set((await connection.scalars(select(web_session_revocations.c.nonce))).all()) == {"logged-out"}
