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
