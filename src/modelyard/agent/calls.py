"""Check and run the tool calls of one step: parse and validate the arguments, run the calls concurrently,
each under its timeout, and turn every failure into a tool message the model can react to — never a crash.

Example::

    checked = [check_call(call, tools) for call in message.tool_calls]
    async for record in run_calls([c for c in checked if c.runnable], default_timeout=30):
        print(record.name, record.ok, record.output)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from modelyard.agent.state import Decision, ErrorKind, PendingCall, ToolCallRecord
from modelyard.agent.tools import AgentTool, ToolError, render_output
from modelyard.types.chat import ToolCall

MAX_PROBLEMS = 5


@dataclass
class CheckedCall:
    """A tool call with its tool and parsed arguments, or the reason it cannot run."""

    call: ToolCall
    tool: AgentTool | None
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_kind: ErrorKind | None = None

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def runnable(self) -> bool:
        return self.valid and self.tool is not None and self.tool.executable

    def pending(self, step: int) -> PendingCall:
        assert self.tool is not None
        return PendingCall(
            call_id=self.call.id,
            name=self.tool.name,
            arguments=self.arguments,
            raw_arguments=self.call.function.arguments,
            step=step,
            answer_only=not self.tool.executable,
            description=self.tool.description,
        )

    def refused(self) -> ToolCallRecord:
        """The record of a call that could not run (unknown tool, bad arguments)."""
        return ToolCallRecord(
            call_id=self.call.id,
            name=self.call.function.name,
            arguments=self.call.function.arguments,
            parsed=self.arguments or None,
            output=f"error: {self.error}",
            error=self.error,
            error_kind=self.error_kind,
        )


def parse_arguments(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(arguments, None)`` or ``(None, why not)``: empty text is ``{}``; anything but a JSON object fails."""
    if not raw.strip():
        return {}, None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"the arguments are not valid JSON ({exc}); send a JSON object"
    if not isinstance(value, dict):
        return None, f"the arguments must be a JSON object, not {type(value).__name__}"
    return value, None


def check_call(call: ToolCall, tools: Mapping[str, AgentTool]) -> CheckedCall:
    """Find the tool and validate the arguments against its JSON schema."""
    tool = tools.get(call.function.name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        return CheckedCall(
            call, None, error=f"unknown tool {call.function.name!r} (tools: {known})", error_kind="unknown_tool"
        )
    arguments, problem = parse_arguments(call.function.arguments)
    if arguments is None:
        return CheckedCall(call, tool, error=problem, error_kind="invalid_json")
    return _validated(CheckedCall(call, tool, arguments))


def _validated(checked: CheckedCall) -> CheckedCall:
    assert checked.tool is not None
    problems = checked.tool.check(checked.arguments)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS])
        checked.error = f"the arguments do not match the schema of {checked.tool.name!r}: {shown}"
        checked.error_kind = "invalid_arguments"
    return checked


def apply_decision(checked: CheckedCall, decision: Decision) -> tuple[CheckedCall, ToolCallRecord | None]:
    """A decided call: ready to run (approved / edited), or already answered (denied / responded)."""
    if decision.action == "edit":
        edited = CheckedCall(checked.call, checked.tool, dict(decision.arguments or {}))
        return _validated(edited), None
    if decision.action == "approve":
        return checked, None
    record = ToolCallRecord(
        call_id=checked.call.id,
        name=checked.call.function.name,
        arguments=checked.call.function.arguments,
        parsed=checked.arguments,
        valid=True,
    )
    if decision.action == "respond":
        record.output, record.ok, record.decision = decision.output or "", True, "answered"
        return checked, record
    reason = f": {decision.reason}" if decision.reason else ""
    record.output = f"error: the user denied this call{reason}"
    record.error, record.error_kind, record.decision = f"denied{reason}", "denied", "denied"
    return checked, record


async def run_call(checked: CheckedCall, default_timeout: float | None) -> ToolCallRecord:
    """Run one valid call under its timeout; every failure becomes an error record."""
    tool = checked.tool
    assert tool is not None and checked.valid
    timeout = tool.timeout if tool.timeout is not None else default_timeout
    record = ToolCallRecord(
        call_id=checked.call.id,
        name=tool.name,
        arguments=checked.call.function.arguments,
        parsed=checked.arguments,
        valid=True,
        executed=True,
    )
    started = time.monotonic()
    try:
        value = await asyncio.wait_for(tool.invoke(checked.arguments), timeout)
    except TimeoutError:
        _fail(record, f"tool {tool.name!r} timed out after {timeout:g} s", "timeout")
    except ToolError as exc:
        _fail(record, str(exc) or type(exc).__name__, "tool_error")
    except ValidationError as exc:
        record.valid, record.executed = False, False
        _fail(record, f"the arguments do not fit {tool.name!r}: {_first_errors(exc)}", "invalid_arguments")
    except Exception as exc:
        _fail(record, f"{type(exc).__name__}: {exc}", "exception")
    else:
        record.ok, record.output = True, render_output(value)
    record.duration_ms = round((time.monotonic() - started) * 1000, 3)
    return record


def _fail(record: ToolCallRecord, message: str, kind: ErrorKind) -> None:
    record.error, record.error_kind, record.output = message, kind, f"error: {message}"


def _first_errors(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts[:MAX_PROBLEMS])


async def run_calls(
    calls: Sequence[CheckedCall], default_timeout: float | None, deadline: float | None = None
) -> AsyncGenerator[ToolCallRecord, None]:
    """Run the calls concurrently; yield each record as it finishes. Calls still running at ``deadline`` (the
    run's time cap) are cancelled and reported as timed out; so are all of them if the consumer stops early."""
    tasks = {asyncio.ensure_future(run_call(c, default_timeout)): c for c in calls}
    waiting = set(tasks)
    try:
        while waiting:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            done, waiting = await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=list(tasks).index):
                yield task.result()
            if not done:
                for task in sorted(waiting, key=list(tasks).index):
                    task.cancel()
                    yield _cut(tasks[task])
                waiting = set()
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _cut(checked: CheckedCall) -> ToolCallRecord:
    record = ToolCallRecord(
        call_id=checked.call.id,
        name=checked.call.function.name,
        arguments=checked.call.function.arguments,
        parsed=checked.arguments,
        valid=True,
        executed=True,
    )
    _fail(record, "the run's time cap was reached before this call finished", "timeout")
    return record
