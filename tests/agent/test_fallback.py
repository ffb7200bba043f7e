"""Fallback inside a run, model errors, and the local model (which cannot call tools: said clearly)."""

from __future__ import annotations

import pathlib
import time
from collections.abc import AsyncIterator

import pytest

from modelyard import errors
from modelyard.agent import Agent, ModelFallback, arun
from modelyard.config import Settings
from modelyard.providers.fake import FakeProvider, FakeReply
from modelyard.sdk.client import AsyncClient
from tests.agent import sample_tools
from tests.agent.conftest import PRICES


@pytest.fixture
async def client(tmp_path: pathlib.Path) -> AsyncIterator[AsyncClient]:
    """No gateway retries, so a scripted 429 or 5xx reaches the run at once."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'fb.db'}", max_retries=0, prices=PRICES)
    async with AsyncClient(settings) as opened:
        yield opened


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    "failure",
    [errors.RateLimitError("slow down"), errors.ServiceUnavailableError("overloaded"), errors.ProviderError("boom")],
)
async def test_mid_run_failure_continues_on_the_next_model(
    client: AsyncClient, fake: FakeProvider, failure: errors.ModelyardError, streaming: bool
) -> None:
    fake.queue(FakeReply(tool_calls=[("add", {"a": 1, "b": 2})]), FakeReply(error=failure), model="primary")
    fake.queue(FakeReply(tool_calls=[("add", {"a": 3, "b": 4})]), FakeReply(text="7, on the backup"), model="backup")
    agent = Agent(client, "fake/primary", tools=[sample_tools.add], fallbacks=["fake/backup"])
    events = [e async for e in agent.stream("add things")] if streaming else []
    result = events[-1].result if streaming else await agent.run("add things")  # type: ignore[union-attr]
    assert result.stop_reason == "final_answer" and result.text == "7, on the backup"
    assert [s.model for s in result.steps] == ["fake/primary", "fake/backup", "fake/backup"]
    assert result.steps[1].fell_back_from == ["fake/primary"] and result.model == "fake/backup"
    backup_first = next(c for c in fake.calls if c.request.model == "backup")
    assert [m.role for m in backup_first.request.messages] == ["user", "assistant", "tool"]  # the conversation so far
    assert backup_first.request.messages[-1].content == "3"
    if streaming:
        [switch] = [e for e in events if isinstance(e, ModelFallback)]
        assert (switch.step, switch.from_model, switch.to_model) == (2, "fake/primary", "fake/backup")
        assert switch.error.type == type(failure).__name__


async def test_no_model_left_ends_the_run_with_the_error_and_it_can_be_resumed(
    client: AsyncClient, fake: FakeProvider
) -> None:
    fake.queue(FakeReply(tool_calls=[("add", {"a": 1})]), FakeReply(error=errors.RateLimitError("slow down")))
    agent = Agent(client, "fake/m", tools=[sample_tools.add])
    result = await agent.run("go")
    assert (result.stop_reason, result.status) == ("error", "failed")
    assert result.error is not None and result.error.type == "RateLimitError" and result.error.status == 429
    assert result.explanation == "failed on fake/m: RateLimitError: slow down"
    assert len(result.steps) == 1 and result.messages[-1].role == "tool"
    with pytest.raises(errors.RateLimitError):
        result.raise_for_error()
    fake.queue(FakeReply(text="back again"))
    resumed = await agent.resume(result.run_id)
    assert resumed.stop_reason == "final_answer" and resumed.text == "back again" and len(resumed.steps) == 2


async def test_errors_that_are_not_the_models_fault_do_not_fall_back(client: AsyncClient, fake: FakeProvider) -> None:
    fake.queue(FakeReply(error=errors.BadRequestError("bad request", param="messages")), model="primary")
    result = await arun(client, "fake/primary", "go", tools=[sample_tools.add], fallbacks=["fake/backup"])
    assert result.stop_reason == "error" and result.error is not None and result.error.type == "BadRequestError"
    assert all(c.request.model == "primary" for c in fake.calls)


async def test_the_local_model_says_clearly_it_cannot_call_tools(client: AsyncClient, fake: FakeProvider) -> None:
    started = time.monotonic()
    result = await arun(client, "local/smollm2", "What is 2+2?", tools=[sample_tools.add])
    assert time.monotonic() - started < 5  # refused before any model is loaded
    assert result.stop_reason == "error" and result.error is not None
    assert result.error.type == "UnsupportedOperationError"
    assert result.explanation.startswith("failed: local/smollm2 cannot call tools (the local model does not support")
    with pytest.raises(errors.UnsupportedOperationError, match="does not support tool calling"):
        result.raise_for_error()
    rescued = await arun(client, "local/smollm2", "What is 2+2?", tools=[sample_tools.add], fallbacks=["fake/m"])
    assert rescued.stop_reason == "final_answer" and rescued.model == "fake/m"
    assert rescued.steps[0].fell_back_from == ["local/smollm2"]
