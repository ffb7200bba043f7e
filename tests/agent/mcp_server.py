"""A small MCP server for the agent tests: run as a script it speaks stdio; ``http_app()`` serves streamable HTTP."""

from __future__ import annotations

import os
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("modelyard-test", log_level="ERROR")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@server.tool()
def explode(reason: str) -> str:
    """Always fails, with the given reason."""
    raise ToolError(f"exploded: {reason}")


@server.tool()
def getenv(name: str) -> str:
    """An environment variable of the server process ("" when unset)."""
    return os.environ.get(name, "")


def http_app() -> Any:
    """The same tools over streamable HTTP (a Starlette app with its own lifespan)."""
    return server.streamable_http_app()


if __name__ == "__main__":
    server.run()
