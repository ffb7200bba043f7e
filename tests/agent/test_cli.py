"""``modelyard agent`` through typer's CliRunner: live output, approvals in the terminal, resume, tables.

Each invocation opens its own client (a new gateway on the same database), as separate processes would.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

import modelyard.sdk.sync
from modelyard.cli import agent_cmd
from modelyard.cli.errors import GuardedGroup
from modelyard.providers.fake import FakeReply
from modelyard.sdk.sync import Client
from tests.agent import mcp_server, sample_tools

app = typer.Typer(cls=GuardedGroup, pretty_exceptions_enable=False, rich_markup_mode=None)
app.command("agent")(agent_cmd.agent)


@app.callback()
def _root() -> None:
    """Test root (the real one is cli/main.py)."""


Invoke = Callable[..., Result]
TOOL = "tests.agent.sample_tools"


@pytest.fixture
def replies(monkeypatch: pytest.MonkeyPatch) -> list[FakeReply]:
    """Replies queued on the fake provider of every client the CLI opens."""
    queued: list[FakeReply] = []

    class Scripted(Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.gateway.provider("fake").queue(*queued)
            queued.clear()

    monkeypatch.setattr(modelyard.sdk.sync, "Client", Scripted)
    return queued


@pytest.fixture
def cli() -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, ["agent", *args], input=input, prog_name="modelyard")

    return invoke


def run_id(text: str) -> str:
    found = re.search(r"run_[0-9a-f]{32}", text)
    assert found is not None, text
    return found.group(0)


def test_a_run_with_live_output(cli: Invoke, replies: list[FakeReply]) -> None:
    replies += [FakeReply(text="Adding.", tool_calls=[("add", {"a": 2, "b": 3})]), FakeReply(text="It is 5.")]
    result = cli("-m", "fake/m", "--tool", f"{TOOL}:add", "add 2 and 3")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Adding.\nIt is 5.\n"
    assert "step 1 · fake/m" in result.stderr and "→ add" in result.stderr and "✓ add: 5" in result.stderr
    assert re.search(r"run run_\w+: 2 steps, 1 tool calls, \d+ tokens, \$0", result.stderr)


def test_tools_from_a_file_path_and_json_output(cli: Invoke, replies: list[FakeReply]) -> None:
    replies += [FakeReply(tool_calls=[("broken", {"reason": "x"})]), FakeReply(text="oops")]
    path = pathlib.Path(sample_tools.__file__)
    result = cli("-m", "fake/m", "--tool", f"{path}:TOOLS", "--json", "-o", "temperature=0", "go")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stop_reason"] == "final_answer" and data["text"] == "oops"
    assert data["steps"][0]["calls"][0]["output"] == "error: RuntimeError: broken: x"
    assert "step 1" not in result.stderr  # --json: no live output


def test_pause_then_resume_in_a_new_process(cli: Invoke, replies: list[FakeReply]) -> None:
    replies += [FakeReply(tool_calls=[("delete_file", {"path": "/tmp/x"}), ("add", {"a": 1})])]
    paused = cli("-m", "fake/m", "--tool", f"{TOOL}:delete_file", "--tool", f"{TOOL}:add", "--no-ask", "clean")
    assert paused.exit_code == 0, paused.output
    assert "paused: run" in paused.stderr and "delete_file (call_fake0)" in paused.stderr
    rid = run_id(paused.stderr)
    missing = cli("--resume", rid, "--approve", "all")
    assert (
        missing.exit_code == 2 and f"it was started with: --tool {TOOL}:delete_file --tool {TOOL}:add" in missing.stderr
    )
    replies += [FakeReply(text="cleaned")]
    done = cli("--resume", rid, "--tool", f"{TOOL}:delete_file", "--tool", f"{TOOL}:add", "--approve", "all")
    assert done.exit_code == 0, done.output
    assert "✓ delete_file: deleted /tmp/x" in done.stderr and done.stdout.strip() == "cleaned"


def test_deny_on_resume_and_the_runs_table(cli: Invoke, replies: list[FakeReply]) -> None:
    replies += [FakeReply(tool_calls=[("delete_file", {"path": "/"})])]
    paused = cli("-m", "fake/m", "--tool", f"{TOOL}:delete_file", "--no-ask", "wipe")
    rid = run_id(paused.stderr)
    replies += [FakeReply(text="ok, not deleting")]
    done = cli("--resume", rid, "--tool", f"{TOOL}:delete_file", "--deny", "call_fake0=never the root")
    assert done.exit_code == 0 and "✗ delete_file: error: the user denied this call: never the root" in done.stderr
    table = cli("--runs")
    assert table.exit_code == 0 and rid in table.stdout and "completed" in table.stdout


def test_terminal_approval_with_an_mcp_server(cli: Invoke, replies: list[FakeReply]) -> None:
    replies += [
        FakeReply(tool_calls=[("shout", {"text": "hi"}), ("add", {"a": 1, "b": 2})]),
        FakeReply(text="HI and 3"),
    ]
    command = f"{sys.executable} {mcp_server.__file__}"
    result = cli("-m", "fake/m", "--mcp", command, "--confirm", "shout", "--ask", "go", input='e\n{"text": "yo"}\n')
    assert result.exit_code == 0, result.output
    assert "approve shout" in result.stderr and "✓ shout: YO" in result.stderr and "✓ add: 3" in result.stderr
    log = pathlib.Path(os.environ["XDG_DATA_HOME"]) / "modelyard" / "mcp-servers.log"
    assert log.exists()  # the server's stderr went to the log, not over the display
    metrics = cli("--metrics")
    assert metrics.exit_code == 0 and "fake/m" in metrics.stdout and "100%" in metrics.stdout


def test_the_local_model_cannot_call_tools(cli: Invoke) -> None:
    result = cli("-m", "local/smollm2", "--tool", f"{TOOL}:add", "add")
    assert result.exit_code == 2
    assert "the local model does not support tool calling" in result.stderr


def test_caps_are_reported(cli: Invoke, replies: list[FakeReply]) -> None:
    replies += [FakeReply(tool_calls=[("add", {"a": 1})]), FakeReply(tool_calls=[("add", {"a": 1})])]
    result = cli("-m", "fake/m", "--tool", f"{TOOL}:add", "--max-steps", "1", "loop")
    assert result.exit_code == 0
    assert "stopped: the step cap (1) was reached" in result.stderr and "--resume run_" in result.stderr


def test_usage_errors(cli: Invoke) -> None:
    assert cli("-m", "fake/m").exit_code == 2
    bad = cli("-m", "fake/m", "--tool", "no_such_module:thing", "x")
    assert bad.exit_code == 2 and "cannot load 'no_such_module:thing'" in bad.output
    assert cli("-m", "fake/m", "--tool", "nocolon", "x").exit_code == 2
    assert cli("--resume", "run_x", "--edit", "call_1=[1]").exit_code == 2
    unknown = cli("--resume", "run_missing")
    assert unknown.exit_code == 2 and "no agent run 'run_missing'" in unknown.stderr
