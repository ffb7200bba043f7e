"""Tools an agent can call: plain Python functions, raw OpenAI tool JSON, and (in ``mcp.py``) MCP servers.

Example::

    @tool
    def get_weather(city: str) -> str:
        '''Current weather in a city.'''
        return f"sunny in {city}"

    @tool(requires_approval=True, timeout=10)
    async def send_email(to: str, body: str) -> str:
        '''Send an email.'''

    lookup = tool_from_openai({"type": "function", "function": {"name": "lookup", "parameters": {...}}},
                              handler=lambda **args: db.find(**args))
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, overload, runtime_checkable

import orjson
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from modelyard.agent.schema import FunctionSignature
from modelyard.errors import BadRequestError
from modelyard.types.chat import FunctionDefinition, Tool

ApprovalRule = bool | Callable[[dict[str, Any]], bool]
"""``True``: every call waits for approval; a function: calls for which it returns True do."""

MAX_OUTPUT_CHARS = 50_000
_EMPTY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


class ToolError(Exception):
    """Raise from a tool to send the model this message as the tool's error (no exception type, no traceback)."""


class AgentTool:
    """A tool the model may call: a name, a description, JSON-schema parameters and how to run it.

    Subclass it and implement ``invoke`` for a tool of your own; ``tool``, ``tool_from_openai`` and the MCP
    sources build the usual ones.
    """

    def __init__(
        self,
        name: str,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
        *,
        requires_approval: ApprovalRule = False,
        timeout: float | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.parameters: dict[str, Any] = dict(parameters) if parameters else dict(_EMPTY_OBJECT)
        self.requires_approval = requires_approval
        self.timeout = timeout
        self._validator: Draft202012Validator | None = None

    @property
    def executable(self) -> bool:
        """False for a tool the caller answers itself (raw JSON without a handler): its calls pause the run."""
        return True

    def definition(self) -> Tool:
        """The OpenAI tool definition sent to the model."""
        return Tool(
            function=FunctionDefinition(
                name=self.name, description=self.description or None, parameters=self.parameters
            )
        )

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        rule = self.requires_approval
        return bool(rule(arguments)) if callable(rule) else bool(rule)

    def check(self, arguments: dict[str, Any]) -> list[str]:
        """What is wrong with ``arguments`` according to the JSON schema (empty when they match)."""
        if self._validator is None:
            self._validator = Draft202012Validator(self.parameters)
        problems = []
        for error in sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{where}: {error.message}" if where else error.message)
        return problems

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        """Run the tool with validated arguments; raise ``ToolError`` (or anything) to report a failure."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the tool holds (nothing by default)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


async def _call(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Await an async function; run a sync one in a worker thread (so a slow tool never blocks the loop)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    result = await asyncio.to_thread(fn, *args, **kwargs)
    return await result if inspect.isawaitable(result) else result


class FunctionTool(AgentTool):
    """A Python function (sync or async) as a tool; its schema comes from its type hints and docstring."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: ApprovalRule = False,
        timeout: float | None = None,
    ) -> None:
        self.fn = fn
        self.signature = FunctionSignature.of(fn, name)
        super().__init__(
            name or str(getattr(fn, "__name__", "tool")),
            description if description is not None else self.signature.description,
            self.signature.schema,
            requires_approval=requires_approval,
            timeout=timeout,
        )

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        args, kwargs = self.signature.bind(arguments)
        return await _call(self.fn, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function itself: a decorated function still works as a function."""
        return self.fn(*args, **kwargs)


class JSONTool(AgentTool):
    """A tool from raw OpenAI tool JSON; ``handler(**arguments)`` runs it. Without a handler the caller
    answers each call itself (the run pauses; resume with ``Decision.respond``)."""

    def __init__(
        self,
        definition: Mapping[str, Any] | Tool,
        handler: Callable[..., Any] | None = None,
        *,
        requires_approval: ApprovalRule = False,
        timeout: float | None = None,
    ) -> None:
        data = definition.model_dump(exclude_none=True) if isinstance(definition, Tool) else dict(definition)
        function = data.get("function", data)
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise BadRequestError("an OpenAI tool needs function.name", param="tools")
        super().__init__(
            function["name"],
            str(function.get("description") or ""),
            function.get("parameters"),
            requires_approval=requires_approval,
            timeout=timeout,
        )
        self.handler = handler

    @property
    def executable(self) -> bool:
        return self.handler is not None

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        if self.handler is None:
            raise ToolError(f"tool {self.name!r} has no handler: the caller answers it")
        return await _call(self.handler, (), arguments)


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: ApprovalRule = False,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: ApprovalRule = False,
    timeout: float | None = None,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a function a tool: ``@tool`` or ``@tool(requires_approval=True, timeout=10)``.

    Example::

        @tool(requires_approval=True)
        def delete_file(path: str) -> str:
            '''Delete a file.'''
    """

    def wrap(function: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(
            function, name=name, description=description, requires_approval=requires_approval, timeout=timeout
        )

    return wrap(fn) if fn is not None else wrap


def tool_from_openai(
    definition: Mapping[str, Any] | Tool,
    handler: Callable[..., Any] | None = None,
    *,
    requires_approval: ApprovalRule = False,
    timeout: float | None = None,
) -> JSONTool:
    """A tool from OpenAI tool JSON (``{"type": "function", "function": {...}}`` or the bare function).

    Example::

        tool_from_openai({"name": "add", "parameters": {"type": "object", ...}}, handler=lambda a, b: a + b)
    """
    return JSONTool(definition, handler, requires_approval=requires_approval, timeout=timeout)


@runtime_checkable
class ToolSource(Protocol):
    """Something that provides tools once opened (an MCP server): ``open`` returns them, ``aclose`` ends it."""

    name: str

    async def open(self) -> list[AgentTool]: ...

    async def aclose(self) -> None: ...


ToolLike = AgentTool | ToolSource | Callable[..., Any] | Mapping[str, Any] | Tool


def split_tools(tools: Iterable[ToolLike]) -> tuple[list[AgentTool], list[ToolSource]]:
    """Tools as ``AgentTool``s (functions and OpenAI JSON wrapped), and the sources to open."""
    found: list[AgentTool] = []
    sources: list[ToolSource] = []
    for item in tools:
        if isinstance(item, AgentTool):
            found.append(item)
        elif isinstance(item, ToolSource):
            sources.append(item)
        elif isinstance(item, Mapping | Tool):
            found.append(JSONTool(item))
        elif callable(item):
            found.append(FunctionTool(item))
        else:
            raise BadRequestError(f"not a tool: {item!r}", param="tools")
    return found, sources


def index_tools(tools: Iterable[AgentTool]) -> dict[str, AgentTool]:
    """Tools by name; two tools with one name are an error (the model could not tell them apart)."""
    named: dict[str, AgentTool] = {}
    for item in tools:
        if item.name in named:
            raise BadRequestError(f"two tools are named {item.name!r}", param="tools")
        named[item.name] = item
    return named


def render_output(value: Any, limit: int = MAX_OUTPUT_CHARS) -> str:
    """A tool's return value as the text the model reads (JSON for data), cut at ``limit`` characters."""
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "(no output)"
    elif isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        text = orjson.dumps(value, default=_jsonable, option=orjson.OPT_NON_STR_KEYS).decode()
    if len(text) > limit:
        text = text[:limit] + f"\n[output cut at {limit} of {len(text)} characters]"
    return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
