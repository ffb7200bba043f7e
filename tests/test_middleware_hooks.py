"""Users add their own middleware from settings (``module:factory``) exactly like the built-in ones."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from modelyard import errors
from modelyard.config import Settings
from modelyard.gateway import Gateway
from modelyard.pipeline import Call, CallOptions, ChatStream, Handler, Outcome
from modelyard.types.chat import ChatResponse

SEEN: list[str] = []


class Audit:
    """Records each call's model and outcome kind; rewrites the temperature (a transformation)."""

    def __init__(self, settings: Settings) -> None:
        self.tag = settings.app_name

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        call.request = call.request.model_copy(update={"temperature": 0.5})
        outcome = await next(call)
        SEEN.append(f"{self.tag}:{call.request.model}:{type(outcome).__name__}")
        return outcome


def make_audit(settings: Settings) -> Audit:
    return Audit(settings)


async def test_middleware_from_settings(tmp_path: pathlib.Path) -> None:
    SEEN.clear()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'h.db'}", app_name="audit", middleware=[f"{__name__}:make_audit"]
    )
    async with Gateway(settings) as gateway:
        response = await gateway.chat({"model": "fake/m", "messages": [{"role": "user", "content": "x"}]})
        stream = await gateway.stream({"model": "fake/m", "messages": [{"role": "user", "content": "y"}]})
        async for _ in stream:
            pass
        sent: Any = gateway.provider("fake")
        assert sent.calls[0].request.temperature == 0.5
    assert isinstance(response, ChatResponse)
    assert [f"audit:fake/m:{ChatResponse.__name__}", f"audit:fake/m:{ChatStream.__name__}"] == SEEN


def test_unknown_middleware_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="cannot load middleware"):
        Gateway(Settings(middleware=["nowhere.module:factory"]))
    with pytest.raises(errors.ConfigError, match="no middleware"):
        Gateway(Settings(middleware=["not-an-entry-point"]))


class OnlyTagged:
    """Has work only for calls tagged "audit": says so with ``skips``, and the chain passes the rest by."""

    def __init__(self) -> None:
        self.ran: list[list[str]] = []

    def skips(self, call: Call) -> bool:
        return "audit" not in call.options.tags

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        self.ran.append(call.options.tags)
        return await next(call)


async def test_a_middleware_runs_only_for_the_calls_it_does_not_skip(tmp_path: pathlib.Path) -> None:
    only = OnlyTagged()
    async with Gateway(Settings(database_url=f"sqlite:///{tmp_path / 's.db'}"), middleware=[only]) as gateway:
        for tags in (["audit"], ["other"], []):
            options = CallOptions(tags=tags)
            await gateway.chat({"model": "fake/m", "messages": [{"role": "user", "content": "x"}]}, options)
    assert only.ran == [["audit"]]
