#!/usr/bin/env python
"""Regenerate the preset tables in docs/providers/*.md from providers/presets.yaml; --check fails when stale.

Each page holds one block between ``<!-- presets:KIND:start -->`` and ``<!-- presets:KIND:end -->``: a table of
every preset row of that adapter kind, with its key variable, base URL, capabilities and per-model rules.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from modelyard.providers.registry import preset_rows

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "openai_compat": ROOT / "docs" / "providers" / "openai-compatible.md",
    "anthropic": ROOT / "docs" / "providers" / "anthropic.md",
    "gemini": ROOT / "docs" / "providers" / "gemini.md",
    "local": ROOT / "docs" / "providers" / "local.md",
    "fake": ROOT / "docs" / "providers" / "fake.md",
}
INDEX = ROOT / "docs" / "providers" / "index.md"


def _rule_text(rule: dict[str, Any]) -> str:
    """One per-model rule in words."""
    match = ", ".join(f"`{p}`" for p in rule.get("match") or []) or "every model"
    parts = []
    if rule.get("drop"):
        parts.append("drops " + ", ".join(f"`{p}`" for p in rule["drop"]))
    for old, new in (rule.get("rename") or {}).items():
        parts.append(f"renames `{old}` to `{new}`")
    for name, value in (rule.get("defaults") or {}).items():
        parts.append(f"defaults `{name}` to `{value}`")
    if rule.get("system_suffix"):
        parts.append("adds a system-prompt suffix")
    if rule.get("no_stream"):
        parts.append("cannot stream (emulated)")
    if rule.get("no_tools"):
        parts.append("cannot call tools")
    return f"{match}: {'; '.join(parts)}"


def _row(name: str, row: dict[str, Any]) -> str:
    env = row.get("api_key_env")
    key = f"`{env}`" if env else "—"
    if env and row.get("requires_key") is False:
        key += " (optional)"
    base = f"`{row['base_url']}`" if row.get("base_url") else "in-process"
    caps = ", ".join(row.get("capabilities") or [])
    rules = "<br>".join(_rule_text(r) for r in row.get("rules") or []) or "—"
    headers = ", ".join(f"`{h}`" for h in row.get("headers") or {})
    if headers:
        rules = f"sends {headers}" + ("" if rules == "—" else f"<br>{rules}")
    return f"| `{name}` | {key} | {base} | {caps} | {rules} |"


def table(kind: str | None) -> str:
    """The preset rows of ``kind`` (every row when None) as a Markdown table."""
    head = "| Row (`provider/…`) | API key variable | Base URL | Capabilities | Per-model rules and headers |\n"
    head += "|---|---|---|---|---|\n"
    rows = [_row(n, r) for n, r in preset_rows().items() if kind is None or r.get("kind") == kind]
    return head + "\n".join(rows) + "\n"


def updated(text: str, kind: str) -> str:
    pattern = re.compile(rf"(<!-- presets:{kind}:start -->\n).*?(<!-- presets:{kind}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"no presets:{kind} block")
    return pattern.sub(lambda m: m.group(1) + table(None if kind == "all" else kind) + m.group(2), text)


def main(argv: list[str]) -> int:
    targets = [(path, kind) for kind, path in PAGES.items()] + [(INDEX, "all")]
    stale = []
    for path, kind in targets:
        current = path.read_text(encoding="utf-8")
        wanted = updated(current, kind)
        if wanted != current:
            stale.append(path)
            if "--check" not in argv:
                path.write_text(wanted, encoding="utf-8")
                print(f"wrote {path}")
    if "--check" in argv and stale:
        for path in stale:
            print(f"{path} is stale: run python scripts/docs_providers.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
