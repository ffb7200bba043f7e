"""The documentation site builds offline with --strict, and its generated pages match the code."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import modelyard
from modelyard import errors

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_mkdocs_builds_strict_and_offline(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip("MKDOCS IS NOT INSTALLED, SO THE DOCS SITE WAS NOT BUILT: pip install -e '.[test]' (or '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**_plain_env(), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    reference = (site / "reference" / "clients" / "index.html").read_text(encoding="utf-8")
    assert "AsyncClient" in reference and "pace_on_rate_limit" in reference  # mkdocstrings rendered the SDK
    # Offline: no page pulls fonts, scripts or styles from another host.
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        external = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', html)
        assert not external, f"{page.relative_to(site)} loads {external}"


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}


def test_configuration_page_matches_the_settings_model() -> None:
    done = _script("docs_config.py", "--check")
    assert done.returncode == 0, done.stderr + "\n(run: python scripts/docs_config.py)"


def test_provider_tables_match_the_presets() -> None:
    done = _script("docs_providers.py", "--check")
    assert done.returncode == 0, done.stderr + "\n(run: python scripts/docs_providers.py)"


def test_every_error_class_is_in_troubleshooting() -> None:
    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    classes = [
        name
        for name in errors.__all__
        if inspect.isclass(getattr(errors, name)) and issubclass(getattr(errors, name), errors.ModelyardError)
    ]
    missing = [name for name in classes if f"### {name}\n" not in page]
    assert not missing, f"docs/troubleshooting.md has no section for {missing}"


def test_every_public_name_is_in_the_api_reference() -> None:
    reference = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "reference").glob("*.md"))
    documented_modules = set(re.findall(r"^::: ([\w.]+)$", reference, re.M))
    missing = []
    for name in modelyard.__all__:
        if name == "__version__":
            continue
        module = getattr(modelyard, name).__module__
        if f"{module}.{name}" not in documented_modules and module not in documented_modules:
            missing.append(name)
    assert not missing, f"docs/reference/*.md has no '::: module.Name' for {missing}"
