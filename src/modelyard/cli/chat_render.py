"""How ``modelyard chat`` shows answers: streamed live, then rendered as Markdown (plain text when piped)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.spinner import Spinner
from rich.text import Text

from modelyard.cli.render import out
from modelyard.storage.base import Conversation
from modelyard.types.chat import ChatChunk, Message

#: How many earlier messages a resumed conversation shows.
HISTORY_SHOWN = 20


@dataclass
class Answer:
    """A streamed answer once it is complete."""

    text: str = ""
    reasoning: str = ""
    usage: Any = None


def _tail(text: str, height: int) -> str:
    lines = text.splitlines()
    return "\n".join(lines[-max(height - 2, 1) :])


def _live_view(answer: Answer, height: int) -> Group:
    parts: list[Text] = []
    if answer.reasoning:
        parts.append(Text(_tail(answer.reasoning, height // 3), style="dim italic"))
    parts.append(Text(_tail(answer.text, height)))
    return Group(*parts)


def _absorb(answer: Answer, chunk: ChatChunk) -> bool:
    """Add a chunk to the answer; True when it carried visible text."""
    if chunk.usage is not None:
        answer.usage = chunk.usage
    changed = False
    for choice in chunk.choices[:1]:
        if choice.delta.reasoning_content:
            answer.reasoning += choice.delta.reasoning_content
            changed = True
        if choice.delta.content:
            answer.text += choice.delta.content
            changed = True
    return changed


def show_stream(chunks: Iterable[ChatChunk], label: str = "waiting for the answer…") -> Answer:
    """Stream to the terminal (then re-render as Markdown), or as plain text when output is not a terminal."""
    answer = Answer()
    if not out.is_terminal:
        for chunk in chunks:
            before = len(answer.text)
            _absorb(answer, chunk)
            out.out(answer.text[before:], end="")
        out.out()
        return answer
    spinner = Spinner("dots", text=Text(label, style="dim"))
    with Live(spinner, console=out, transient=True, refresh_per_second=15, vertical_overflow="crop") as live:
        for chunk in chunks:
            if _absorb(answer, chunk):
                live.update(_live_view(answer, out.size.height))
    show_answer(answer.text, answer.reasoning)
    return answer


def show_answer(text: str, reasoning: str | None = None) -> None:
    """A finished answer: reasoning dimmed apart, then the text as Markdown."""
    if reasoning:
        out.print(Panel(Text(reasoning, style="dim"), title="reasoning", title_align="left", border_style="dim"))
    out.print(Markdown(text) if out.is_terminal else text)


def show_history(conversation: Conversation, limit: int = HISTORY_SHOWN) -> None:
    """The title and the last messages of a conversation being resumed."""
    title = conversation.title or "(untitled)"
    out.print(Text(f"conversation {conversation.id}: {title} ({len(conversation.messages)} messages)", style="bold"))
    shown = [m for m in conversation.messages if m.role in ("user", "assistant")][-limit:]
    for message in shown:
        _show_message(message)
    if shown:
        out.rule(style="dim")


def _show_message(message: Message) -> None:
    if message.role == "user":
        out.print(Text.assemble(("you> ", "bold cyan"), message.text()))
    else:
        show_answer(message.text(), message.reasoning_content)
