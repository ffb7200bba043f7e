"""Each cap stops the run, says so clearly, and leaves it resumable with a higher cap."""

from __future__ import annotations

import time

from modelyard.agent import Agent, Limits
from modelyard.providers.fake import FakeProvider, FakeReply
from modelyard.sdk.client import AsyncClient
from modelyard.types.usage import Usage
from tests.agent import sample_tools


def looping(count: int) -> list[FakeReply]:
    return [FakeReply(tool_calls=[("add", {"a": i})], usage=Usage.of(10, 5)) for i in range(count)]


async def test_step_cap_then_resume_with_a_higher_one(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(*looping(3), FakeReply(text="finally", usage=Usage.of(10, 5)))
    agent = Agent(client, "fake/m", tools=[sample_tools.add], limits=Limits(max_steps=2))
    result = await agent.run("loop")
    assert (result.stop_reason, result.status) == ("max_steps", "stopped")
    assert result.explanation == "stopped: the step cap (2) was reached and the model still wanted to call tools"
    assert len(result.steps) == 2 and len(fake.calls) == 2
    assert result.messages[-1].role == "tool"  # the last step's calls were answered: the state is consistent
    resumed = await agent.resume(result.run_id, limits=Limits(max_steps=10))
    assert resumed.stop_reason == "final_answer" and resumed.text == "finally" and len(resumed.steps) == 4
    assert resumed.usage.total_tokens == 60


async def test_token_cap(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(*looping(5))
    result = await Agent(client, "fake/m", tools=[sample_tools.add], limits=Limits(max_tokens=20)).run("loop")
    assert result.stop_reason == "max_tokens" and len(result.steps) == 2
    assert result.explanation == "stopped: the token cap (20) was reached (30 tokens used)"


async def test_cost_cap(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(*looping(5))
    result = await Agent(client, "fake/priced", tools=[sample_tools.add], limits=Limits(max_cost=0.02)).run("loop")
    assert result.stop_reason == "max_cost" and len(result.steps) == 2
    assert result.cost is not None and abs(result.cost - 0.03) < 1e-9
    assert [s.cost for s in result.steps] == [0.015, 0.015]
    assert result.explanation == "stopped: the cost cap ($0.02) was reached ($0.030000 spent)"


async def test_time_cap_during_a_model_call(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(FakeReply(tool_calls=[("add", {"a": 1})]), FakeReply(text="late", delay=5))
    started = time.monotonic()
    result = await Agent(client, "fake/m", tools=[sample_tools.add], limits=Limits(max_time=0.4)).run("go")
    assert time.monotonic() - started < 2
    assert result.stop_reason == "max_time" and result.status == "stopped"
    assert result.explanation.startswith("stopped: the time cap (0.4 s) was reached after 0.")


async def test_time_cap_during_tool_calls(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(FakeReply(tool_calls=[("slow_echo", {"text": "x", "seconds": 5}), ("add", {"a": 1})]))
    agent = Agent(client, "fake/m", tools=[sample_tools.slow_echo, sample_tools.add], limits=Limits(max_time=0.3))
    started = time.monotonic()
    result = await agent.run("go")
    assert time.monotonic() - started < 2
    assert result.stop_reason == "max_time"
    slow, add = result.steps[0].calls
    assert add.ok and slow.error_kind == "timeout" and "time cap" in slow.output
    assert [m.role for m in result.messages][-2:] == ["tool", "tool"]


async def test_streamed_run_reports_the_cap_in_its_last_event(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(*looping(3))
    events = [
        e async for e in Agent(client, "fake/m", tools=[sample_tools.add], limits=Limits(max_steps=1)).stream("x")
    ]
    last = events[-1]
    assert last.type == "run_finished" and last.stop_reason == "max_steps"
