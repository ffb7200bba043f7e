"""Approval: calls pause the run in a stored, resumable state that can be approved, edited, denied or
answered — in the same process, from another one, or after a restart on the same database."""

from __future__ import annotations

import pytest

from modelyard import errors
from modelyard.agent import Agent, Decision, PendingCall, RunResult, tool_from_openai
from modelyard.config import Settings
from modelyard.providers.fake import FakeProvider, FakeReply
from modelyard.sdk.client import AsyncClient
from modelyard.storage.sql_runs import SQLRunStore
from tests.agent import sample_tools

TOOLS = [sample_tools.add, sample_tools.delete_file, sample_tools.pay]


async def pause(client: AsyncClient, fake: FakeProvider) -> RunResult:
    fake.queue(FakeReply(tool_calls=[("delete_file", {"path": "/tmp/a"}), ("add", {"a": 1, "b": 2})]))
    result = await Agent(client, "fake/m", tools=TOOLS).run("clean up")
    assert result.stop_reason == "approval_required" and result.status == "paused" and result.paused
    return result


async def test_pause_then_approve(client: AsyncClient, fake: FakeProvider) -> None:
    result = await pause(client, fake)
    assert result.explanation == "paused: 1 tool call(s) wait for a decision: delete_file"
    [pending] = result.pending
    assert (pending.name, pending.arguments, pending.step) == ("delete_file", {"path": "/tmp/a"}, 1)
    assert [c.name for c in result.tool_calls] == []  # the step's calls are recorded once it completes
    fake.queue(FakeReply(text="cleaned"))
    resumed = await Agent(client, tools=TOOLS).resume(result.run_id, [Decision.approve(pending.call_id)])
    assert resumed.stop_reason == "final_answer" and resumed.text == "cleaned"
    delete, add = resumed.steps[0].calls
    assert (delete.output, delete.decision, add.output, add.decision) == ("deleted /tmp/a", "approved", "3", None)
    tool_messages = [m for m in fake.calls[-1].request.messages if m.role == "tool"]
    assert [m.content for m in tool_messages] == ["deleted /tmp/a", "3"]


async def test_resume_after_a_restart_on_the_same_database(settings: Settings) -> None:
    async with AsyncClient(settings) as first:
        result = await pause(first, first.gateway.provider("fake"))
    async with AsyncClient(settings) as second:  # a new process: new gateway, new client, same database
        second.gateway.provider("fake").queue(FakeReply(text="done after restart"))
        agent = Agent(second, tools=TOOLS)
        state = await agent.state(result.run_id)
        assert state.status == "paused" and [p.name for p in state.pending] == ["delete_file"]
        resumed = await agent.resume(result.run_id, [Decision.approve(state.pending[0].call_id)])
        assert resumed.text == "done after restart" and resumed.messages[0].content == "clean up"
        runs = SQLRunStore((await second.gateway.stores()).engine)
        stored = await runs.get(result.run_id)
        steps = await runs.steps(result.run_id)
    assert stored is not None and stored.status == "completed" and stored.steps == 2
    assert [s.tool_calls for s in steps] == [2, 0] and steps[0].succeeded_tool_calls == 2


async def test_edit_and_deny(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(FakeReply(tool_calls=[("delete_file", {"path": "/"}), ("pay", {"amount": 500, "to": "bob"})]))
    result = await Agent(client, "fake/m", tools=TOOLS).run("go")
    delete, pay = result.pending
    fake.queue(FakeReply(text="ok"))
    decisions = [Decision.edit(delete.call_id, {"path": "/tmp/safe"}), Decision.deny(pay.call_id, "too much")]
    resumed = await Agent(client, tools=TOOLS).resume(result.run_id, decisions)
    edited, denied = resumed.steps[0].calls
    assert (edited.output, edited.decision, edited.parsed) == ("deleted /tmp/safe", "edited", {"path": "/tmp/safe"})
    assert denied.output == "error: the user denied this call: too much"
    assert (denied.decision, denied.error_kind, denied.executed, denied.valid) == ("denied", "denied", False, True)


async def test_edited_arguments_are_validated(client: AsyncClient, fake: FakeProvider) -> None:
    result = await pause(client, fake)
    fake.queue(FakeReply(text="ok"))
    resumed = await Agent(client, tools=TOOLS).resume(result.run_id, [Decision.edit(result.pending[0].call_id, {})])
    record = resumed.steps[0].calls[0]
    assert record.error_kind == "invalid_arguments" and "'path' is a required property" in record.output


async def test_approval_rule_by_arguments(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(FakeReply(tool_calls=[("pay", {"amount": 5, "to": "a"}), ("pay", {"amount": 500, "to": "b"})]))
    result = await Agent(client, "fake/m", tools=TOOLS).run("pay")
    assert [p.arguments["amount"] for p in result.pending] == [500]


async def test_a_tool_without_handler_is_answered_by_the_caller(client: AsyncClient, fake: FakeProvider) -> None:
    ask = tool_from_openai(
        {"name": "ask_user", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
    )
    fake.queue(FakeReply(tool_calls=[("ask_user", {"q": "colour?"}), ("ask_user", {"q": "size?"})]))
    result = await Agent(client, "fake/m", tools=[ask]).run("buy a shirt")
    assert [p.answer_only for p in result.pending] == [True, True]
    fake.queue(FakeReply(text="blue, large"))
    first, second = result.pending
    decisions = [Decision.respond(first.call_id, "blue"), Decision.approve(second.call_id)]
    resumed = await Agent(client, tools=[ask]).resume(result.run_id, decisions)
    answered, refused = resumed.steps[0].calls
    assert (answered.output, answered.decision, answered.ok) == ("blue", "answered", True)
    assert "no handler" in refused.output and refused.decision == "denied"


async def test_inline_approver(client: AsyncClient, fake: FakeProvider) -> None:
    seen: list[PendingCall] = []

    async def approver(pending: PendingCall) -> Decision:
        seen.append(pending)
        return Decision.deny(pending.call_id, "not today")

    fake.queue(FakeReply(tool_calls=[("delete_file", {"path": "/x"})]), FakeReply(text="fine"))
    result = await Agent(client, "fake/m", tools=TOOLS, approver=approver).run("go")
    assert result.stop_reason == "final_answer" and [p.name for p in seen] == ["delete_file"]
    assert result.tool_calls[0].output == "error: the user denied this call: not today"
    fake.queue(FakeReply(tool_calls=[("delete_file", {"path": "/x"})]))
    still = await Agent(client, "fake/m", tools=TOOLS, approver=lambda pending: None).run("go")
    assert still.stop_reason == "approval_required"


async def test_decisions_recorded_elsewhere_apply_on_resume(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(FakeReply(tool_calls=[("delete_file", {"path": "/a"}), ("delete_file", {"path": "/b"})]))
    result = await Agent(client, "fake/m", tools=TOOLS).run("go")
    first, second = result.pending
    workbench = Agent(client)  # another surface: no tools, just a decision
    await workbench.decide(result.run_id, [Decision.approve(first.call_id)])
    again = await Agent(client, tools=TOOLS).resume(result.run_id)
    assert again.stop_reason == "approval_required" and [p.call_id for p in again.pending] == [
        first.call_id,
        second.call_id,
    ]
    fake.queue(FakeReply(text="both done"))
    done = await Agent(client, tools=TOOLS).resume(result.run_id, [Decision.deny(second.call_id)])
    assert done.text == "both done"
    assert [c.decision for c in done.steps[0].calls] == ["approved", "denied"]


async def test_resume_refusals(client: AsyncClient, fake: FakeProvider) -> None:
    result = await pause(client, fake)
    with pytest.raises(errors.BadRequestError, match="missing: delete_file, pay"):
        await Agent(client, tools=[sample_tools.add]).resume(result.run_id)
    with pytest.raises(errors.BadRequestError, match="no pending tool call 'nope'"):
        await Agent(client, tools=TOOLS).resume(result.run_id, [Decision.approve("nope")])
    with pytest.raises(errors.NotFoundError):
        await Agent(client, tools=TOOLS).resume("run_missing")
    runs = SQLRunStore((await client.gateway.stores()).engine)
    assert await runs.claim(result.run_id)  # as if another process were running it
    with pytest.raises(errors.ConflictError, match="running in another process"):
        await Agent(client, tools=TOOLS).resume(result.run_id)
    fake.queue(FakeReply(text="forced"))
    decision = Decision.approve(result.pending[0].call_id)
    forced = await Agent(client, tools=TOOLS).resume(result.run_id, [decision], force=True)
    assert forced.text == "forced"
    with pytest.raises(errors.BadRequestError, match="already finished"):
        await Agent(client, tools=TOOLS).resume(result.run_id)
