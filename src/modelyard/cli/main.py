"""The ``modelyard`` command. Each command group lives in its own module; commands parse, call, render."""

from __future__ import annotations

import sys

import typer

from modelyard.cli import prompt_cmd
from modelyard.cli.errors import run_guarded

app = typer.Typer(
    name="modelyard",
    help="One chat API, gateway and workbench over every LLM provider and a local model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("prompt")(prompt_cmd.prompt)


@app.callback()
def _root() -> None:
    """One chat API, gateway and workbench over every LLM provider and a local model.

    Add --debug to any command for a full traceback.
    """


def main() -> None:
    """Entry point: run the app, turning modelyard errors into one readable line and an exit code."""
    sys.exit(run_guarded(app))
