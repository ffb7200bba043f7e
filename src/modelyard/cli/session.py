"""Open the SDK client a CLI command talks to, and run async gateway work (stores, templates) on its loop."""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from modelyard.sdk.sync import Client
    from modelyard.storage.sql import SQLStore
    from modelyard.templates import TemplateLibrary

T = TypeVar("T")


@contextmanager
def open_client() -> Iterator[Client]:
    """The sync SDK client (an in-process gateway), closed (logs flushed) on the way out."""
    from modelyard.sdk.sync import Client

    client = Client()
    try:
        yield client
    finally:
        client.close()


def run(client: Client, work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the client's own event loop: the loop its gateway and database engine live on."""
    return client.run_sync(work)


def stores(client: Client) -> SQLStore:
    """The gateway's database (logs, conversations, prompts, keys), opened and migrated on first use."""
    store: SQLStore = run(client, client.gateway.stores())
    return store


def template_library(client: Client) -> TemplateLibrary:
    """A ``TemplateLibrary`` over the database, the user's folder and the built-ins."""
    from modelyard.templates import TemplateLibrary

    return TemplateLibrary(client.gateway.settings, source=stores(client).prompts)
