"""The complete Python programs shown in the docs run, when they need no key and no server.

A block is run when it imports modelyard, names only ``fake/...`` and ``local/...`` models and no ``base_url``;
fragments (no import) and blocks for real providers or a running server are shown, not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
MODEL = re.compile(r"""["']([a-z][a-z0-9_-]*)/[A-Za-z0-9._/-]+["']""")


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for index, block in enumerate(re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)):
            if "from modelyard" not in block or "base_url" in block or "--8<--" in block:
                continue
            providers = set(MODEL.findall(block))
            if providers and providers <= {"fake", "local"}:
                found.append((str(page.relative_to(DOCS)), index, block))
    return found


BLOCKS = _blocks()


def test_some_blocks_are_checked() -> None:
    assert len(BLOCKS) >= 5, [(page, i) for page, i, _ in BLOCKS]


@pytest.mark.slow
@pytest.mark.timeout(360)
@pytest.mark.parametrize(("page", "index", "code"), BLOCKS, ids=[f"{p}#{i}" for p, i, _ in BLOCKS])
def test_doc_block_runs(page: str, index: int, code: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"))
    if "asyncio.run" not in code and "async def main" in code:
        code += "\nimport asyncio\nasyncio.run(main())\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, f"{page} block {index} failed:\n{code}\n{done.stdout}\n{done.stderr}"
