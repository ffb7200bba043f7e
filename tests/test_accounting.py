"""Every call leaves one log row with tokens, cost and timing; secrets never reach storage."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import AsyncIterator

import pytest

from modelyard import errors
from modelyard.config import ProviderSettings, Settings
from modelyard.gateway import Gateway
from modelyard.pipeline import CallOptions
from modelyard.providers.fake import FakeProvider, FakeReply
from modelyard.storage.base import LogQuery, RequestLog
from modelyard.tokens import count_text
from modelyard.types.usage import PromptTokensDetails, Usage
from tests.providers.cases_openai import CASES
from tests.support.scripted_server import Reply, ScriptedServer

ASK = {"model": "fake/m", "messages": [{"role": "user", "content": "one two three"}]}


def settings_for(tmp_path: pathlib.Path, **extra: object) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'logs.db'}", spill_dir=str(tmp_path / "spill"), **extra)


async def rows(gateway: Gateway) -> list[RequestLog]:
    assert gateway.writer is not None
    store = await gateway.stores()
    await gateway.writer.close()  # flush
    page = await store.logs.query(LogQuery(limit=10_000))
    return page.items


@pytest.fixture
async def gateway(tmp_path: pathlib.Path) -> AsyncIterator[Gateway]:
    async with Gateway(settings_for(tmp_path)) as gw:
        await gw.start()
        yield gw


def fake(gateway: Gateway) -> FakeProvider:
    provider = gateway.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider


async def test_success_row(gateway: Gateway) -> None:
    fake(gateway).queue(FakeReply(text="four five", usage=Usage.of(7, 2)))
    response = await gateway.chat(ASK, CallOptions(tags=["t1"], metadata={"team": "a"}))
    [row] = await rows(gateway)
    assert row.request_id == response.modelyard.request_id  # type: ignore[union-attr]
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("ok", 7, 2)
    assert row.served_model == "fake/m" and row.provider == "fake"
    assert row.cost == 0 and row.cost_source == "computed"
    assert row.tags == ["t1"] and row.metadata == {"team": "a"}
    assert row.response_text == "four five"
    assert row.latency_ms is not None and row.latency_ms > 0


async def test_error_and_rejected_rows(gateway: Gateway) -> None:
    fake(gateway).queue(FakeReply(error=errors.BadRequestError("nope")))
    with pytest.raises(errors.BadRequestError):
        await gateway.chat(ASK)
    with pytest.raises(errors.NotFoundError):
        await gateway.chat({**ASK, "model": "nosuch/model"})
    statuses = sorted((r.status, r.error_type) for r in await rows(gateway))
    assert statuses == [("error", "BadRequestError"), ("rejected", "NotFoundError")]


async def test_stream_rows_count_exactly_what_was_delivered(gateway: Gateway) -> None:
    fake(gateway).queue(FakeReply(text="a b c d e f", usage=Usage.of(3, 6)))
    stream = await gateway.stream(ASK)
    async for _ in stream:
        pass
    fake(gateway).queue(FakeReply(text="a b c d e f"))
    stream = await gateway.stream(ASK)
    delivered = [await stream.__anext__() for _ in range(3)]  # role chunk + "a " + "b "
    await stream.aclose()
    assert "".join(c.text for c in delivered) == "a b "
    done, cut = sorted(await rows(gateway), key=lambda r: r.status != "ok")
    assert (done.status, done.completion_tokens, done.ttft_ms is not None) == ("ok", 6, True)
    assert cut.status == "client_disconnected"
    assert cut.completion_tokens == count_text("fake/m", "a b ")  # exactly the delivered text
    assert cut.response_text == "a b "


async def test_interrupted_stream_is_logged_as_error(gateway: Gateway) -> None:
    fake(gateway).queue(FakeReply(text="a b c d", cut_after=2))
    stream = await gateway.stream(ASK)
    with pytest.raises(errors.StreamInterruptedError):
        async for _ in stream:
            pass
    [row] = await rows(gateway)
    assert (row.status, row.error_type) == ("error", "StreamInterruptedError")


async def test_fallback_row(gateway: Gateway) -> None:
    fake(gateway).queue(FakeReply(error=errors.ServiceUnavailableError("down")), model="m")
    await gateway.chat(ASK, CallOptions(fallbacks=["fake/backup"], max_retries=0))
    [row] = await rows(gateway)
    assert row.fallback_used and row.served_model == "fake/backup"
    assert [a.model for a in row.attempts] == ["fake/m", "fake/backup"]


async def test_cost_is_computed_from_the_price_table(tmp_path: pathlib.Path, upstream: ScriptedServer) -> None:
    settings = settings_for(tmp_path, providers={"openai": ProviderSettings(base_url=upstream.url, api_key="sk-x")})
    upstream.script(CASES.plain)
    async with Gateway(settings) as gw:
        response = await gw.chat({**ASK, "model": "openai/gpt-4o-mini"})
        info = response.modelyard
        assert info is not None and info.cost_source == "computed"
        expected = gw.catalog.cost("openai/gpt-4o-mini", response.usage).total
        assert info.cost == pytest.approx(expected) and expected > 0
        [row] = await rows(gw)
        assert row.cost == pytest.approx(expected)


async def test_billed_cost_wins_and_computed_is_kept(tmp_path: pathlib.Path, upstream: ScriptedServer) -> None:
    settings = settings_for(tmp_path, providers={"openrouter": ProviderSettings(base_url=upstream.url, api_key="k")})
    body = dict(CASES.plain.json)
    body["usage"] = {**body["usage"], "cost": 0.0123}
    upstream.script(Reply(json=body))
    async with Gateway(settings) as gw:
        response = await gw.chat({**ASK, "model": "openrouter/openai/gpt-4o-mini"})
    assert response.modelyard is not None
    assert (response.modelyard.cost, response.modelyard.cost_source) == (0.0123, "billed")
    assert response.modelyard.billed_cost == 0.0123


def test_cached_tokens_are_not_double_counted(tmp_path: pathlib.Path) -> None:
    gw = Gateway(settings_for(tmp_path))
    usage = Usage(
        prompt_tokens=1000,
        completion_tokens=200,
        total_tokens=1200,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=600),
    )
    price = gw.catalog.price("openai/gpt-4o-mini")
    assert price is not None and price.cached_input is not None
    expected = (400 * price.input + 600 * price.cached_input + 200 * price.output) / 1_000_000
    assert gw.price("openai/gpt-4o-mini", usage).cost == pytest.approx(expected)


async def test_canary_secrets_never_reach_storage(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = "sk-proj-CANARY0123456789abcdefXYZ"
    log_file = tmp_path / "requests.jsonl"
    caplog.set_level(logging.DEBUG)
    async with Gateway(settings_for(tmp_path, log_file=str(log_file))) as gw:
        fake(gw).queue(FakeReply(text=f"your key {canary} is safe", error=None))
        await gw.chat(
            {
                "model": "fake/m",
                "messages": [{"role": "user", "content": f"my key is {canary}"}],
                "metadata": {"api_key": canary},
            },
            CallOptions(extra_headers={"Authorization": f"Bearer {canary}"}, metadata={"note": f"Bearer {canary}"}),
        )
        fake(gw).queue(FakeReply(error=errors.ProviderError(f"upstream said key={canary}")))
        with pytest.raises(errors.ProviderError):
            await gw.chat(ASK, CallOptions(max_retries=0))
        [*_] = await rows(gw)
    needle = canary[4:20].encode()  # any 16 consecutive characters of the secret
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), f"secret leaked into {path}"
    assert canary[4:20] not in caplog.text
    assert canary[4:20] not in capsys.readouterr().err


async def test_continue_a_conversation(gateway: Gateway) -> None:
    from modelyard.storage.base import Conversation

    store = await gateway.stores()
    conv = await store.conversations.create(Conversation(system_prompt="Be terse."))
    fake(gateway).queue(FakeReply(text="Paris", reasoning="capital of France"))
    await gateway.chat(
        {"model": "fake/m", "messages": [{"role": "user", "content": "Capital of France?"}]},
        CallOptions(conversation_id=conv.id),
    )
    fake(gateway).queue(FakeReply(text="About 2 million"))
    stream = await gateway.stream(
        {"model": "fake/other", "messages": [{"role": "user", "content": "Population?"}]},
        CallOptions(conversation_id=conv.id),
    )
    async for _ in stream:
        pass
    sent = fake(gateway).calls[-1].request.messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
    saved = await store.conversations.get(conv.id)
    assert saved is not None
    assert [m.text() for m in saved.messages] == ["Capital of France?", "Paris", "Population?", "About 2 million"]
    assert saved.messages[1].reasoning_content == "capital of France"
    assert saved.model == "fake/other"


async def test_context_window_checked_before_any_network_call(tmp_path: pathlib.Path, upstream: ScriptedServer) -> None:
    settings = settings_for(
        tmp_path,
        providers={"openai": ProviderSettings(base_url=upstream.url, api_key="sk-x")},
        prices={
            "openai/tiny": {"input": 1, "output": 1, "context_window": 50},
            "fake/big": {"input": 0, "output": 0, "context_window": 100_000},
        },
    )
    big = {"model": "openai/tiny", "messages": [{"role": "user", "content": "word " * 200}]}
    async with Gateway(settings) as gw:
        with pytest.raises(errors.ContextWindowExceededError):
            await gw.chat(big)
        response = await gw.chat(big, CallOptions(fallbacks=["fake/big"]))
    assert response.modelyard is not None and response.modelyard.served_model == "fake/big"
    assert upstream.requests == []


async def test_ten_thousand_mixed_calls_leave_exactly_ten_thousand_rows(tmp_path: pathlib.Path) -> None:
    total = 10_000
    async with Gateway(settings_for(tmp_path)) as gw:
        provider = fake(gw)
        expected_tokens = 0

        async def one(i: int) -> int:
            kind = i % 5
            if kind == 0:
                provider.queue(FakeReply(text="x y", usage=Usage.of(5, 2)), model=f"m{i}")
                await gw.chat({**ASK, "model": f"fake/m{i}"})
                return 7
            if kind == 1:
                provider.queue(FakeReply(text="x y z", usage=Usage.of(4, 3)), model=f"m{i}")
                stream = await gw.stream({**ASK, "model": f"fake/m{i}"})
                async for _ in stream:
                    pass
                return 7
            if kind == 2:
                provider.queue(FakeReply(error=errors.BadRequestError("bad")), model=f"m{i}")
                with pytest.raises(errors.BadRequestError):
                    await gw.chat({**ASK, "model": f"fake/m{i}"})
                return 0
            if kind == 3:
                provider.queue(FakeReply(error=errors.ServiceUnavailableError("x")), model=f"m{i}")
                provider.queue(FakeReply(text="ok", usage=Usage.of(2, 1)), model=f"b{i}")
                await gw.chat({**ASK, "model": f"fake/m{i}"}, CallOptions(fallbacks=[f"fake/b{i}"], max_retries=0))
                return 3
            provider.queue(FakeReply(text="p q r s", usage=Usage.of(3, 4)), model=f"m{i}")
            stream = await gw.stream({**ASK, "model": f"fake/m{i}"})
            await stream.__anext__()
            await stream.aclose()  # client disconnect after the role chunk: 0 tokens delivered
            return 0

        for start in range(0, total, 500):
            results = await asyncio.gather(*(one(i) for i in range(start, min(start + 500, total))))
            expected_tokens += sum(results)
        logged = await rows(gw)
    assert len(logged) == total
    assert len({r.request_id for r in logged}) == total
    ok_tokens = sum((r.prompt_tokens or 0) + (r.completion_tokens or 0) for r in logged if r.status == "ok")
    assert ok_tokens == expected_tokens
    assert sum(r.status == "client_disconnected" for r in logged) == total // 5
