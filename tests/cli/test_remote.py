"""What only ``--server`` has: the remote doctor, keys and the environment variables, local-only commands."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from modelyard.config import load_settings
from tests.cli.conftest import Invoke, Target
from tests.support.live_server import LiveServer

MASTER = "sk-master-test"


@pytest.fixture
def server(config_dir: Path) -> Iterator[Target]:
    """A live server (no master key) and the CLI pointed at it with --server."""
    opened = Target("server")
    yield opened
    opened.stop()


@pytest.fixture
def secured(config_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """A live server with a master key and a database of its own."""
    database = f"sqlite:///{tmp_path / 'server.db'}"
    live = LiveServer(load_settings(master_key=MASTER, key_secret="test-secret", database_url=database)).start()
    yield live
    live.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _doctor(cli: Invoke, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, dict[str, str]]]:
    result = cli(*args, "doctor", "--json", env=env)
    return result.exit_code, {c["name"]: c for c in orjson.loads(result.stdout)}


def test_doctor_checks_the_server(server: Target) -> None:
    code, checks = _doctor(server.invoke)
    assert code == 0, checks
    assert checks["server"]["state"] == "ok" and server.start().url in checks["server"]["detail"]
    assert checks["server key"]["state"] == "ok" and "admin rights" in checks["server key"]["detail"]
    assert checks["server database"]["state"] == "ok"
    assert checks["models"]["state"] == "ok" and "models available" in checks["models"]["detail"]
    assert "config file" not in checks  # the local setup is not what a remote command uses
    table = server.invoke("doctor")
    assert table.exit_code == 0 and "server default model" in table.stdout


def test_doctor_on_a_server_that_does_not_answer(local_cli: Invoke) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    code, checks = _doctor(local_cli, "--server", url)
    assert code == 5
    assert list(checks) == ["server"]
    assert checks["server"]["state"] == "fail" and "MODELYARD_SERVER" in checks["server"]["fix"]
    result = local_cli("--server", url, "prompt", "-m", "fake/echo", "hi")
    assert result.exit_code == 4
    assert result.stderr.startswith("error: cannot reach modelyard server at") and result.stderr.count("\n") == 1


def test_doctor_names_a_refused_or_limited_key(local_cli: Invoke, secured: LiveServer) -> None:
    code, checks = _doctor(local_cli, "--server", secured.url, "--api-key", "sk-wrong")
    assert code == 5
    assert checks["server key"]["state"] == "fail" and "--api-key" in checks["server key"]["fix"]
    created = local_cli("--server", secured.url, "--api-key", MASTER, "keys", "create", "ci", "--json")
    virtual = orjson.loads(created.stdout)["key"]
    code, checks = _doctor(local_cli, "--server", secured.url, "--api-key", virtual)
    assert code == 0
    assert checks["server key"]["state"] == "warn" and "master key" in checks["server key"]["fix"]
    assert "sk-wrong" not in str(checks) and virtual not in str(checks)


def test_environment_variables_choose_the_server_and_its_key(local_cli: Invoke, secured: LiveServer) -> None:
    env = {"MODELYARD_SERVER": secured.url, "MODELYARD_API_KEY": MASTER}
    answered = local_cli("prompt", "-m", "fake/echo", "through the server", env=env)
    assert answered.exit_code == 0, answered.output
    assert answered.stdout == "through the server\n"
    rows = orjson.loads(local_cli("logs", "list", "--json", env=env).stdout)
    assert [r["requested_model"] for r in rows] == ["fake/echo"]
    assert local_cli("logs", "list", "--json").stdout == "[]\n"  # without them: the local database
    refused = local_cli("logs", "list", env={**env, "MODELYARD_API_KEY": "sk-wrong"})
    assert refused.exit_code == 3
    assert "--api-key or MODELYARD_API_KEY" in refused.stderr and refused.stderr.count("\n") == 1


def test_a_virtual_key_may_prompt_but_not_administer(local_cli: Invoke, secured: LiveServer) -> None:
    admin = ["--server", secured.url, "--api-key", MASTER]
    key = orjson.loads(local_cli(*admin, "keys", "create", "app", "--json").stdout)["key"]
    user = ["--server", secured.url, "--api-key", key]
    answered = local_cli(*user, "prompt", "-m", "fake/echo", "hello")
    assert answered.stdout == "hello\n" and "not saved as a conversation" in answered.stderr
    listed = local_cli(*user, "models", "--provider", "fake", "--json")  # provider names from the models
    assert listed.exit_code == 0 and [m["id"] for m in orjson.loads(listed.stdout)] == ["fake/echo", "fake/other"]
    denied = local_cli(*user, "cost")
    assert denied.exit_code == 3 and "master key" in denied.stderr


def test_db_status_reports_the_servers_database(server: Target) -> None:
    state = orjson.loads(server.invoke("db", "status", "--json").stdout)
    assert state["up_to_date"] and state["revision"] == state["head"]
    assert state["url"].startswith("sqlite") and state["url"].endswith(".db")


@pytest.mark.parametrize(
    ("command", "fix"),
    [(["db", "upgrade"], "server's host"), (["serve"], "drop --server")],
    ids=["db upgrade", "serve"],
)
def test_local_only_commands_refuse_in_one_line(server: Target, command: list[str], fix: str) -> None:
    result = server.invoke(*command)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and fix in result.stderr
    assert result.stderr.startswith(f"error: `modelyard {' '.join(command)}` works on this machine")


def test_templates_saved_on_the_server_are_not_replaced_by_accident(server: Target) -> None:
    assert server.invoke("templates", "new", "t1", "-p", "one {{ input }}").exit_code == 0
    again = server.invoke("templates", "new", "t1", "-p", "two {{ input }}")
    assert again.exit_code == 2 and "already exists on the server" in again.stderr
    assert server.invoke("templates", "new", "t1", "-p", "two {{ input }}", "--force").exit_code == 0
    assert "two {{ input }}" in server.invoke("templates", "show", "t1").stdout


def test_a_url_without_scheme_is_http(server: Target, local_cli: Invoke) -> None:
    bare = server.start().url.removeprefix("http://")
    assert local_cli("--server", bare, "prompt", "-m", "fake/echo", "plain").stdout == "plain\n"
