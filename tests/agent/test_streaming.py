"""The run as events; the sync client; a remote client (through a live modelyard server)."""

from __future__ import annotations

import pathlib

from modelyard.agent import (
    Agent,
    ApprovalRequired,
    Decision,
    StepFinished,
    SyncAgent,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    arun,
    event_json,
    resume,
    run,
    tool_metrics,
)
from modelyard.config import Settings
from modelyard.providers.fake import FakeProvider, FakeReply
from modelyard.sdk.client import AsyncClient
from modelyard.sdk.sync import Client
from modelyard.types.usage import Usage
from tests.agent import sample_tools
from tests.support.live_server import LiveServer


async def test_events_of_a_run(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(
        FakeReply(text="Let me add.", tool_calls=[("add", {"a": 2, "b": 2})], usage=Usage.of(4, 3)),
        FakeReply(text="It is four.", reasoning="2+2 is 4", usage=Usage.of(9, 6)),
    )
    events = [e async for e in Agent(client, "fake/m", tools=[sample_tools.add]).stream("2+2?")]
    kinds = [e.type for e in events]
    assert kinds[0] == "step_started" and kinds[-1] == "run_finished"
    compact = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]  # runs of deltas as one
    assert compact == [
        "step_started", "text", "step_finished", "tool_call", "tool_result",
        "step_started", "reasoning", "text", "step_finished", "run_finished",
    ]  # fmt: skip
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == "Let me add.It is four." and len(texts) > 2  # streamed word by word
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    assert (started.name, started.arguments, started.step) == ("add", '{"a":2,"b":2}', 1)
    assert next(e for e in events if isinstance(e, ToolResult)).record.output == "4"
    first, second = (e for e in events if isinstance(e, StepFinished))
    assert first.usage == Usage.of(4, 3) and first.total_usage.total_tokens == 7 and first.tool_calls == 1
    assert second.total_usage.total_tokens == 22 and second.total_cost == 0.0
    result = events[-1].result  # type: ignore[union-attr]
    assert result.text == "It is four." and all(e.run_id == result.run_id for e in events)
    assert event_json(events[-1])["result"]["stop_reason"] == "final_answer"
    assert all(isinstance(event_json(e), dict) for e in events)


async def test_a_paused_stream_ends_with_the_approval_request(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(FakeReply(tool_calls=[("delete_file", {"path": "/x"})]))
    events = [e async for e in Agent(client, "fake/m", tools=[sample_tools.delete_file]).stream("rm")]
    assert [e.type for e in events[-2:]] == ["approval_required", "run_finished"]
    request = events[-2]
    assert isinstance(request, ApprovalRequired) and request.pending[0].name == "delete_file"


async def test_stopping_the_stream_early_leaves_a_resumable_run(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(FakeReply(tool_calls=[("add", {"a": 1})]))
    agent = Agent(client, "fake/m", tools=[sample_tools.add])
    stream = agent.stream("go")
    run_id = ""
    async for event in stream:
        run_id = event.run_id
        if isinstance(event, ToolResult):
            break
    await stream.aclose()
    state = await agent.state(run_id)
    assert state.status == "stopped" and state.steps == []  # back to the last consistent point
    fake.queue(FakeReply(tool_calls=[("add", {"a": 1})]), FakeReply(text="done"))
    resumed = await agent.resume(run_id)
    assert resumed.stop_reason == "final_answer" and len(resumed.steps) == 2


def test_sync_client(tmp_path: pathlib.Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}")
    with Client(settings) as client:
        fake = client.gateway.provider("fake")
        fake.queue(FakeReply(tool_calls=[("add", {"a": 1, "b": 1})]), FakeReply(text="two"))
        assert run(client, "fake/m", "1+1", tools=[sample_tools.add]).text == "two"
        fake.queue(FakeReply(tool_calls=[("delete_file", {"path": "/x"})]), FakeReply(text="deleted"))
        with SyncAgent(client, "fake/m", tools=[sample_tools.delete_file]) as agent:
            kinds = [e.type for e in agent.stream("rm")]
            assert kinds[-2:] == ["approval_required", "run_finished"]
            [latest] = agent.runs(limit=1)
            paused = agent.state(latest.id)
            decision = Decision.approve(paused.pending[0].call_id)
        done = resume(client, paused.run_id, [decision], tools=[sample_tools.delete_file])
        assert done.text == "deleted"
        [row] = tool_metrics(client)
        assert (row.model, row.runs, row.tool_calls, row.tool_success_rate) == ("fake/m", 2, 2, 1.0)


async def test_remote_client_through_a_server(tmp_path: pathlib.Path) -> None:
    server = LiveServer(Settings(database_url=f"sqlite:///{tmp_path / 'server.db'}")).start()
    try:
        server_fake = server.gateway.provider("fake")
        server_fake.queue(FakeReply(tool_calls=[("add", {"a": 20, "b": 22})]), FakeReply(text="42"))
        async with AsyncClient(base_url=server.url) as remote:
            result = await arun(remote, "fake/m", "20+22", tools=[sample_tools.add])
        assert result.text == "42" and result.tool_calls[0].output == "42"
        assert [c.request.messages[-1].role for c in server_fake.calls] == ["user", "tool"]  # type: ignore[attr-defined]
    finally:
        server.stop()


async def test_a_resumed_stream_reports_only_new_tool_results(client: AsyncClient, fake: FakeProvider) -> None:
    tools = [sample_tools.delete_file, sample_tools.add]
    fake.queue(FakeReply(tool_calls=[("delete_file", {"path": "/x"}), ("add", {"a": 1})]))
    first = [e async for e in Agent(client, "fake/m", tools=tools).stream("go")]
    assert [e.record.name for e in first if isinstance(e, ToolResult)] == ["add"]
    paused = first[-1].result  # type: ignore[union-attr]
    fake.queue(FakeReply(text="done"))
    decision = Decision.approve(paused.pending[0].call_id)
    resumed = [e async for e in Agent(client, tools=tools).stream_resume(paused.run_id, [decision])]
    assert [e.record.name for e in resumed if isinstance(e, ToolResult)] == ["delete_file"]
    assert [e.type for e in resumed][-1] == "run_finished" and resumed[-1].result.text == "done"  # type: ignore[union-attr]
