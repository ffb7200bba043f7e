"""``modelyard chat``: the REPL through pipes (CliRunner) and for real in a pseudo-terminal (pexpect)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from modelyard.cli.chat_input import read_message
from modelyard.sdk.sync import Client
from tests.cli.conftest import Invoke, Target, conversation_id


class Lines:
    """A ``LineReader`` over a list of lines."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        self.prompts: list[str] = []

    def read(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.lines:
            raise EOFError
        return self.lines.pop(0)


def test_multi_line_input() -> None:
    assert read_message(Lines("one line")) == "one line"
    assert read_message(Lines("first \\", "second\\", "third")) == "first \nsecond\nthird"
    block = Lines("!multi", "a", "", "  b", "!end", "after")
    assert read_message(block) == "a\n\n  b"
    assert block.lines == ["after"]
    with pytest.raises(EOFError):
        read_message(Lines("!multi", "never closed"))


def test_chat_session_commands(cli: Invoke, client: Client) -> None:
    script = "\n".join(
        [
            "hello **world**",
            "/usage",
            "line one \\",
            "line two",
            "/save my title",
            "/system Be terse.",
            "/retry",
            "/cost",
            "/bogus",
            "/help",
            "/exit",
            "never sent",
        ]
    )
    result = cli("chat", "-m", "fake/echo", input=script + "\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "hello **world**" in out
    assert "this session: 1 turns, 2 prompt + 2 completion tokens" in out
    assert "line one \nline two" in out
    assert "unknown command /bogus" in result.stderr
    assert "/retry" in out and "!multi" in out  # the help table
    assert "never sent" not in out
    saved = client.conversation(conversation_id(out))
    assert saved is not None and saved.title == "my title" and saved.system_prompt == "Be terse."
    assert [m.text() for m in saved.messages] == ["hello **world**"] * 2 + ["line one \nline two"] * 2


def test_fork_reset_load_and_model(cli: Invoke, client: Client) -> None:
    first = cli("chat", "-m", "fake/echo", input="first question\n/save origin\n")
    origin = conversation_id(first.stdout)
    script = f"/load {origin}\n/fork\nsecond question\n/model fake/other\n/reset\nthird\n/save fresh\n"
    result = cli("chat", "-m", "fake/echo", input=script)
    assert result.exit_code == 0, result.output
    assert "first question" in result.stdout  # /load shows the history
    forked = re.search(r"into (conv_[0-9a-f]{32})", result.stdout)
    assert forked is not None
    copy = client.conversation(forked.group(1))
    kept = client.conversation(origin)
    assert copy is not None and kept is not None
    assert [m.text() for m in copy.messages] == ["first question"] * 2 + ["second question"] * 2
    assert len(kept.messages) == 2
    fresh = client.conversation(conversation_id(result.stdout.split("model: fake/other")[1]))
    assert fresh is not None and fresh.title == "fresh" and fresh.model == "fake/other"


def test_template_in_chat_and_errors_keep_the_session(cli: Invoke) -> None:
    cli("templates", "new", "shout", "-p", "SHOUT: {{ input }}")
    script = "/template shout\nquiet words\n/template\n/model nope/x\nstill here\n/model fake/echo\nback\n"
    result = cli("chat", "-m", "fake/echo", input=script)
    assert result.exit_code == 0, result.output
    assert "SHOUT: quiet words" in result.stdout
    assert "error: unknown provider 'nope'" in result.stderr
    assert "back" in result.stdout


def test_unknown_conversation(cli: Invoke) -> None:
    result = cli("chat", "--cid", "conv_missing", input="")
    assert result.exit_code == 2
    assert "no conversation 'conv_missing'" in result.stderr


@pytest.fixture
def terminal_env(config_dir: Path, target: Target) -> dict[str, str]:
    """The child's environment; in server mode it reaches the live server through MODELYARD_SERVER."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", COLUMNS="100", LINES="40", NO_COLOR="1")
    if target.remote:
        env["MODELYARD_SERVER"] = target.start().url
    return env


def _spawn(args: list[str], env: dict[str, str]) -> Any:
    pexpect = pytest.importorskip("pexpect")
    command = str(Path(sys.executable).parent / "modelyard")
    return pexpect.spawn(command, args, env=env, encoding="utf-8", timeout=30, dimensions=(40, 100))


def test_repl_in_a_real_terminal_saves_and_resumes(terminal_env: dict[str, str]) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = _spawn(["chat", "-m", "fake/echo"], terminal_env)
    child.expect("you>")
    child.sendline("hello from a terminal")
    child.expect("hello from a terminal")  # the line as typed
    child.expect("hello from a terminal")  # the streamed answer, then rendered as Markdown
    child.expect("you>")
    child.sendline("/save my title")
    child.expect(r"conv_[0-9a-f]{32}")
    cid = child.after
    child.expect("you>")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    resumed = _spawn(["chat", "--cid", cid], terminal_env)
    resumed.expect("my title")
    resumed.expect("hello from a terminal")  # the history is shown
    resumed.expect("you>")
    resumed.sendline("/usage")
    resumed.expect(f"conversation {cid}: 2 messages, model fake/echo")
    resumed.expect("you>")
    resumed.sendeof()
    resumed.expect(pexpect.EOF)
    resumed.close()
    assert resumed.exitstatus == 0
