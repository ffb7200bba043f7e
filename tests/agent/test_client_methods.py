"""``Client.run`` / ``AsyncClient.run`` are the agent loop, and ``resume`` continues a paused run."""

from __future__ import annotations

import pathlib

from modelyard.agent import Decision, tool
from modelyard.config import Settings
from modelyard.providers.fake import FakeReply
from modelyard.sdk.client import AsyncClient
from modelyard.sdk.sync import Client


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool(requires_approval=True)
def delete_everything(path: str) -> str:
    """Delete a folder."""
    return f"deleted {path}"


def settings(tmp_path: pathlib.Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'runs.db'}")


def test_sync_client_run(tmp_path: pathlib.Path) -> None:
    with Client(settings(tmp_path)) as client:
        client.gateway.provider("fake").queue(FakeReply(tool_calls=[("add", {"a": 2, "b": 3})]), FakeReply(text="5"))
        result = client.run("fake/m", "What is 2 + 3?", tools=[add])
    assert result.stop_reason == "final_answer" and result.text == "5"
    assert len(result.steps) == 2 and result.steps[0].calls[0].output == "5"


async def test_async_client_run_pauses_and_resumes(tmp_path: pathlib.Path) -> None:
    async with AsyncClient(settings(tmp_path)) as client:
        fake = client.gateway.provider("fake")
        fake.queue(FakeReply(tool_calls=[("delete_everything", {"path": "/tmp/x"})]), FakeReply(text="done"))
        paused = await client.run("fake/m", "Clean up", tools=[delete_everything])
        assert paused.stop_reason == "approval_required" and paused.pending
        resumed = await client.resume(
            paused.run_id, [Decision.approve(paused.pending[0].call_id)], tools=[delete_everything]
        )
    assert resumed.stop_reason == "final_answer" and resumed.text == "done"
