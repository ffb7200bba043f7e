"""``modelyard logs`` (list, show, search, export, filters) and ``modelyard cost``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest

from tests.cli.conftest import Invoke, conversation_id


@pytest.fixture
def logged(cli: Invoke) -> dict[str, str]:
    """Three requests: two prompts (one conversation) and a failed one; a tagged compare pair."""
    first = cli("prompt", "-m", "fake/echo", "apples and pears", "-u")
    cli("prompt", "-c", "bananas", "-u")
    cli("prompt", "-m", "nope/x", "cherries")
    cli("compare", "-m", "fake/echo", "-m", "fake/other", "plums")
    return {"conversation": conversation_id(first.stderr)}


def _rows(cli: Invoke, *args: str) -> list[dict[str, object]]:
    result = cli("logs", *args, "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = orjson.loads(result.stdout)
    return rows


def test_list_table_and_json(cli: Invoke, logged: dict[str, str]) -> None:
    table = cli("logs", "list")
    assert table.exit_code == 0, table.output
    rows = _rows(cli, "list")
    assert "fake/echo" in table.stdout and "rejected" in table.stdout and str(rows[0]["request_id"]) in table.stdout
    assert len(rows) == 5
    assert "prompt_text" not in rows[0]
    assert len(_rows(cli, "list", "-n", "2")) == 2


def test_filters(cli: Invoke, logged: dict[str, str]) -> None:
    assert len(_rows(cli, "list", "--model", "fake/echo")) == 3
    assert [r["requested_model"] for r in _rows(cli, "list", "--status", "rejected")] == ["nope/x"]
    assert len(_rows(cli, "list", "--tag", "compare")) == 2
    assert len(_rows(cli, "list", "--conversation", logged["conversation"])) == 2
    assert len(_rows(cli, "list", "--key", "local")) == 5
    assert len(_rows(cli, "list", "--since", "1h")) == 5
    assert _rows(cli, "list", "--until", "1h") == []
    assert _rows(cli, "list", "--since", "2999-01-01") == []
    bad = cli("logs", "list", "--since", "last tuesday")
    assert bad.exit_code == 2 and "cannot read 'last tuesday'" in bad.output
    empty = cli("logs", "list", "--model", "fake/none")
    assert empty.exit_code == 0 and "no matching requests" in empty.stderr


def test_show_and_search(cli: Invoke, logged: dict[str, str]) -> None:
    assert len(_rows(cli, "search", "pears")) == 2  # the second prompt carries the first as history
    found = _rows(cli, "search", "bananas")
    assert [r["requested_model"] for r in found] == ["fake/echo"]
    request_id = str(found[0]["request_id"])
    shown = cli("logs", "show", request_id)
    assert shown.exit_code == 0, shown.output
    assert request_id in shown.stdout and "apples and pears" in shown.stdout and "bananas" in shown.stdout
    as_json = orjson.loads(cli("logs", "show", request_id, "--json").stdout)
    assert as_json["conversation_id"] == logged["conversation"]
    assert request_id in cli("logs", "search", "bananas").stdout
    missing = cli("logs", "show", "req_missing")
    assert missing.exit_code == 2 and "no request 'req_missing'" in missing.stderr


def test_export_jsonl_to_stdout_and_csv_to_a_file(cli: Invoke, logged: dict[str, str], tmp_path: Path) -> None:
    jsonl = cli("logs", "export", "--model", "fake/echo")
    assert jsonl.exit_code == 0, jsonl.output
    lines = jsonl.stdout.splitlines()
    assert len(lines) == 3 and all(orjson.loads(line)["requested_model"] == "fake/echo" for line in lines)
    target = tmp_path / "logs.csv"
    written = cli("logs", "export", "--format", "csv", "-o", str(target))
    assert written.exit_code == 0, written.output
    assert "exported 5 requests" in written.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 5 and {"request_id", "cost", "status"} <= set(rows[0])


def test_cost_tables(cli: Invoke, logged: dict[str, str]) -> None:
    by_model = cli("cost")
    assert by_model.exit_code == 0, by_model.output
    assert "Cost by model" in by_model.stdout and "fake/echo" in by_model.stdout and "total" in by_model.stdout
    rows = orjson.loads(cli("cost", "--by", "model", "--json").stdout)
    assert {r["key"]: r["requests"] for r in rows} == {"fake/echo": 3, "fake/other": 1, "nope/x": 1}
    assert orjson.loads(cli("cost", "--by", "key", "--json").stdout)[0]["key"] == "local"
    assert [r["key"] for r in orjson.loads(cli("cost", "--by", "tag", "--json").stdout)] == ["compare"]
    assert len(orjson.loads(cli("cost", "--by", "day", "--json").stdout)) == 1
    assert "no requests logged" in cli("cost", "--since", "2999-01-01").stderr
    assert cli("cost", "--by", "week").exit_code == 2


def test_prune_deletes_only_older_rows(cli: Invoke, logged: dict[str, str]) -> None:
    before = len(_rows(cli, "list", "--limit", "100"))
    kept = cli("logs", "prune", "--older-than", "2000-01-01", "--yes")
    assert kept.exit_code == 0, kept.output
    assert "deleted 0 request log rows" in kept.stderr
    assert len(_rows(cli, "list", "--limit", "100")) == before
    gone = cli("logs", "prune", "--older-than", "2999-01-01", "--yes")
    assert f"deleted {before} request log rows" in gone.stderr
    assert _rows(cli, "list", "--limit", "100") == []
