"""Tools from MCP servers, over stdio (a local command) or streamable HTTP, with the official ``mcp`` package.

Security: a stdio server is a command this process starts, so it must come from a trusted place — your own
code, a CLI flag, or settings — never from API input (a request body, a stored run, a model's output).
``mcp_server(spec, allowlist)`` is the one way text becomes a server, and it refuses a command that is not on
the allowlist the caller built from those trusted places. Stored runs keep tool names only, never commands.
The child gets only the safe default environment (PATH, HOME…), not your provider keys, unless ``env`` says.

Example::

    async with Agent(client, "openai/gpt-4o-mini", tools=[MCPStdio("python my_server.py")]) as agent:
        result = await agent.run("List the files in /tmp")

    remote = MCPHttp("http://127.0.0.1:8000/mcp", headers={"Authorization": "Bearer ..."})
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
import sys
from collections.abc import AsyncGenerator, Collection, Iterable, Mapping, Sequence
from typing import Any, TextIO

from mcp import ClientSession, StdioServerParameters, stdio_client

from modelyard import errors
from modelyard.agent.tools import AgentTool, ApprovalRule, ToolError, render_output

STARTUP_TIMEOUT = 30.0


class CommandAllowlist:
    """The MCP server commands this process may start, as exact command lines (after shell-style splitting).

    Build it from trusted places only: your code, the CLI's ``--mcp`` flags, settings.

    Example::

        allow = CommandAllowlist(["python servers/files.py", ["npx", "-y", "@acme/mcp"]])
        allow.check(["python", "servers/files.py"])   # fine; anything else raises PermissionDeniedError
    """

    def __init__(self, commands: Iterable[str | Sequence[str]] = ()) -> None:
        self._allowed = {tuple(split_command(c)) for c in commands}

    def permits(self, argv: Sequence[str]) -> bool:
        return tuple(argv) in self._allowed

    def check(self, argv: Sequence[str]) -> None:
        if not self.permits(argv):
            raise errors.PermissionDeniedError(
                f"MCP command {shlex.join(argv)!r} is not on the allowlist (commands come from code, CLI flags "
                "or settings only)",
                param="mcp",
            )


def split_command(command: str | Sequence[str]) -> list[str]:
    """A command line as argv (shell-style quoting, never a shell)."""
    argv = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    if not argv:
        raise errors.BadRequestError("an MCP command cannot be empty", param="mcp")
    return argv


class MCPTool(AgentTool):
    """One tool of a connected MCP server."""

    def __init__(self, source: MCPSource, remote_name: str, description: str, schema: Mapping[str, Any]) -> None:
        super().__init__(
            f"{source.prefix}{remote_name}",
            description,
            schema,
            requires_approval=source.approval_for(remote_name),
            timeout=source.timeout,
        )
        self.source = source
        self.remote_name = remote_name

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        result = await self.source.call(self.remote_name, arguments)
        text = _result_text(result)
        if result.get("isError"):
            raise ToolError(text or f"MCP tool {self.remote_name!r} failed")
        return text


def _result_text(result: Mapping[str, Any]) -> str:
    parts = []
    for block in result.get("content") or []:
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            parts.append(f"[{block.get('type', 'content')}: {block.get('mimeType') or block.get('uri') or ''}]")
    if not parts and result.get("structuredContent") is not None:
        return render_output(result["structuredContent"])
    return "\n".join(parts)


class MCPSource:
    """A connection to one MCP server, held by a task of its own (so any task may open, use and close it).

    ``requires_approval``: for every tool, or per tool name; ``only``: expose just these tools; ``prefix``:
    put before every tool name (two servers with the same tool names).
    """

    def __init__(
        self,
        name: str,
        *,
        requires_approval: ApprovalRule | Mapping[str, ApprovalRule] = False,
        only: Collection[str] | None = None,
        prefix: str = "",
        timeout: float | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self.name = name
        self.requires_approval = requires_approval
        self.only = set(only) if only is not None else None
        self.prefix = prefix
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self._session: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()

    def approval_for(self, tool_name: str) -> ApprovalRule:
        rule = self.requires_approval
        return rule.get(tool_name, False) if isinstance(rule, Mapping) else rule

    def _streams(self) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def _own(self) -> None:
        async with self._streams() as streams, ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            self._session = session
            self._ready.set()
            await self._closing.wait()

    async def open(self) -> list[AgentTool]:
        """Start the server (stdio) or connect (HTTP), and list its tools."""
        if self._task is None:
            self._ready, self._closing = asyncio.Event(), asyncio.Event()
            self._task = asyncio.create_task(self._own(), name=f"mcp:{self.name}")
            await self._wait_ready()
        listing = (await self._session.list_tools()).model_dump(by_alias=True, exclude_none=True)
        tools: list[AgentTool] = [
            MCPTool(self, t["name"], t.get("description") or "", t.get("inputSchema") or {})
            for t in listing.get("tools", [])
            if self.only is None or t["name"] in self.only
        ]
        return tools

    async def _wait_ready(self) -> None:
        assert self._task is not None
        ready = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait({self._task, ready}, timeout=self.startup_timeout, return_when="FIRST_COMPLETED")
        ready.cancel()
        if self._ready.is_set():
            return
        problem = "no answer" if not done else _reason(self._task.exception() if self._task.done() else None)
        await self.aclose()
        raise errors.ConnectionError(f"MCP server {self.name!r} did not start: {problem}", code="mcp_unavailable")

    async def call(self, tool_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if self._session is None or self._task is None or self._task.done():
            raise ToolError(f"MCP server {self.name!r} is not connected")
        result = await self._session.call_tool(tool_name, arguments)
        data: dict[str, Any] = result.model_dump(by_alias=True, exclude_none=True)
        return data

    async def aclose(self) -> None:
        """Disconnect (and stop a stdio server)."""
        task, self._task, self._session = self._task, None, None
        if task is None:
            return
        self._closing.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except BaseException:  # closing: the server's own failure is not ours to raise
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def __aenter__(self) -> MCPSource:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _reason(exc: BaseException | None) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if exc is not None else "it exited"


class MCPStdio(MCPSource):
    """An MCP server started as a local command and spoken to over stdin/stdout.

    ``command``: ``"python server.py"`` or ``["python", "server.py"]`` (never run through a shell).
    ``allowlist``: when given, the command must be on it. ``env``: extra variables for the child.
    """

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        allowlist: CommandAllowlist | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        errlog: TextIO | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        self.argv = split_command(command)
        if allowlist is not None:
            allowlist.check(self.argv)
        super().__init__(name or self.argv[-1], **options)
        self.env = dict(env) if env else None
        self.cwd = cwd
        self.errlog = errlog

    def _streams(self) -> contextlib.AbstractAsyncContextManager[Any]:
        if shutil.which(self.argv[0]) is None:
            raise errors.ConfigError(f"MCP command {self.argv[0]!r} was not found", param="mcp")
        params = StdioServerParameters(command=self.argv[0], args=self.argv[1:], env=self.env, cwd=self.cwd)
        return stdio_client(params, errlog=self.errlog or sys.stderr)


class MCPHttp(MCPSource):
    """An MCP server over streamable HTTP (``http://host:port/mcp``)."""

    def __init__(
        self, url: str, *, headers: Mapping[str, str] | None = None, name: str | None = None, **options: Any
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise errors.BadRequestError(f"not an http(s) URL: {url!r}", param="mcp")
        super().__init__(name or url, **options)
        self.url = url
        self.headers = dict(headers or {})

    @contextlib.asynccontextmanager
    async def _streams(self) -> AsyncGenerator[Any, None]:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        timeout = httpx2.Timeout(30.0, read=300.0)
        async with (
            httpx2.AsyncClient(headers=self.headers, timeout=timeout) as http,
            streamable_http_client(self.url, http_client=http) as streams,
        ):
            yield streams


def mcp_server(spec: str, allowlist: CommandAllowlist, **options: Any) -> MCPSource:
    """An MCP source from text a user typed: an ``http(s)://`` URL, or a command that must be on ``allowlist``.

    Example::

        mcp_server("python server.py", CommandAllowlist(cli_flags))
    """
    if spec.startswith(("http://", "https://")):
        return MCPHttp(spec, **options)
    return MCPStdio(spec, allowlist=allowlist, **options)
