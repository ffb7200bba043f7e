"""A side-by-side line diff of two texts, as rows for a template (the template escapes the text).

Lines that changed carry word-level segments so the page can mark exactly what differs.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Literal

RowKind = Literal["same", "changed", "removed", "added"]
_WORDS = re.compile(r"\s+|[^\s]+")


@dataclass
class Segment:
    """A run of text within a line; ``changed`` when it differs from the other side."""

    text: str
    changed: bool = False


@dataclass
class DiffRow:
    """One row: a line on the left, on the right, or both."""

    kind: RowKind
    left_no: int | None
    left: str
    right_no: int | None
    right: str
    left_parts: list[Segment] = field(default_factory=list)
    right_parts: list[Segment] = field(default_factory=list)


def word_segments(left: str, right: str) -> tuple[list[Segment], list[Segment]]:
    """Both lines cut into segments, the differing words marked."""
    a, b = _WORDS.findall(left), _WORDS.findall(right)
    left_parts: list[Segment] = []
    right_parts: list[Segment] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        changed = tag != "equal"
        if i2 > i1:
            left_parts.append(Segment("".join(a[i1:i2]), changed))
        if j2 > j1:
            right_parts.append(Segment("".join(b[j1:j2]), changed))
    return left_parts, right_parts


def _changed_block(a: list[str], b: list[str], i1: int, i2: int, j1: int, j2: int) -> list[DiffRow]:
    rows = []
    for k in range(max(i2 - i1, j2 - j1)):
        i, j = i1 + k, j1 + k
        has_left, has_right = i < i2, j < j2
        left, right = (a[i] if has_left else ""), (b[j] if has_right else "")
        if has_left and has_right:
            parts = word_segments(left, right)
            rows.append(DiffRow("changed", i + 1, left, j + 1, right, *parts))
        elif has_left:
            rows.append(DiffRow("removed", i + 1, left, None, "", [Segment(left, True)], []))
        else:
            rows.append(DiffRow("added", None, "", j + 1, right, [], [Segment(right, True)]))
    return rows


def side_by_side(left: str, right: str) -> list[DiffRow]:
    """Rows pairing the lines of ``left`` and ``right`` (changed blocks are paired line by line)."""
    a, b = left.splitlines(), right.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                rows.append(DiffRow("same", i + 1, a[i], j + 1, b[j], [Segment(a[i])], [Segment(b[j])]))
        else:
            rows += _changed_block(a, b, i1, i2, j1, j2)
    return rows
