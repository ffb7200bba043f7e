"""Open the SDK client a CLI command talks to (in-process gateway, or a server with --server later)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from modelyard.sdk.sync import Client


@contextmanager
def open_client() -> Iterator[Client]:
    client = Client()
    try:
        yield client
    finally:
        client.close()
