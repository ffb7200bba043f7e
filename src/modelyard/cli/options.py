"""Parsing helpers shared by CLI commands."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
import typer

_RELATIVE = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

PromptArgument = Annotated[str | None, typer.Argument(metavar="TEXT", help="The prompt; read from stdin when piped.")]
ModelOption = Annotated[str | None, typer.Option("-m", "--model", metavar="MODEL", help="provider/model or alias.")]
SystemOption = Annotated[str | None, typer.Option("-s", "--system", metavar="TEXT", help="System prompt.")]
ParamsOption = Annotated[
    list[str] | None, typer.Option("-o", "--option", metavar="KEY=VALUE", help="Model parameter key=value (repeat it).")
]

WHEN_HELP = "ISO date/time (2025-01-31, 2025-01-31T12:00) or a time ago: 30m, 24h, 7d, 2w, today, yesterday."


def parse_key_values(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are parsed as JSON when they can be (numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        try:
            out[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key] = value
    return out


def parse_text_values(pairs: list[str]) -> dict[str, str]:
    """``key=value`` pairs kept as text (template variables)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        out[key] = value
    return out


def parse_when(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """A point in time from a CLI option (UTC-aware); naive ISO times are local time."""
    if text is None or not text.strip():
        return None
    value = text.strip().lower()
    now = now or datetime.now(UTC)
    if value in ("today", "yesterday"):
        midnight = now.astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - timedelta(days=1 if value == "yesterday" else 0)).astimezone(UTC)
    match = _RELATIVE.match(value)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"cannot read {text!r} as a time: use {WHEN_HELP}") from None
    return (parsed.astimezone() if parsed.tzinfo is None else parsed).astimezone(UTC)


def parse_future(text: str | None) -> datetime | None:
    """A time from now (``30d``) or an ISO date, for expiries."""
    if text is None:
        return None
    match = _RELATIVE.match(text.strip().lower())
    if match:
        return datetime.now(UTC) + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return parse_when(text)


def split_csv(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated option values as one list."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
