"""Help for every command, the generated reference, exit codes, error lines and option parsing."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer

from modelyard import errors
from modelyard.cli import help_doc
from modelyard.cli.errors import EXIT_CODES, describe, exit_code_for, run_guarded
from modelyard.cli.main import app
from modelyard.cli.options import parse_future, parse_key_values, parse_text_values, parse_when, split_csv
from modelyard.cli.suggest import close_names
from tests.cli.conftest import Invoke

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [path for path in help_doc.command_paths(app) if path]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_complete_help(local_cli: Invoke, path: list[str]) -> None:
    result = local_cli(*path, "--help")
    assert result.exit_code == 0, result.output
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    assert (command.help or "").strip(), f"modelyard {' '.join(path)} has no description"
    undocumented = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()]
    assert undocumented == [], f"modelyard {' '.join(path)}: no help for {undocumented}"


def test_root_help_documents_the_exit_codes(local_cli: Invoke) -> None:
    result = local_cli("--help")
    assert "Exit codes:" in result.stdout
    for code, meaning in EXIT_CODES.items():
        assert f"{code:>3}  {meaning}" in result.stdout
    assert local_cli("--version").stdout.startswith("modelyard ")


def test_the_committed_reference_matches_the_help() -> None:
    committed = help_doc.reference_path(ROOT).read_text(encoding="utf-8")
    assert committed == help_doc.render(app), "docs/cli.md is stale: run python scripts/cli_help.py"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert help_doc.readme_section(app) in readme, "README's CLI section is stale: run python scripts/cli_help.py"


def test_the_script_checks_the_reference() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_help.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_exit_codes_by_error_kind() -> None:
    assert exit_code_for(errors.ConfigError("x")) == 3
    assert exit_code_for(errors.NotFoundError("x")) == 2
    assert exit_code_for(errors.BadRequestError("x")) == 2
    assert exit_code_for(errors.RateLimitError("x")) == 4
    assert exit_code_for(errors.ServiceUnavailableError("x")) == 4


def test_error_lines_say_where_once() -> None:
    line = describe(errors.RateLimitError("slow down\nplease", provider="openai", model="gpt-4o"))
    assert line == "slow down please (openai/gpt-4o)"
    assert describe(errors.ConfigError("no key for 'openai'", provider="openai")) == "no key for 'openai'"


def test_close_names() -> None:
    ids = ["openai/gpt-4o", "openai/gpt-4o-mini", "local/smollm2", "fake/echo"]
    providers = ["openai", "local", "fake", "anthropic"]
    assert close_names("openai/gpt4o", ids, providers)[0] == "openai/gpt-4o"
    assert close_names("opneai/gpt-4o", ids, providers)[0] == "openai/gpt-4o"
    assert close_names("local", ids, providers) == ["local/smollm2"]
    assert close_names("zzz/qqq", ids, providers) == []


def test_run_guarded_accepts_debug_anywhere(
    local_cli: Invoke, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    args = ["prompt", "-m", "fake/echo", "--cid", "conv_missing", "hi"]
    assert run_guarded(app, args) == 2
    assert "error: no conversation 'conv_missing'" in capsys.readouterr().err
    with pytest.raises(errors.NotFoundError):
        run_guarded(app, [*args, "--debug"])


def test_unexpected_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, local_cli: Invoke) -> None:
    import modelyard.cli.models_cmd as models_cmd

    def boom(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(models_cmd, "open_client", boom)
    result = local_cli("models")
    assert result.exit_code == 1
    assert result.stderr == "error: RuntimeError: disk on fire (run with --debug for details)\n"


def test_option_parsing() -> None:
    assert parse_key_values(["a=1", "b=x", "c=[1,2]", "d=true"]) == {"a": 1, "b": "x", "c": [1, 2], "d": True}
    assert parse_text_values(["n=10", "s=a=b"]) == {"n": "10", "s": "a=b"}
    with pytest.raises(typer.BadParameter):
        parse_key_values(["novalue"])
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert parse_when("90m", now=now) == now - timedelta(minutes=90)
    assert parse_when("2w", now=now) == now - timedelta(weeks=2)
    assert parse_when("2025-01-31T10:00:00+00:00") == datetime(2025, 1, 31, 10, tzinfo=UTC)
    assert parse_when("today", now=now) is not None and parse_when(None) is None
    expiry = parse_future("30d")
    assert expiry is not None and expiry > datetime.now(UTC) + timedelta(days=29)
    assert split_csv(["a,b", " c ", ""]) == ["a", "b", "c"]
