"""``modelyard doctor``: config, keys (never their values), endpoints, database and the local model."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from tests.cli.conftest import Invoke


class _Models(BaseHTTPRequestHandler):
    """``GET /v1/models``: 200 without a key or with ``sk-good``; 401 for any other key; 404 elsewhere."""

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        status = 404 if self.path != "/v1/models" else (401 if auth not in (None, "Bearer sk-good") else 200)
        body = orjson.dumps({"object": "list", "data": []})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _checks(cli: Invoke, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, dict[str, str]]]:
    result = cli("doctor", "--no-load", "--json", *args, env=env)
    return result.exit_code, {c["name"]: c for c in orjson.loads(result.stdout)}


def test_healthy_setup(local_cli: Invoke, config_dir: Path, endpoint: str) -> None:
    (config_dir / "modelyard.yaml").write_text(f"providers:\n  myllm:\n    base_url: {endpoint}/v1\n")
    code, checks = _checks(local_cli)
    assert code == 0
    assert checks["config file"]["state"] == "ok" and "modelyard.yaml" in checks["config file"]["detail"]
    assert checks["endpoint myllm"]["state"] == "ok"
    assert checks["default model"] == {"name": "default model", "state": "ok", "detail": "local/smollm2", "fix": ""}
    assert checks["database"]["state"] in ("ok", "warn")
    table = local_cli("doctor", "--no-load")
    assert table.exit_code == 0 and "endpoint myllm" in table.stdout


def test_keys_are_named_never_shown(local_cli: Invoke, config_dir: Path, endpoint: str) -> None:
    (config_dir / "modelyard.yaml").write_text(f"providers:\n  openai:\n    base_url: {endpoint}/v1\n")
    good = local_cli("doctor", "--no-load", env={"OPENAI_API_KEY": "sk-good"})
    assert good.exit_code == 0, good.output
    assert "OPENAI_API_KEY" in good.stdout and "sk-good" not in good.output
    code, checks = _checks(local_cli, env={"OPENAI_API_KEY": "sk-wrong-secret"})
    assert code == 5
    assert checks["endpoint openai"]["state"] == "fail" and "refused the key" in checks["endpoint openai"]["detail"]
    assert "sk-wrong-secret" not in str(checks)


def test_endpoint_that_does_not_answer(local_cli: Invoke, config_dir: Path) -> None:
    (config_dir / "modelyard.yaml").write_text(
        f"providers:\n  dead:\n    base_url: http://127.0.0.1:{_free_port()}/v1\n"
    )
    result = local_cli("doctor", "--no-load")
    assert result.exit_code == 5
    assert "problem(s) found" in result.stderr
    _, checks = _checks(local_cli)
    assert checks["endpoint dead"]["state"] == "fail"
    assert "providers.dead.base_url" in checks["endpoint dead"]["fix"]


def test_public_providers_without_keys_are_not_called(local_cli: Invoke) -> None:
    code, checks = _checks(local_cli)
    assert code == 0
    assert not [name for name in checks if name.startswith("endpoint ")]
    assert "OPENAI_API_KEY" in checks["missing keys"]["detail"]


def test_broken_config_file(local_cli: Invoke, config_dir: Path) -> None:
    (config_dir / "modelyard.yaml").write_text("providers: [unclosed\n")
    code, checks = _checks(local_cli)
    assert code == 5
    assert checks["config file"]["state"] == "fail" and checks["config file"]["fix"]
    assert list(checks) == ["config file"]
    (config_dir / "modelyard.yaml").write_text("max_retries: 99\n")
    code, checks = _checks(local_cli)
    assert code == 5 and "max_retries" in checks["config file"]["detail"]


def test_unknown_config_keys_and_a_default_model_without_key(local_cli: Invoke, config_dir: Path) -> None:
    (config_dir / "modelyard.yaml").write_text("default_modle: x\ndefault_model: openai/gpt-4o-mini\n")
    code, checks = _checks(local_cli)
    assert code == 5
    assert checks["config file"]["state"] == "warn" and "default_modle" in checks["config file"]["detail"]
    assert checks["default model"]["state"] == "fail" and "OPENAI_API_KEY" in checks["default model"]["detail"]


def test_missing_local_model(local_cli: Invoke, config_dir: Path) -> None:
    (config_dir / "modelyard.yaml").write_text("default_model: local/missing\n")
    code, checks = _checks(local_cli)
    assert code == 5
    assert checks["local model"]["state"] == "fail" and "local/missing not found" in checks["local model"]["detail"]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_local_model_loads(local_cli: Invoke) -> None:
    result = local_cli("doctor", "--json")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in orjson.loads(result.stdout)}
    assert checks["local model"] == {
        "name": "local model",
        "state": "ok",
        "detail": "local/smollm2 found and loads",
        "fix": "",
    }


def test_other_adapter_kinds_are_checked_for_reachability(local_cli: Invoke, config_dir: Path, endpoint: str) -> None:
    (config_dir / "modelyard.yaml").write_text(f"providers:\n  anthropic:\n    base_url: {endpoint}/v1\n")
    code, checks = _checks(local_cli, env={"ANTHROPIC_API_KEY": "sk-ant-secret"})
    assert code == 0
    assert checks["endpoint anthropic"]["state"] == "ok"
    assert "key not checked" in checks["endpoint anthropic"]["detail"]
    assert "sk-ant-secret" not in str(checks)
