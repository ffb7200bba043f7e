"""Spill files: JSON lines of request logs the database could not take yet (bounded by disk, not memory).

Each writer appends to its own ``active-<pid>-<token>.jsonl``. Before a replay it renames that file to
``pending-<time>-<pid>-<token>.jsonl``; replays read pending files in order and delete each once every row is
in the database. Rows the database refuses as bad data go to ``rejected-<pid>-<token>.jsonl`` and stay there.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import TextIO


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SpillDir:
    """One writer's view of a spill folder (several writers and processes may share the folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._active: TextIO | None = None
        self._active_rows = 0
        self._pending = False

    @property
    def active_path(self) -> Path:
        return self.folder / f"active-{self._token}.jsonl"

    def append(self, lines: Iterable[str]) -> int:
        """Append JSON lines (each ending in a newline) and flush; returns how many."""
        if self._active is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._active = self.active_path.open("a", encoding="utf-8")
        count = 0
        for line in lines:
            self._active.write(line)
            count += 1
        self._active.flush()
        self._active_rows += count
        return count

    def write_pending(self, lines: Iterable[str]) -> int:
        """Write a complete pending file at once (for rows spilled after the writer closed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f"partial-{self._token}-{uuid.uuid4().hex[:8]}.tmp"
        with partial.open("w", encoding="utf-8") as handle:
            count = 0
            for line in lines:
                handle.write(line)
                count += 1
        partial.rename(self.folder / f"pending-{time.time_ns():020d}-{self._token}.jsonl")
        self._pending = True
        return count

    def reject(self, lines: Iterable[str]) -> None:
        """Keep rows the database refused (bad data) where an operator can look at them."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"rejected-{self._token}.jsonl").open("a", encoding="utf-8") as handle:
            handle.writelines(lines)

    def has_pending(self) -> bool:
        """Whether rows are waiting in this writer's active file or in known pending files."""
        return self._active_rows > 0 or self._pending

    def rotate(self) -> None:
        """Close the active file and make it pending, so new spills go to a fresh file."""
        if self._active is None:
            return
        self._active.close()
        self._active = None
        if self._active_rows:
            target = self.folder / f"pending-{time.time_ns():020d}-{self._token}.jsonl"
            self.active_path.rename(target)
            self._pending = True
        else:
            self.active_path.unlink(missing_ok=True)
        self._active_rows = 0

    def adopt_orphans(self) -> None:
        """Make active files of dead processes pending, and notice pending files left from before."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob("active-*.jsonl"):
            pid = path.name.split("-")[1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    path.rename(self.folder / f"pending-{time.time_ns():020d}-adopted-{path.name[7:]}")
        self._pending = self._pending or any(self.folder.glob("pending-*.jsonl"))

    def pending_files(self) -> list[Path]:
        """Pending files, oldest first."""
        return sorted(self.folder.glob("pending-*.jsonl")) if self.folder.is_dir() else []

    def replayed(self) -> None:
        """Every pending file was replayed (a new spill sets this again)."""
        self._pending = False

    def close(self) -> None:
        """Leave what is still spilled as a pending file for the next writer."""
        self.rotate()


def read_chunks(path: Path, size: int) -> Generator[list[str], None, None]:
    """The non-empty lines of ``path`` in lists of at most ``size`` (reads as it goes)."""
    chunk: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                chunk.append(line)
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
