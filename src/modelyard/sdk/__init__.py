"""The Python SDK: ``Client`` (sync) and ``AsyncClient``; ``client.admin`` is an ``Admin``."""

from modelyard.sdk.admin import Admin
from modelyard.sdk.client import AsyncClient, StreamHandle
from modelyard.sdk.sync import Client, SyncStream

__all__ = ["Admin", "AsyncClient", "Client", "StreamHandle", "SyncStream"]
