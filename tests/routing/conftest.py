"""Fixtures for routing, limits and cache tests: a Redis URL (skip when unreachable) and gateway settings."""

from __future__ import annotations

import os
import pathlib
import socket
import uuid
from typing import Any

import pytest

from modelyard.config import Settings

REDIS_URL = os.environ.get("MODELYARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_reachable(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not redis_reachable():
        pytest.skip("REDIS UNREACHABLE at 127.0.0.1:6379 — the shared-state tests did NOT run")
    return REDIS_URL


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own, so tests never see each other's counters."""
    return f"mytest:{uuid.uuid4().hex[:10]}:"


def gateway_settings(tmp_path: pathlib.Path, **extra: Any) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'gw.db'}",
        spill_dir=str(tmp_path / "spill"),
        key_secret="test-secret",
        **extra,
    )
