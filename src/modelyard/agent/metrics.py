"""Tool-calling metrics per model, from stored runs: is a cheaper model good enough at tools for this work?

For each model: tool-call validity (arguments parse and match the schema), tool success rate, steps per run,
cost per run and how often runs end with an answer. The workbench can call
``SQLRunStore(store.engine).tool_metrics()`` directly (storage layer); these are the SDK/CLI entry points.

Example::

    for row in await atool_metrics(client):
        print(row.model, row.tool_call_validity, row.tool_success_rate, row.steps_per_run, row.cost_per_run)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelyard.storage.sql_runs import ModelToolMetrics, SQLRunStore


async def _run_store(source: Any) -> SQLRunStore:
    if isinstance(source, SQLRunStore):
        return source
    if hasattr(source, "engine"):  # a SQLStore
        return SQLRunStore(source.engine)
    gateway = source if hasattr(source, "stores") else getattr(source, "gateway", None)
    if gateway is None:
        raise TypeError(f"no run database behind {type(source).__name__}")
    return SQLRunStore((await gateway.stores()).engine)


async def atool_metrics(source: Any, *, since: datetime | None = None) -> list[ModelToolMetrics]:
    """Metrics per model from a ``SQLRunStore``, a ``SQLStore``, a ``Gateway`` or an in-process ``AsyncClient``."""
    return await (await _run_store(source)).tool_metrics(since=since)


def tool_metrics(client: Any, *, since: datetime | None = None) -> list[ModelToolMetrics]:
    """``atool_metrics`` for the synchronous ``Client``."""
    result: list[ModelToolMetrics] = client._runner.run(atool_metrics(client._async, since=since))
    return result
