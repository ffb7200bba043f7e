#!/usr/bin/env python
"""Regenerate docs/cli.md and README's CLI section from --help output; with --check, fail when either is stale."""

from __future__ import annotations

import sys
from pathlib import Path

from modelyard.cli.help_doc import readme_section, reference_path, render, with_readme_section
from modelyard.cli.main import app

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    readme = ROOT / "README.md"
    current = readme.read_text(encoding="utf-8")
    wanted = {reference_path(ROOT): render(app), readme: with_readme_section(current, readme_section(app))}
    stale = [path for path, text in wanted.items() if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path} is stale: run python scripts/cli_help.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
