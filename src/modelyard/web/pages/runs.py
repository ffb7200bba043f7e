"""Agent runs: the list (filtered by status), tool metrics per model, one run's steps and tool calls, and
decisions on a paused run's pending calls.

Decisions are only *recorded* here: the tools live in the process that runs the agent, so a paused run continues
when the SDK or the CLI resumes it (``modelyard agent --resume RUN_ID --tool ...``), which applies them.
Tool arguments and outputs are model- and tool-made text: they are shown as escaped text (JSON pretty-printed),
never as HTML.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard import errors
from modelyard.agent.state import Decision, PendingCall, RunState, StepRecord, ToolCallRecord
from modelyard.agent.store import RunRecorder
from modelyard.storage.sql_runs import RunStatus, SQLRunStore, StoredRun, StoredStep
from modelyard.types.chat import Message
from modelyard.web.base import Workbench, form_text, posted
from modelyard.web.render import pretty_json

PAGE_SIZE = 50
STATUSES: tuple[str, ...] = get_args(RunStatus)
#: Metrics periods in days (0: every stored run).
PERIODS = (1, 7, 30, 0)
ACTIONS = ("approve", "edit", "deny", "respond")
MAX_ARGUMENTS_CHARS = 100_000


def shown_json(text: str | None) -> str:
    """Text that holds JSON, pretty-printed; anything else as it is (the template escapes both)."""
    if not text:
        return ""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return pretty_json(json.loads(stripped))
        except ValueError:
            pass
    return text


@dataclass
class CallView:
    """One tool call as the page shows it: the record plus its arguments and output as display text."""

    record: ToolCallRecord
    arguments: str
    output: str

    @classmethod
    def of(cls, record: ToolCallRecord) -> CallView:
        arguments = pretty_json(record.parsed) if record.parsed is not None else shown_json(record.arguments)
        return cls(record=record, arguments=arguments, output=shown_json(record.output))


@dataclass
class StepView:
    """One model call of the run and its tool calls (``waiting``: the step paused for decisions)."""

    step: StepRecord
    calls: list[CallView]
    waiting: bool = False


@dataclass
class PendingView:
    """A pending call, its arguments as editable JSON, and the decision recorded for it (if any)."""

    call: PendingCall
    arguments: str
    decision: dict[str, Any] | None = None


@dataclass
class RunView:
    """Everything the detail page shows of a stored run."""

    run: StoredRun
    state: RunState | None
    steps: list[StepView] = field(default_factory=list)
    pending: list[PendingView] = field(default_factory=list)
    prompt: list[Message] = field(default_factory=list)
    answer: str = ""
    state_error: str = ""
    #: Makes the ids of form fields unique per render: htmx copies attributes between old and new elements with
    #: the same id on a swap, and copying a ``style`` attribute is an inline style the CSP refuses.
    nonce: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def resume_command(self) -> str:
        """The CLI command that continues the run (with the tools it was started with, when the CLI started it)."""
        hint = self.state.setup.get("cli") if self.state is not None else None
        tools = hint if isinstance(hint, str) and hint else "--tool MODULE:NAME"
        return f"modelyard agent --resume {self.run.id} {tools}"

    @property
    def messages_json(self) -> str:
        """The run's conversation so far, as indented JSON."""
        messages = self.state.messages if self.state is not None else []
        return pretty_json([m.model_dump(mode="json", exclude_none=True) for m in messages])

    @property
    def undecided(self) -> int:
        return sum(1 for p in self.pending if p.decision is None)


def _steps_of(state: RunState) -> list[StepView]:
    views = [StepView(step, [CallView.of(c) for c in step.calls]) for step in state.steps]
    if state.pending and views:
        last = views[-1]
        last.waiting = True
        last.calls = [CallView.of(c) for c in state.done_calls]  # calls of the paused step that already ran
    return views


def _stored_steps(rows: list[StoredStep]) -> list[StepView]:
    """Steps from their rows (when the run's state cannot be read)."""
    views = []
    for row in rows:
        calls = [ToolCallRecord.model_validate(c) for c in row.calls if isinstance(c, dict) and "call_id" in c]
        step = StepRecord(
            index=row.position,
            model=row.model or "?",
            request_id=row.request_id,
            finish_reason=row.finish_reason,
            cost=row.cost,
            latency_ms=row.latency_ms,
            calls=calls,
        )
        views.append(StepView(step, [CallView.of(c) for c in calls]))
    return views


async def run_view(runs: SQLRunStore, run: StoredRun) -> RunView:
    """The detail of ``run``: steps, tool calls, pending calls with recorded decisions, prompt and answer."""
    try:
        state = RunState.model_validate(run.state)
    except ValidationError as exc:
        view = RunView(run=run, state=None, state_error=str(exc.errors()[0]["msg"]))
        view.steps = _stored_steps(await runs.steps(run.id))
        return view
    view = RunView(run=run, state=state, steps=_steps_of(state))
    for pending in state.pending:
        decision = run.decisions.get(pending.call_id)
        edited = decision.get("arguments") if isinstance(decision, dict) else None
        shown = pretty_json(edited if isinstance(edited, dict) else pending.arguments)
        view.pending.append(PendingView(pending, shown, decision if isinstance(decision, dict) else None))
    first_reply = next((i for i, m in enumerate(state.messages) if m.role != "system" and m.role != "user"), None)
    view.prompt = state.messages[:first_reply]
    if run.status == "completed" and state.messages and state.messages[-1].role == "assistant":
        view.answer = state.messages[-1].text()
    return view


def decision_of(form: Any, pending: PendingCall) -> Decision:
    """The decision a submitted form makes on ``pending`` (edited arguments must be a JSON object)."""
    action = form_text(form, "action")
    if action not in ACTIONS:
        raise errors.BadRequestError("choose approve, edit, deny or respond", param="action")
    if pending.answer_only and action in ("approve", "edit"):
        raise errors.BadRequestError(
            f"{pending.name} has no handler in the running process: answer it or deny it", param="action"
        )
    if action == "edit":
        raw = form_text(form, "arguments")
        if len(raw) > MAX_ARGUMENTS_CHARS:
            raise errors.BadRequestError("the arguments are too long", param="arguments")
        try:
            arguments = json.loads(raw)
        except ValueError as exc:
            raise errors.BadRequestError(f"the edited arguments are not valid JSON: {exc}", param="arguments") from None
        if not isinstance(arguments, dict):
            raise errors.BadRequestError("the edited arguments must be a JSON object", param="arguments")
        return Decision.edit(pending.call_id, arguments)
    if action == "deny":
        return Decision.deny(pending.call_id, form_text(form, "reason") or None)
    if action == "respond":
        output = form_text(form, "output")
        if not output:
            raise errors.BadRequestError("write the answer to send back to the model", param="output")
        return Decision.respond(pending.call_id, output)
    return Decision.approve(pending.call_id)


class RunsPage:
    """``/runs`` (list and tool metrics), ``/runs/{id}`` (detail) and decisions on pending calls."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def routes(self) -> list[Route]:
        """Runs routes (``/ui/runs/...`` belongs to the playground's streams: decisions live under agent-runs)."""
        return [
            Route("/runs", self.index),
            Route("/runs/{id}", self.detail),
            Route("/ui/agent-runs/{id}/decisions", posted(self.bench)(self.decide), methods=["POST"]),
        ]

    async def _runs(self) -> SQLRunStore:
        return (await self.bench.store()).runs

    async def index(self, request: Request) -> Response:
        """Recent runs (``status`` filter, ``offset`` pages) and the tool metrics per model (``days``)."""
        runs = await self._runs()
        raw_status = request.query_params.get("status", "")
        status = raw_status if raw_status in STATUSES else ""
        raw_offset = request.query_params.get("offset", "0")
        offset = int(raw_offset) if raw_offset.isdigit() else 0
        raw_days = request.query_params.get("days", "30")
        days = int(raw_days) if raw_days.isdigit() and int(raw_days) in PERIODS else 30
        found = await runs.list(PAGE_SIZE + 1, offset, status=status or None)
        since = datetime.now(UTC) - timedelta(days=days) if days else None
        older = urlencode({k: v for k, v in (("status", status), ("days", days), ("offset", offset + PAGE_SIZE)) if v})
        return self.bench.page(
            request,
            "runs.html",
            runs=found[:PAGE_SIZE],
            older_query=older if len(found) > PAGE_SIZE else "",
            status_filter=status,
            statuses=STATUSES,
            metrics=await runs.tool_metrics(since=since),
            days=days,
            periods=PERIODS,
            active="runs",
        )

    async def detail(self, request: Request) -> Response:
        """One run: facts, pending calls (with decisions), every step and tool call."""
        runs = await self._runs()
        run = await runs.get(request.path_params["id"])
        if run is None:
            return self.bench.page(request, "not_found.html", status=404, what="agent run", active="runs")
        return self.bench.page(request, "runs_detail.html", v=await run_view(runs, run), active="runs")

    async def decide(self, request: Request) -> Response:
        """Record a decision on one pending call; answers the refreshed pending section."""
        runs = await self._runs()
        run = await runs.get(request.path_params["id"])
        if run is None:
            raise errors.NotFoundError("no such agent run")
        if run.status != "paused":
            raise errors.BadRequestError(f"this run is not waiting for decisions (it is {run.status})")
        view = await run_view(runs, run)
        form = await request.form()
        call_id = form_text(form, "call_id")
        pending = next((p.call for p in view.pending if p.call.call_id == call_id), None)
        if pending is None:
            raise errors.BadRequestError("this run has no such pending tool call", param="call_id")
        await RunRecorder(runs).record_decisions(run.id, [decision_of(form, pending)])
        updated = await runs.get(run.id)
        view = await run_view(runs, updated or run)
        return self.bench.page(request, "partials/runs_pending.html", v=view, saved=call_id)
