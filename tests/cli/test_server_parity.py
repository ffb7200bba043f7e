"""The same commands in-process and with ``--server`` print the same thing (ids, times and timings aside).

One scripted session runs twice, each in fresh config and data folders: once in-process, once against a live
server. Every command's exit code, stdout and stderr are normalised (ids, timestamps, latencies, paths masked;
tables with their digits masked and their layout collapsed, since column widths follow the values) and compared.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import Result

from tests.cli.conftest import Target, write_config

#: Values that differ between any two runs, and what they become.
MASKS = [
    (re.compile(r"conv_[0-9a-f]{32}"), "<conversation>"),
    (re.compile(r"vk_[0-9a-f]{32}"), "<key id>"),
    (re.compile(r"sk-my-[A-Za-z0-9_-]{6,}"), "<key>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<request id>"),
    (re.compile(r"chatcmpl-[0-9a-zA-Z]+"), "<completion id>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"\b\d\d-\d\d \d\d:\d\d:\d\d\b"), "<time>"),
    (re.compile(r"latency [\d,.]+ ms \(first token [\d,.-]+ ms\)"), "<latency>"),
    (re.compile(r"[\d,.-]+ tok/s"), "<tok/s>"),
    (re.compile(r'(latency_ms|ttft_ms|created)(""|")?:\s?[\d.]+'), r"\1\2:0"),  # inside JSON text (CSV columns)
]

#: JSON fields that are timings, random or per-run by nature.
VOLATILE = {"latency_ms", "ttft_ms", "p50_latency_ms", "p95_latency_ms", "tokens_per_second", "created", "key_hash"}
VOLATILE |= {"prefix"}

#: Where a server does not report what the in-process gateway does, masked on both sides:
#: ``prompt --json``: a server answers with the requested model name (what OpenAI clients match on) where the
#: in-process response keeps the upstream's, and sends no cost source (only ``x-modelyard-cost``).
RESPONSE_GAPS = {"model", "cost_source"}


def mask(text: str, target: Target, root: Path) -> str:
    text = text.replace(str(root), "<folder>")
    if target.server is not None:
        text = text.replace(target.server.url, "<server>")
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in VOLATILE and k != "stream_options"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def as_json(text: str) -> Any:
    """JSON output (or JSON lines) without its volatile fields."""
    lines = text.splitlines() if not text.lstrip().startswith(("[", "{\n")) else [text]
    return _clean([orjson.loads(line) for line in lines if line.strip()])


def as_table(text: str) -> str:
    """A rich table with digits masked and its layout (borders, padding) collapsed."""
    text = re.sub(r"\d+", "9", text)
    text = re.sub(r"[─━│┃┏┓┗┛┡┩┢┪└┘┌┐├┤┬┴┼╇╈╋═╭╮╰╯▕▏]+", " ", text)
    return " ".join(text.split())


def as_csv(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{k: v for k, v in row.items() if k not in VOLATILE and k != "params"} for row in rows]


Render = Callable[[str], Any]


class Session:
    """Runs commands on one target and keeps what each printed, normalised."""

    def __init__(self, target: Target, root: Path) -> None:
        self.target, self.root = target, root
        self.seen: list[tuple[str, int, Any, Any]] = []

    def run(self, *args: str, input: str | None = None, out: Render = str, error: Render = str) -> Result:
        result = self.target.invoke(*args, input=input)
        stdout, stderr = (mask(text, self.target, self.root) for text in (result.stdout, result.stderr))
        label = mask(" ".join(args), self.target, self.root)
        self.seen.append((label, result.exit_code, out(stdout), error(stderr)))
        return result


def scenario(s: Session) -> None:
    """Every command group, with its output forms and errors."""
    s.run("prompt", "-m", "fake/echo", "apples and pears", "-u")
    s.run("prompt", "-c", "bananas", "-u")
    s.run("prompt", "--json", "-m", "fake/echo", "whole response", out=lambda t: _without(as_json(t), RESPONSE_GAPS))
    s.run("prompt", "--no-stream", "-m", "fake/echo", "not streamed", "-u")
    s.run("prompt", "-m", "fakee/echo", "typo")
    s.run("prompt", "-m", "openai/gpt-4o-mini", "no key")
    s.run("prompt", "--cid", "conv_missing", "lost")
    s.run("compare", "-m", "fake/echo", "-m", "fake/other", "plums", "--json", out=lambda t: _no_cost(as_json(t)))
    s.run("chat", "-m", "fake/echo", input="hello\n/usage\n/save first chat\n/cost\n/retry\n/exit\n")
    s.run("logs", "list", "--json", out=as_json)
    s.run("logs", "list", out=as_table)
    found = orjson.loads(s.run("logs", "search", "bananas", "--json", out=as_json).stdout)
    s.run("logs", "show", found[0]["request_id"], out=as_table)
    s.run("logs", "show", found[0]["request_id"], "--json", out=as_json)
    s.run("logs", "list", "--tag", "compare", "--json", out=as_json)
    s.run("logs", "export", out=as_json)
    s.run("logs", "export", "--format", "csv", out=as_csv)
    for by in ("model", "key", "tag", "day"):
        s.run("cost", "--by", by, "--json", out=as_json)
    s.run("cost", out=as_table)
    s.run("models", "--json", out=as_json)
    s.run("models", out=as_table)
    s.run("models", "-p", "nope")
    _templates(s)
    _keys(s)
    s.run("db", "status", "--json", out=lambda t: {**as_json(t)[0], "url": "<url>"})


def _no_cost(rows: Any) -> Any:
    return _without(rows, {"cost"})


def _without(value: Any, names: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [_without(v, names) for v in value]
    return value


def _templates(s: Session) -> None:
    s.run("templates", "list", "--json", out=as_json)
    where = re.compile(r"saved template 'tldr' to .*; ")  # the one intended difference: a file here, the DB there
    s.run("templates", "new", "tldr", "-p", "Summarise: {{ input }}", "-d", "Short", error=lambda t: where.sub("", t))
    s.run("templates", "show", "tldr", "--json", out=lambda t: {**as_json(t)[0], "origin": "<where>"})
    s.run("templates", "show", "comit")
    s.run("prompt", "-m", "fake/echo", "-t", "tldr", "some text")


def _keys(s: Session) -> None:
    created = s.run("keys", "create", "ci", "--model", "fake/echo", "--rpm", "60", "--budget", "5")
    key_id = created.stderr.split()[2]
    s.run("keys", "list", out=as_table)
    s.run("keys", "list", "--json", out=as_json)
    s.run("keys", "revoke", key_id)
    s.run("keys", "list", "--all", "--json", out=as_json)
    s.run("keys", "revoke", key_id)


def _run_in(mode: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, Any, Any]]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(root / "data"))
    write_config(root / "config")
    target = Target(mode)
    try:
        session = Session(target, root)
        scenario(session)
        return session.seen
    finally:
        target.stop()


def test_every_command_prints_the_same_in_process_and_through_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _run_in("local", tmp_path / "local", monkeypatch)
    remote = _run_in("server", tmp_path / "server", monkeypatch)
    assert [step[0] for step in remote] == [step[0] for step in local]
    for here, there in zip(local, remote, strict=True):
        assert there == here, f"`modelyard {here[0]}` differs with --server"
