"""Reading what the user types in ``modelyard chat``: prompt_toolkit on a terminal, plain lines otherwise.

A line ending in ``\\`` continues on the next line; ``!multi`` … ``!end`` encloses a block of any lines.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol

PROMPT = "you> "
CONTINUATION = "...> "
MULTI_START = "!multi"
MULTI_END = "!end"


class LineReader(Protocol):
    """Reads one line; raises ``EOFError`` at the end of input and ``KeyboardInterrupt`` on Ctrl-C."""

    def read(self, prompt: str) -> str: ...


class PlainReader:
    """Lines from stdin (pipes and tests); the prompt goes to stdout so transcripts read naturally."""

    def read(self, prompt: str) -> str:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")


class TerminalReader:
    """prompt_toolkit: line editing, and history kept in the data folder across sessions."""

    def __init__(self, history_file: Path | None = None) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        from modelyard.config import data_dir

        path = history_file or data_dir() / "chat_history"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._session: PromptSession[str] = PromptSession(history=FileHistory(str(path)))

    def read(self, prompt: str) -> str:
        return self._session.prompt(prompt)


def make_reader() -> LineReader:
    """prompt_toolkit when both ends are a terminal, plain lines otherwise."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        return TerminalReader()
    return PlainReader()


def read_message(reader: LineReader) -> str:
    """One message: a line, ``\\``-continued lines, or a ``!multi`` … ``!end`` block (raises ``EOFError``)."""
    first = reader.read(PROMPT)
    if first.strip() == MULTI_START:
        lines: list[str] = []
        while (line := reader.read(CONTINUATION)).strip() != MULTI_END:
            lines.append(line)
        return "\n".join(lines)
    lines = [first]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(reader.read(CONTINUATION))
    return "\n".join(lines)
