"""Open the SDK client a CLI command talks to: an in-process gateway, or a modelyard server with ``--server``.

Every command goes through the SDK (``client.chat``/``stream``/``models``) and its admin facade
(``client.admin``), so each one works the same in-process and remote.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import BadRequestError

if TYPE_CHECKING:
    from modelyard.sdk.sync import Client

SERVER_ENV = "MODELYARD_SERVER"
API_KEY_ENV = "MODELYARD_API_KEY"
_META_KEY = "modelyard.connection"


@dataclass(frozen=True)
class Connection:
    """Where commands go: ``server`` (a base URL) and its key, or in-process when ``server`` is None."""

    server: str | None = None
    api_key: str | None = None

    @property
    def remote(self) -> bool:
        return self.server is not None


def remember(ctx: Any, server: str | None, api_key: str | None) -> Connection:
    """Keep the root options for every command of this invocation (in the click context's shared ``meta``)."""
    url = (server or "").strip() or None
    if url is not None and url.startswith("{"):
        url = None  # MODELYARD_SERVER='{"port": …}': the server's own nested settings, not a URL
    if url is not None and "://" not in url:
        url = f"http://{url}"
    connection = Connection(url, api_key or None)
    ctx.meta[_META_KEY] = connection
    if not os.environ.get(SERVER_ENV, "").lstrip().startswith("{"):
        # Read here as the CLI's option; left set, the settings loader would take it for the nested
        # ``server`` settings (MODELYARD_SERVER__PORT…) and fail to parse a URL.
        os.environ.pop(SERVER_ENV, None)
    return connection


def connection_of(ctx: Any) -> Connection:
    """The connection chosen by ``--server`` / ``MODELYARD_SERVER`` (in-process when there is no context)."""
    if ctx is None:
        return Connection()
    found = ctx.meta.get(_META_KEY)
    return found if isinstance(found, Connection) else Connection()


def require_local(ctx: Any, what: str, instead: str) -> None:
    """Refuse, in one line, a command that only makes sense next to the database or the model files."""
    connection = connection_of(ctx)
    if connection.remote:
        raise BadRequestError(
            f"`modelyard {what}` works on this machine, not through --server {connection.server}: {instead}"
        )


def new_client(connection: Connection) -> Client:
    """An SDK client for ``connection`` (the caller closes it)."""
    from modelyard.sdk.sync import Client

    if connection.server is not None:
        return Client(base_url=connection.server, api_key=connection.api_key)
    return Client()


@contextmanager
def open_client(ctx: Any = None) -> Iterator[Client]:
    """The sync SDK client for this invocation, closed (logs flushed) on the way out."""
    client = new_client(connection_of(ctx))
    try:
        yield client
    finally:
        client.close()
