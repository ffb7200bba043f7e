"""Tool definitions: JSON schema from type hints and docstrings, pydantic arguments, raw OpenAI JSON."""

from __future__ import annotations

import asyncio
import time

import pytest

from modelyard import errors
from modelyard.agent import AgentTool, FunctionTool, JSONTool, tool, tool_from_openai
from modelyard.agent.calls import check_call, run_call
from modelyard.agent.schema import FunctionSignature, parse_docstring
from modelyard.agent.tools import index_tools, render_output, split_tools
from modelyard.types.chat import FunctionCall, ToolCall
from tests.agent import sample_tools


def call(name: str, arguments: str, call_id: str = "c1") -> ToolCall:
    return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))


def test_schema_from_hints_and_google_docstring() -> None:
    add = FunctionTool(sample_tools.add)
    assert add.name == "add" and add.description == "Add two integers."
    assert add.parameters == {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "The first number."},
            "b": {"type": "integer", "description": "The second number.", "default": 0},
        },
        "required": ["a"],
        "additionalProperties": False,
    }
    definition = add.definition().model_dump(exclude_none=True)
    assert definition["type"] == "function" and definition["function"]["name"] == "add"


def test_pydantic_model_enum_literal_and_numpy_docstring() -> None:
    order = FunctionTool(sample_tools.order_pizza)
    schema = order.parameters
    assert schema["required"] == ["pizza", "address"]
    assert schema["properties"]["address"]["description"] == "Where to deliver it."
    assert schema["properties"]["speed"]["enum"] == ["normal", "express"]
    assert schema["properties"]["pizza"]["$ref"] == "#/$defs/Pizza"
    pizza = schema["$defs"]["Pizza"]
    assert pizza["properties"]["topping"]["description"] == "One topping."
    assert schema["$defs"]["Size"]["enum"] == ["small", "large"]


def test_docstring_styles() -> None:
    google = parse_docstring(
        "Do it.\n\nArgs:\n    x (int): the x\n        spanning lines\n    y: the y\n\nReturns:\n    z\n"
    )
    assert google == ("Do it.", {"x": "the x spanning lines", "y": "the y"})
    sphinx = parse_docstring("Do it.\n\n:param x: the x\n:param str y: the y\n:returns: z\n")
    assert sphinx == ("Do it.", {"x": "the x", "y": "the y"})
    numpy = parse_docstring("Do it.\n\nParameters\n----------\nx : int\n    the x\ny\n    the y\n")
    assert numpy == ("Do it.", {"x": "the x", "y": "the y"})
    assert parse_docstring(None) == ("", {})


def test_positional_only_and_untyped_arguments() -> None:
    def f(a, /, b: str = "x", *args: int, **kwargs: int) -> str:  # type: ignore[no-untyped-def]
        return f"{a}{b}"

    signature = FunctionSignature.of(f)
    assert set(signature.schema["properties"]) == {"a", "b"}
    assert signature.bind({"a": 1}) == ([1], {})
    assert signature.bind({"a": 1, "b": "y"}) == ([1], {"b": "y"})


def test_decorator_keeps_the_function_callable() -> None:
    @tool(name="double", requires_approval=True, timeout=3)
    def twice(n: int) -> int:
        """Double it."""
        return n * 2

    assert isinstance(twice, FunctionTool)
    assert twice(4) == 8 and twice.name == "double" and twice.timeout == 3
    assert twice.needs_approval({"n": 1})
    assert not FunctionTool(sample_tools.add).needs_approval({})
    assert sample_tools.pay.needs_approval({"amount": 500, "to": "x"})
    assert not sample_tools.pay.needs_approval({"amount": 5, "to": "x"})


async def test_sync_and_async_tools_run_and_sync_ones_do_not_block_the_loop() -> None:
    tools = index_tools([FunctionTool(sample_tools.blocking_echo), FunctionTool(sample_tools.slow_echo)])
    started = time.monotonic()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    records = await asyncio.gather(
        run_call(check_call(call("blocking_echo", '{"text": "a", "seconds": 0.3}'), tools), 5),
        run_call(check_call(call("slow_echo", '{"text": "b", "seconds": 0.3}', "c2"), tools), 5),
    )
    ticking.cancel()
    assert [r.output for r in records] == ["a", "b"] and all(r.ok for r in records)
    assert time.monotonic() - started < 0.55  # both ran at once
    assert ticks >= 5  # the loop kept turning while the sync tool slept


async def test_pydantic_arguments_arrive_as_models() -> None:
    tools = index_tools([FunctionTool(sample_tools.order_pizza)])
    arguments = '{"pizza": {"topping": "basil", "size": "large"}, "address": "1 Main St"}'
    record = await run_call(check_call(call("order_pizza", arguments), tools), 5)
    assert record.ok, record.error
    assert '"size":"large"' in record.output and '"speed":"normal"' in record.output


def test_raw_openai_json_tool() -> None:
    definition = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Find a record.",
            "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
        },
    }
    answered = tool_from_openai(definition)
    handled = tool_from_openai(definition["function"], handler=lambda key: {"key": key})
    assert not answered.executable and handled.executable
    assert handled.definition().model_dump(exclude_none=True) == definition
    assert handled.check({"key": 3}) == ["key: 3 is not of type 'string'"]
    with pytest.raises(errors.BadRequestError):
        JSONTool({"type": "function", "function": {"parameters": {}}})


def test_split_and_index_tools() -> None:
    found, sources = split_tools([sample_tools.add, {"name": "raw"}, sample_tools.delete_file])
    assert [t.name for t in found] == ["add", "raw", "delete_file"] and sources == []
    assert isinstance(found[1], JSONTool) and found[1].parameters == {"type": "object", "properties": {}}
    with pytest.raises(errors.BadRequestError, match="two tools are named 'add'"):
        index_tools([FunctionTool(sample_tools.add), FunctionTool(sample_tools.add)])
    with pytest.raises(errors.BadRequestError, match="not a tool"):
        split_tools([42])  # type: ignore[list-item]


def test_render_output() -> None:
    assert render_output("x") == "x" and render_output(None) == "(no output)"
    assert render_output({"a": (1, 2)}) == '{"a":[1,2]}'
    assert render_output(sample_tools.Pizza(topping="x")) == '{"topping":"x","size":"small","quantity":1}'
    assert render_output("y" * 20, limit=5).startswith("yyyyy\n[output cut at 5 of 20")


def test_custom_tool_subclass() -> None:
    class Clock(AgentTool):
        async def invoke(self, arguments: dict[str, object]) -> str:
            return "noon"

    clock = Clock("clock", "What time is it")
    assert clock.parameters == {"type": "object", "properties": {}} and clock.check({}) == []
