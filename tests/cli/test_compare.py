"""``modelyard compare``: models side by side, concurrently, with latency, tokens, tokens/s and cost."""

from __future__ import annotations

import orjson

from modelyard.providers.fake import FakeReply
from tests.cli.conftest import Invoke, Target


def test_columns_side_by_side(cli: Invoke, target: Target) -> None:
    result = cli("compare", "-m", "fake/echo", "-m", "fake/other", "What is two plus two?")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "fake/echo" in line)
    assert "fake/other" in header
    assert result.stdout.count("What is two plus two?") == 2
    for label in ("latency", "tok/s", "tokens 5 in / 5 out"):
        assert label in result.stdout
    assert "cost $0" in result.stdout


def test_models_run_concurrently(cli: Invoke, target: Target, fake_replies: list[FakeReply]) -> None:
    fake_replies.extend(FakeReply(text=f"answer {i}", delay=0.6) for i in range(3))
    result = cli("compare", "-m", "fake/a", "-m", "fake/b", "-m", "fake/c", "go", "--json")
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.stdout)
    assert [r["model"] for r in rows] == ["fake/a", "fake/b", "fake/c"]
    assert sorted(r["text"] for r in rows) == ["answer 0", "answer 1", "answer 2"]
    assert all(r["latency_ms"] >= 600 and r["completion_tokens"] == 2 for r in rows)
    cost = 0
    assert all(r["tokens_per_second"] is not None and r["cost"] == cost for r in rows)
    # All three start together: run one after another, the last would wait for the others (>= 1.8 s).
    assert max(r["latency_ms"] for r in rows) < 1500


def test_a_failing_model_is_shown_in_its_column(cli: Invoke) -> None:
    result = cli("compare", "-m", "fake/echo", "-m", "nope/model", "hi", "--json")
    assert result.exit_code == 2
    rows = {r["model"]: r for r in orjson.loads(result.stdout)}
    assert rows["fake/echo"]["text"] == "hi" and rows["fake/echo"]["error"] is None
    assert "unknown provider 'nope'" in rows["nope/model"]["error"]


def test_needs_two_models_and_a_prompt(cli: Invoke) -> None:
    one = cli("compare", "-m", "fake/echo", "hi")
    assert one.exit_code == 2 and "at least two" in one.output
    empty = cli("compare", "-m", "fake/a", "-m", "fake/b")
    assert empty.exit_code == 2 and "give a prompt" in empty.output
