"""DESIGN.md's import rules, checked on the source so they cannot rot."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import modelyard

SRC = pathlib.Path(modelyard.__file__).parent

FOUNDATION = {"types", "errors", "config", "pipeline", "streaming", "retry", "redaction", "watchdog", "_lazy"}
SUPPORT = {"storage", "pricing", "tokens", "templates"}
FLOW = {"middleware", "routing", "providers"}
SHELLS = {"server", "cli", "sdk", "web", "agent"}

ALLOWED: dict[str, set[str]] = {
    **{name: FOUNDATION for name in FOUNDATION},
    **{name: FOUNDATION for name in SUPPORT},
    "middleware": FOUNDATION | {"storage", "middleware"},
    "routing": FOUNDATION | {"routing"},
    "providers": FOUNDATION | {"providers"},
    # Shells may read the storage models (Conversation, RequestLog…) and templates the gateway hands them.
    **{name: FOUNDATION | {"gateway", "sdk", "storage", "templates", "tokens", "agent", name} for name in SHELLS},
    # The HTTP server hosts the web workbench: it mounts its routes and accepts its session cookie.
    "server": FOUNDATION | {"gateway", "sdk", "storage", "templates", "tokens", "server", "web"},
    # `modelyard serve` launches the server, and nothing more.
    "cli": FOUNDATION | {"gateway", "sdk", "storage", "templates", "tokens", "agent", "cli", "server"},
}


def _layer(path: pathlib.Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "modelyard" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_layers_import_only_what_design_allows() -> None:
    violations = []
    for path in SRC.rglob("*.py"):
        layer = _layer(path)
        if layer in ("__init__", "gateway", "gateway_middleware", "__main__"):
            continue  # the package facade (lazy) and the composition root may import anything
        allowed = ALLOWED.get(layer)
        assert allowed is not None, f"{path} is in no layer of DESIGN.md: add it to the table"
        for imported in _imports(path) - allowed - {layer}:
            violations.append(f"{path.relative_to(SRC)} imports modelyard.{imported}")
    assert violations == []


def test_core_never_names_a_provider() -> None:
    names = ("anthropic", "gemini", "openrouter", "moonshot", "llama_cpp")
    offenders = []
    for path in SRC.rglob("*.py"):
        if _layer(path) in ("providers", "pricing"):
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if not stripped.startswith("#") and any(f'"{n}"' in stripped or f"'{n}'" in stripped for n in names):
                offenders.append(f"{path.relative_to(SRC)}: {stripped}")
    assert offenders == []


def test_import_is_light_and_offline() -> None:
    code = (
        "import sys, socket\n"
        "def refuse(*a, **k): raise SystemExit('network call at import')\n"
        "socket.socket.connect = refuse\n"
        "import modelyard\n"
        "heavy = [m for m in ('llama_cpp', 'aiohttp', 'sqlalchemy', 'pydantic', 'modelyard.providers.anthropic')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_dangerous_calls_in_source() -> None:
    banned = ("eval(", "exec(", "pickle.loads", "yaml.load(", "jinja2.Environment(", "shell=True")
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        offenders += [f"{path.relative_to(SRC)}: {b}" for b in banned if b in text]
    assert offenders == []
