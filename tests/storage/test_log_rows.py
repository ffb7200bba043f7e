"""The logging middleware's rows are made without validation (``RequestLog.from_checked``): each must be exactly the
row validation would have made of the same values, for every outcome."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from modelyard import errors
from modelyard.middleware.logging import LoggingMiddleware
from modelyard.pipeline import Call, CallOptions, Outcome
from modelyard.redaction import Redactor
from modelyard.storage.base import MAX_SEARCH_TEXT, RequestLog
from modelyard.types.chat import AttemptInfo, ChatRequest, ChatResponse, Choice, Message
from modelyard.types.usage import Usage

SECRET = "sk-" + "a1B2c3D4" * 5


def _call(content: str) -> Call:
    request = ChatRequest.model_validate(
        {
            "model": "fast",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}],
            "temperature": 0.2,
            "metadata": {"team": "a"},
        }
    )
    options = CallOptions(tags=["x", "", "y", "x"], metadata={"run_id": 7, "who": "ann"}, conversation_id="conv_1")
    call = Call(kind="chat", request=request, options=options)
    call.info.provider, call.info.served_model = "openai", "openai/gpt-4o-mini"
    call.info.attempts.append(AttemptInfo(model="openai/gpt-4o-mini", provider="openai", status=200, latency_ms=3.0))
    call.info.cost, call.info.cost_source = 0.25, "computed"
    return call


def _answer(text: str) -> ChatResponse:
    message = Message(role="assistant", content=text)
    return ChatResponse(choices=[Choice(message=message, finish_reason="stop")], usage=Usage.of(11, 4))


async def _row(call: Call, outcome: Outcome | BaseException, **options: Any) -> RequestLog:
    built: list[Any] = []
    middleware = LoggingMiddleware(lambda row, size: built.append(row), Redactor(), **options)

    async def upstream(call: Call) -> Outcome:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    with pytest.raises(type(outcome)) if isinstance(outcome, BaseException) else contextlib.nullcontext():
        await middleware(call, upstream)
    (make,) = built
    row = make()
    assert isinstance(row, RequestLog)
    return row


def _validated(row: RequestLog) -> RequestLog:
    fields = {name: getattr(row, name) for name in RequestLog.model_fields}
    fields["prompt_text"] = fields["response_text"] = None  # derived by validation
    return RequestLog(**fields)


@pytest.mark.parametrize("store_bodies", [True, False])
async def test_a_served_call_row_is_the_validated_row(store_bodies: bool) -> None:
    row = await _row(_call(f"hello {SECRET}"), _answer("hi there"), store_bodies=store_bodies)
    assert row == _validated(row)
    assert row.model_fields_set == set(RequestLog.model_fields)
    assert row.tags == ["x", "y"] and row.run_id == "7" and row.metadata == {"team": "a", "who": "ann", "run_id": 7}
    assert row.created_at.tzinfo is not None and row.status == "ok" and row.completion_tokens == 4
    assert SECRET not in row.model_dump_json()
    if store_bodies:
        assert row.prompt_text == "be brief\nhello [REDACTED]" and row.response_text == "hi there"
    else:
        assert row.messages is None and row.prompt_text == "" and row.response_text == ""


async def test_an_error_row_is_the_validated_row() -> None:
    failure = errors.RateLimitError(f"slow down, key {SECRET}", provider="openai")
    row = await _row(_call("hello"), failure)
    assert row == _validated(row)
    assert row.status == "error" and row.error_type == "RateLimitError"
    assert row.error_message is not None and SECRET not in row.error_message


async def test_search_text_is_cut_as_validation_cuts_it() -> None:
    row = await _row(_call("word " * MAX_SEARCH_TEXT), _answer("long " * MAX_SEARCH_TEXT))
    assert row == _validated(row)
    assert len(row.prompt_text or "") == len(row.response_text or "") == MAX_SEARCH_TEXT


def test_a_checked_row_needs_every_field() -> None:
    with pytest.raises(ValueError, match="all"):
        RequestLog.from_checked({"request_id": "req_1"})
