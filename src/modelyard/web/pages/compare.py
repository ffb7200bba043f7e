"""Compare: one prompt to 2-4 models at once, answers side by side; the better one is marked on the log rows."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard import errors
from modelyard.pipeline import CallOptions
from modelyard.storage.sql import SQLStore
from modelyard.templates import TemplateLibrary
from modelyard.types.chat import ChatRequest
from modelyard.web.base import Workbench, form_text, posted
from modelyard.web.forms import chosen_model, model_groups, prompt_messages, request_params
from modelyard.web.runs import RunSpec

MAX_MODELS = 4
SLOTS = tuple(f"model{i}" for i in range(1, MAX_MODELS + 1))
COMPARE_TAG = "workbench-compare"
BETTER, WORSE = "better", "worse"


@dataclass
class Column:
    """One model's column in a comparison."""

    run_id: str
    model: str


def start_group(bench: Workbench, base: ChatRequest, models: list[str], tag: str) -> tuple[str, list[Column]]:
    """Prepare one run per model (same messages and parameters); returns the group id and the columns."""
    unique = list(dict.fromkeys(models))
    if not 2 <= len(unique) <= MAX_MODELS:
        raise errors.BadRequestError(f"pick 2 to {MAX_MODELS} different models", param="models")
    group = f"cmp_{secrets.token_hex(8)}"
    columns = []
    for model in unique:
        request = base.model_copy(update={"model": model})
        options = CallOptions(tags=[tag], metadata={"compare_group": group})
        run_id = bench.runs.add(RunSpec(request=request, options=options, kind="compare", group=group))
        columns.append(Column(run_id=run_id, model=model))
    return group, columns


async def mark_better(store: SQLStore, winner: str, group: list[str]) -> dict[str, str]:
    """Store "better" on the winner's log row and "worse" on the others; returns what was stored."""
    verdicts = {request_id: (BETTER if request_id == winner else WORSE) for request_id in group}
    return {k: v for k, v in verdicts.items() if await store.logs.set_feedback(k, v)}


class ComparePage:
    """``/compare``, its run endpoint, and feedback (shared with log replays)."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def routes(self) -> list[Route]:
        """Compare routes."""
        post = posted(self.bench)
        return [
            Route("/compare", self.page),
            Route("/ui/compare/run", post(self.run), methods=["POST"]),
            Route("/ui/feedback", post(self.feedback), methods=["POST"]),
        ]

    async def page(self, request: Request) -> Response:
        """The Compare page."""
        store = await self.bench.store()
        models = await self.bench.models()
        default = self.bench.gateway.settings.default_model
        others = [m.id for m in models if m.id != default]
        return self.bench.page(
            request,
            "compare.html",
            groups=model_groups(models),
            preset=[default, others[0] if others else "", "", ""],
            slots=SLOTS,
            templates=await TemplateLibrary(self.bench.gateway.settings, source=store.prompts).list(),
            active="compare",
        )

    async def run(self, request: Request) -> Response:
        """Start one run per picked model; answer the columns that stream them."""
        form = await request.form()
        models = [m for m in (chosen_model(form, slot) for slot in SLOTS) if m]
        messages, template_params = await prompt_messages(await self.bench.store(), self.bench.gateway.settings, form)
        base = ChatRequest(model="-", messages=messages, **{**template_params, **request_params(form)})
        group, columns = start_group(self.bench, base, models, COMPARE_TAG)
        return self.bench.page(request, "partials/compare_runs.html", group=group, columns=columns)

    async def feedback(self, request: Request) -> Response:
        """Mark the winner of a comparison better and the others worse."""
        form = await request.form()
        group, winner = form_text(form, "group"), form_text(form, "winner")
        members = self.bench.runs.groups.get(group, [])
        if winner not in members:
            raise errors.NotFoundError("this comparison is no longer known: run it again")
        marked = await mark_better(await self.bench.settled_store(), winner, members)
        return self.bench.page(request, "partials/feedback.html", marked=marked, winner=winner, members=members)
