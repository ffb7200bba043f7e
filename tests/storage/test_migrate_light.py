"""A server never keeps alembic loaded: a database at head is recognised without it, and an older or empty one
is migrated in a child process (``upgrade_in_child``)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from modelyard.storage import migrate
from modelyard.storage.migrate import alembic_config, current_revision, shipped_head, upgrade, upgrade_in_child

#: Runs in a fresh interpreter (alembic is imported by other tests in this one) and reports what got loaded.
PROBE = """
import asyncio, sys
from modelyard.storage.migrate import current_revision, head_revision, upgrade, upgrade_in_child
url = sys.argv[1]
migrated = upgrade_in_child(url)
asyncio.run(upgrade(url))
print(migrated, asyncio.run(current_revision(url)) == head_revision(), "alembic" in sys.modules)
"""


def _probe(url: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, url], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_shipped_head_is_alembics_head() -> None:
    assert shipped_head() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_server_start_migrates_in_a_child_and_never_loads_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'light.db'}"
    assert _probe(url) == "True True False"  # empty database: migrated by the child
    assert _probe(url) == "True True False"  # at head: one query, no child


def test_in_memory_database_is_left_to_the_process() -> None:
    assert upgrade_in_child("sqlite://") is False


def test_a_failed_child_falls_back_to_the_in_process_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'fallback.db'}"
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with caplog.at_level(logging.WARNING, logger=migrate.__name__):
        assert upgrade_in_child(url) is False
    assert "migrating in this process" in caplog.text
    asyncio.run(upgrade(url))
    assert asyncio.run(current_revision(url)) == shipped_head()


def _versions(folder: Path, *pairs: tuple[str, str]) -> None:
    (folder / "versions").mkdir()
    for number, (revision, parent) in enumerate(pairs):
        text = f'revision = "{revision}"\ndown_revision: str | None = {parent}\n'
        (folder / "versions" / f"{number:04}_x.py").write_text(text)


@pytest.mark.parametrize(
    ("pairs", "head"),
    [
        ((("a", "None"), ("b", '"a"'), ("c", '"b"')), "c"),
        ((("a", "None"), ("b", '"a"'), ("c", '"a"')), None),  # two heads
        ((("a", "None"), ("b", '"a"'), ("c", '("a", "b")')), None),  # a merge: alembic decides
    ],
)
def test_shipped_head_reads_only_plain_chains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pairs: tuple[tuple[str, str], ...], head: str | None
) -> None:
    _versions(tmp_path, *pairs)
    monkeypatch.setattr(migrate, "MIGRATIONS", tmp_path)
    assert shipped_head() == head
