"""``modelyard models``, ``templates``, ``keys`` and ``db``."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from modelyard.cli import templates_cmd
from tests.cli.conftest import Invoke, Target


def test_models_table_json_and_provider_filter(cli: Invoke) -> None:
    table = cli("models")
    assert table.exit_code == 0, table.output
    assert "fake/echo" in table.stdout and "fake/other" in table.stdout and "capabilities" in table.stdout
    listed = orjson.loads(cli("models", "--provider", "fake", "--json").stdout)
    assert [m["id"] for m in listed] == ["fake/echo", "fake/other"]
    assert "tools" in listed[0]["capabilities"]
    unknown = cli("models", "--provider", "nope")
    assert unknown.exit_code == 2 and "unknown provider 'nope'" in unknown.output


def test_models_with_a_key_list_priced_models(cli: Invoke) -> None:
    result = cli("models", "-p", "openai", "--json", env={"OPENAI_API_KEY": "sk-test"})
    listed = orjson.loads(result.stdout)
    assert listed and all(m["id"].startswith("openai/") for m in listed)
    assert any(m.get("price") and m.get("context_window") for m in listed)


def test_templates_list_show_and_new(cli: Invoke, target: Target) -> None:
    listed = orjson.loads(cli("templates", "list", "--json").stdout)
    assert {"commit", "reviewer"} <= {t["name"] for t in listed}
    assert "commit" in cli("templates", "list").stdout
    created = cli(
        "templates", "new", "tldr", "-p", "Summarise in {{ n }} words: {{ input }}", "-d", "Short summaries",
        "--default", "n=10", "-o", "temperature=0.1", "-m", "fake/echo",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "variables: n, input" in created.stderr
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "modelyard" / "templates" / "tldr.yaml"
    assert path.is_file() is not target.remote  # with --server it goes to the server's database
    shown = cli("templates", "show", "tldr")
    assert "Summarise in {{ n }} words" in shown.stdout and "temperature: 0.1" in shown.stdout
    data = orjson.loads(cli("templates", "show", "tldr", "--json").stdout)
    assert data["origin"] == ("db" if target.remote else "user")
    assert data["defaults"] == {"n": "10"} and data["model"] == "fake/echo"
    again = cli("templates", "new", "tldr", "-p", "x")
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert cli("templates", "new", "tldr", "-p", "x {{ input }}", "-m", "fake/echo", "--force").exit_code == 0
    used = cli("prompt", "-t", "tldr", "text")  # the template's model is used
    assert used.stdout == "x text\n"


def test_templates_new_reads_the_prompt_from_stdin(cli: Invoke) -> None:
    created = cli("templates", "new", "piped", input="Explain {{ input }} simply\n")
    assert created.exit_code == 0, created.output
    assert "Explain {{ input }} simply" in cli("templates", "show", "piped").stdout


def test_templates_errors(cli: Invoke) -> None:
    unknown = cli("templates", "show", "comit")
    assert unknown.exit_code == 2 and "did you mean 'commit'" in unknown.stderr
    broken = cli("templates", "new", "bad", "-p", "{{ unclosed")
    assert broken.exit_code == 2 and "syntax error" in broken.stderr
    named = cli("templates", "new", "../escape", "-p", "x")
    assert named.exit_code == 2


def test_keys_create_list_revoke(cli: Invoke) -> None:
    created = cli("keys", "create", "ci", "--model", "fake/echo,fake/other", "--rpm", "60", "--budget", "5")
    assert created.exit_code == 0, created.output
    plaintext = created.stdout.strip()
    assert plaintext.startswith("sk-my-") and "not shown again" in created.stderr
    key_id = created.stderr.split()[2]
    listed = cli("keys", "list")
    assert key_id in listed.stdout and "fake/echo, fake/other" in listed.stdout and "active" in listed.stdout
    assert plaintext not in listed.stdout
    rows = orjson.loads(cli("keys", "list", "--json").stdout)
    assert rows[0]["id"] == key_id and rows[0]["budget"] == 5.0 and "key_hash" not in rows[0]
    assert plaintext not in str(rows)
    assert cli("keys", "revoke", key_id).exit_code == 0
    assert cli("keys", "list").stderr.startswith("no keys yet")
    assert "revoked" in cli("keys", "list", "--all").stdout
    again = cli("keys", "revoke", key_id)
    assert again.exit_code == 2 and "no active key" in again.stderr


def test_keys_json_shows_the_key_once_with_expiry(cli: Invoke) -> None:
    data = orjson.loads(cli("keys", "create", "temp", "--expires", "30d", "--json").stdout)
    assert data["key"].startswith("sk-my-") and data["expires_at"] and data["active"]


def test_db_status_and_upgrade(local_cli: Invoke, tmp_path: Path) -> None:
    cli = local_cli
    env = {"MODELYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    before = orjson.loads(cli("db", "status", "--json", env=env).stdout)
    assert before["revision"] is None and before["head"] and not before["up_to_date"]
    assert "behind" in cli("db", "status", env=env).stdout
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"revision {before['head']}" in upgraded.stderr
    after = orjson.loads(cli("db", "status", "--json", env=env).stdout)
    assert after["up_to_date"] and after["url"].endswith("fresh.db")
    assert cli("db", "status", env={"MODELYARD_DATABASE_URL": "mysql://x/y"}).exit_code == 3


def test_templates_new_asks_for_what_is_missing(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates_cmd, "_interactive", lambda: True)
    answers = "Translations\nYou translate.\nTranslate to {{ lang }}: {{ input }}\n"
    created = cli("templates", "new", "translate", "--default", "lang=French", input=answers)
    assert created.exit_code == 0, created.output
    data = orjson.loads(cli("templates", "show", "translate", "--json").stdout)
    assert data["description"] == "Translations" and data["system"] == "You translate."
    assert data["prompt"] == "Translate to {{ lang }}: {{ input }}" and data["variables"] == ["lang", "input"]
