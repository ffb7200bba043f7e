"""The CLI reference (docs/cli.md), generated from the ``--help`` of every command so it cannot drift."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
import typer.main
from typer.testing import CliRunner

#: Wide enough that click's 100-column limit decides the layout, whatever the terminal.
_ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}

HEADER = """# Command-line reference

Generated from `modelyard --help` by `scripts/cli_help.py`; do not edit by hand
(`python scripts/cli_help.py` rewrites it, `python scripts/cli_help.py --check` fails when it is stale).
"""


def command_paths(app: typer.Typer) -> Iterator[list[str]]:
    """Every command and group, depth first, in the order ``--help`` lists them."""
    root = typer.main.get_command(app)

    def walk(command: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        list_commands = getattr(command, "list_commands", None)
        if list_commands is None:
            return
        context = root.make_context("modelyard", [], resilient_parsing=True)
        for name in list_commands(context):
            yield from walk(command.get_command(context, name), [*path, name])

    yield from walk(root, [])


def help_text(app: typer.Typer, path: list[str]) -> str:
    """What ``modelyard PATH --help`` prints."""
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="modelyard", env=_ENV)
    if result.exit_code != 0:
        raise RuntimeError(f"modelyard {' '.join(path)} --help failed: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def render(app: typer.Typer) -> str:
    """The whole reference as Markdown."""
    sections = [HEADER]
    for path in command_paths(app):
        title = " ".join(["modelyard", *path])
        sections.append(f"## `{title}`\n\n```text\n{help_text(app, path)}\n```\n")
    return "\n".join(sections)


def reference_path(root: Path) -> Path:
    return root / "docs" / "cli.md"


README_START = "<!-- cli-help:start -->"
README_END = "<!-- cli-help:end -->"


def readme_section(app: typer.Typer) -> str:
    """The README's CLI section: ``modelyard --help`` and a pointer to the full reference."""
    return (
        f"{README_START}\n```text\n$ modelyard --help\n{help_text(app, [])}\n```\n\n"
        "Every command's options: [docs/cli.md](docs/cli.md) (generated from `--help`).\n"
        f"{README_END}"
    )


def with_readme_section(readme: str, section: str) -> str:
    """``readme`` with the text between the CLI markers replaced by ``section``."""
    start, end = readme.index(README_START), readme.index(README_END) + len(README_END)
    return readme[:start] + section + readme[end:]
