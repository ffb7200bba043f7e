"""The Python SDK: ``Client`` (sync) and ``AsyncClient``."""

from modelyard.sdk.client import AsyncClient, StreamHandle
from modelyard.sdk.sync import Client, SyncStream

__all__ = ["AsyncClient", "Client", "StreamHandle", "SyncStream"]
