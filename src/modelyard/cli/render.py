"""Rendering shared by CLI commands: consoles, JSON output, numbers, usage lines."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from rich.console import Console

T = TypeVar("T")

#: No console markup: text from models, users and logs is printed as it is.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def print_json(data: Any) -> None:
    """Machine-readable JSON on stdout (indented, pydantic models and datetimes included)."""
    text = orjson.dumps(data, default=_default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_wide(renderable: Any, width: int = 140) -> None:
    """A wide table: the terminal's width on a terminal, at least ``width`` columns when piped."""
    if out.is_terminal:
        out.print(renderable)
    else:
        Console(file=sys.stdout, width=max(out.width, width), highlight=False, markup=False).print(renderable)


def money(value: float | None) -> str:
    """A cost in USD: ``-`` when unknown, more decimals for tiny amounts."""
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    return f"${value:.6f}" if abs(value) < 0.01 else f"${value:.4f}"


def number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if digits else f"{round(value):,}"


def when(value: datetime | None) -> str:
    """A timestamp in local time, to the second."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def usage_line(usage: Any, info: Any, conversation_id: str | None = None) -> str:
    """``usage: N prompt + M completion tokens, cost $X via model`` (and the conversation it went to)."""
    if usage is None:
        text = "usage: not reported"
    else:
        text = f"usage: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
    if info is not None and info.cost is not None:
        text += f", cost {money(info.cost)}"
    if info is not None and info.served_model:
        text += f" via {info.served_model}"
    if conversation_id:
        text += f" (conversation {conversation_id})"
    return text


def waiting_label(model: str | None) -> str:
    """What a spinner says while a model has not answered yet."""
    name = model or "the default model"
    if name.startswith("local/"):
        return f"waiting for {name} (the first answer loads the model)…"
    return f"waiting for {name}…"


def until_first(items: Iterable[T], label: str) -> Iterator[T]:
    """Yield from ``items`` with a spinner on stderr (on a terminal) until the first one arrives."""
    status = err.status(label) if err.is_terminal else None
    if status is not None:
        status.start()
    try:
        for item in items:
            if status is not None:
                status.stop()
                status = None
            yield item
    finally:
        if status is not None:
            status.stop()
