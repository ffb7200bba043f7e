"""The admin HTTP API's new and extended routes, at the wire (what the remote admin facade relies on)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from modelyard import errors
from modelyard.sdk.remote import RemoteTransport
from tests.sdk.conftest import settings_for
from tests.support.live_server import LiveServer


@pytest.fixture
async def api(tmp_path: pathlib.Path) -> AsyncIterator[RemoteTransport]:
    server = LiveServer(settings_for(tmp_path)).start()
    transport = RemoteTransport(server.url, None)
    yield transport
    await transport.aclose()
    server.stop()


async def test_templates_are_checked_and_replaced_unless_told_not_to(api: RemoteTransport) -> None:
    with pytest.raises(errors.BadRequestError) as broken:
        await api.call("POST", "/admin/templates", json={"name": "bad", "yaml": "prompt: '{{ unclosed'"})
    assert broken.value.code == "template_syntax_error"
    for text in ("one {{ input }}", "two {{ input }}"):  # no "overwrite": replaced, as before
        await api.call("POST", "/admin/templates", json={"name": "t", "yaml": f"prompt: '{text}'"})
    found, _ = await api.call("GET", "/admin/templates/t")
    assert found["prompt"] == "two {{ input }}" and found["origin"] == "db" and found["variables"] == ["input"]
    with pytest.raises(errors.BadRequestError) as exists:
        await api.call("POST", "/admin/templates", json={"name": "t", "yaml": "prompt: x", "overwrite": False})
    assert exists.value.code == "template_exists"
    assert (await api.call("DELETE", "/admin/templates/t"))[0] == {"ok": True}
    with pytest.raises(errors.NotFoundError):
        await api.call("DELETE", "/admin/templates/t")


async def test_conversation_messages_append_and_replace(api: RemoteTransport) -> None:
    created, _ = await api.call("POST", "/admin/conversations", json={"title": "c"})
    path = f"/admin/conversations/{created['id']}/messages"
    appended, _ = await api.call("POST", path, json={"messages": [{"role": "user", "content": "hi"}]})
    assert appended == {"count": 1}
    with pytest.raises(errors.BadRequestError, match="messages must be a list"):
        await api.call("POST", path, json={"messages": "hi"})
    with pytest.raises(errors.BadRequestError):
        await api.call("PUT", path, json={"messages": [{"role": "nobody", "content": 1}]})
    assert (await api.call("PUT", path, json={"messages": []}))[0] == {"ok": True}
    with pytest.raises(errors.NotFoundError):
        await api.call("POST", "/admin/conversations/conv_missing/messages", json={"messages": []})
    patched, _ = await api.call("PATCH", f"/admin/conversations/{created['id']}", json={"metadata": {"a": 1}})
    assert patched["metadata"] == {"a": 1} and patched["messages"] == []
    with pytest.raises(errors.BadRequestError, match="limit must be a whole number"):
        await api.call("GET", "/admin/conversations", params={"limit": "many"})


async def test_info_db_count_prompts_and_keys(api: RemoteTransport) -> None:
    info, _ = await api.call("GET", "/admin/info")
    assert info["default_model"] == "local/smollm2" and "fake" in info["providers"]
    db, _ = await api.call("GET", "/admin/db")
    assert db["up_to_date"] is True
    assert (await api.call("GET", "/admin/logs/count", params={"model": "fake/m"}))[0] == {"count": 0}
    prompt, _ = await api.call("POST", "/admin/prompts", json={"name": "p", "text": "t"})
    assert (await api.call("GET", "/admin/prompts/p"))[0]["id"] == prompt["id"]
    key, _ = await api.call("POST", "/admin/keys", json={"name": "k", "created_by": "ci"})
    assert key["created_by"] == "ci" and key["key"].startswith("sk-my-")
    await api.call("DELETE", f"/admin/keys/{key['id']}")
    everything, _ = await api.call("GET", "/admin/keys")  # revoked ones included unless told otherwise
    active, _ = await api.call("GET", "/admin/keys", params={"include_revoked": "false"})
    assert len(everything["items"]) == 1 and active["items"] == []
    with pytest.raises(errors.BadRequestError, match="include_revoked must be true or false"):
        await api.call("GET", "/admin/keys", params={"include_revoked": "maybe"})
    with pytest.raises(errors.BadRequestError):
        await api.call("GET", "/admin/cost", params={"by": "model", "status": "bogus"})
