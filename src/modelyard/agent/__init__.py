"""Tools and agents: one tool-calling loop that works the same on every model, with approval and MCP.

Example::

    from modelyard import AsyncClient
    from modelyard.agent import Agent, Decision, Limits, tool

    @tool
    def get_weather(city: str) -> str:
        '''Current weather in a city.'''
        return f"sunny in {city}"

    async with AsyncClient() as client:
        agent = Agent(client, "openai/gpt-4o-mini", tools=[get_weather], limits=Limits(max_steps=5))
        result = await agent.run("Weather in Paris?")
        print(result.stop_reason, result.text, result.cost)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

# Loaded on first use: importing one part (say the run state, for the workbench) must not import MCP and the
# whole loop.
_EXPORTS: dict[str, str] = {
    "Agent": "modelyard.agent.agent",
    "AgentEvent": "modelyard.agent.events",
    "AgentTool": "modelyard.agent.tools",
    "ApprovalRequired": "modelyard.agent.events",
    "Approver": "modelyard.agent.engine",
    "CommandAllowlist": "modelyard.agent.mcp",
    "Decision": "modelyard.agent.state",
    "ErrorInfo": "modelyard.agent.state",
    "FunctionTool": "modelyard.agent.tools",
    "JSONTool": "modelyard.agent.tools",
    "Limits": "modelyard.agent.state",
    "MCPHttp": "modelyard.agent.mcp",
    "MCPSource": "modelyard.agent.mcp",
    "MCPStdio": "modelyard.agent.mcp",
    "ModelFallback": "modelyard.agent.events",
    "ModelToolMetrics": "modelyard.storage.sql_runs",
    "PendingCall": "modelyard.agent.state",
    "Prompt": "modelyard.agent.agent",
    "ReasoningDelta": "modelyard.agent.events",
    "RunFinished": "modelyard.agent.events",
    "RunResult": "modelyard.agent.state",
    "RunState": "modelyard.agent.state",
    "StepFinished": "modelyard.agent.events",
    "StepRecord": "modelyard.agent.state",
    "StepStarted": "modelyard.agent.events",
    "StopReason": "modelyard.agent.state",
    "SyncAgent": "modelyard.agent.sync",
    "TextDelta": "modelyard.agent.events",
    "ToolCallRecord": "modelyard.agent.state",
    "ToolCallStarted": "modelyard.agent.events",
    "ToolError": "modelyard.agent.tools",
    "ToolResult": "modelyard.agent.events",
    "ToolSource": "modelyard.agent.tools",
    "aresume": "modelyard.agent.sync",
    "arun": "modelyard.agent.sync",
    "astream": "modelyard.agent.sync",
    "atool_metrics": "modelyard.agent.metrics",
    "event_json": "modelyard.agent.events",
    "mcp_server": "modelyard.agent.mcp",
    "resume": "modelyard.agent.sync",
    "run": "modelyard.agent.sync",
    "tool": "modelyard.agent.tools",
    "tool_from_openai": "modelyard.agent.tools",
    "tool_metrics": "modelyard.agent.metrics",
}


__all__ = [
    "Agent",
    "AgentEvent",
    "AgentTool",
    "ApprovalRequired",
    "Approver",
    "CommandAllowlist",
    "Decision",
    "ErrorInfo",
    "FunctionTool",
    "JSONTool",
    "Limits",
    "MCPHttp",
    "MCPSource",
    "MCPStdio",
    "ModelFallback",
    "ModelToolMetrics",
    "PendingCall",
    "Prompt",
    "ReasoningDelta",
    "RunFinished",
    "RunResult",
    "RunState",
    "StepFinished",
    "StepRecord",
    "StepStarted",
    "StopReason",
    "SyncAgent",
    "TextDelta",
    "ToolCallRecord",
    "ToolCallStarted",
    "ToolError",
    "ToolResult",
    "ToolSource",
    "aresume",
    "arun",
    "astream",
    "atool_metrics",
    "event_json",
    "mcp_server",
    "resume",
    "run",
    "tool",
    "tool_from_openai",
    "tool_metrics",
]


__getattr__ = lazy_exports(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from modelyard.agent.agent import Agent, Prompt
    from modelyard.agent.engine import Approver
    from modelyard.agent.events import (
        AgentEvent,
        ApprovalRequired,
        ModelFallback,
        ReasoningDelta,
        RunFinished,
        StepFinished,
        StepStarted,
        TextDelta,
        ToolCallStarted,
        ToolResult,
        event_json,
    )
    from modelyard.agent.mcp import CommandAllowlist, MCPHttp, MCPSource, MCPStdio, mcp_server
    from modelyard.agent.metrics import atool_metrics, tool_metrics
    from modelyard.agent.state import (
        Decision,
        ErrorInfo,
        Limits,
        PendingCall,
        RunResult,
        RunState,
        StepRecord,
        StopReason,
        ToolCallRecord,
    )
    from modelyard.agent.sync import SyncAgent, aresume, arun, astream, resume, run
    from modelyard.agent.tools import (
        AgentTool,
        FunctionTool,
        JSONTool,
        ToolError,
        ToolSource,
        tool,
        tool_from_openai,
    )
    from modelyard.storage.sql_runs import ModelToolMetrics
