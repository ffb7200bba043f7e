"""Playground: one prompt to one model, with templates, a saved system-prompt library and parameters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard import errors
from modelyard.storage.base import SystemPrompt
from modelyard.templates import INPUT_VARIABLE, TemplateLibrary
from modelyard.types.chat import ChatRequest
from modelyard.web.base import Workbench, form_text, posted
from modelyard.web.forms import chosen_model, model_groups, prompt_messages, request_params
from modelyard.web.runs import RunSpec


class PlaygroundPage:
    """``/`` and ``/playground``, the run endpoint, template fields and the system-prompt library."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def routes(self) -> list[Route]:
        """Playground routes."""
        post = posted(self.bench)
        return [
            Route("/", self.page),
            Route("/playground", self.page),
            Route("/ui/playground/run", post(self.run), methods=["POST"]),
            Route("/ui/template-fields", self.template_fields),
            Route("/ui/prompts/load", self.load_prompt),
            Route("/ui/prompts", post(self.save_prompt), methods=["POST"]),
            Route("/ui/prompts/{id}/rename", post(self.rename_prompt), methods=["POST"]),
            Route("/ui/prompts/{id}/delete", post(self.delete_prompt), methods=["POST"]),
        ]

    async def page(self, request: Request) -> Response:
        """The Playground page."""
        store = await self.bench.store()
        library = TemplateLibrary(self.bench.gateway.settings, source=store.prompts)
        return self.bench.page(
            request,
            "playground.html",
            groups=model_groups(await self.bench.models()),
            default_model=self.bench.gateway.settings.default_model,
            templates=await library.list(),
            prompts=await store.prompts.list_prompts(),
            active="playground",
        )

    async def run(self, request: Request) -> Response:
        """Prepare a run from the form; answer the fragment that streams it."""
        form = await request.form()
        model = chosen_model(form)
        if not model:
            raise errors.BadRequestError("pick a model", param="model")
        messages, template_params = await prompt_messages(await self.bench.store(), self.bench.gateway.settings, form)
        chat = ChatRequest(model=model, messages=messages, **{**template_params, **request_params(form)})
        run_id = self.bench.runs.add(RunSpec(request=chat, kind="playground"))
        return self.bench.page(request, "partials/run.html", run_id=run_id, label=model, kind="playground")

    async def template_fields(self, request: Request) -> Response:
        """One field per variable of the picked template."""
        name = request.query_params.get("template", "")
        if not name:
            return self.bench.page(request, "partials/template_fields.html", template=None, variables=[])
        store = await self.bench.store()
        try:
            template = await TemplateLibrary(self.bench.gateway.settings, source=store.prompts).get(name)
        except errors.ModelyardError as exc:
            return self.bench.error_fragment(request, exc.message, 404)
        variables = [v for v in template.variables() if v != INPUT_VARIABLE]
        return self.bench.page(request, "partials/template_fields.html", template=template, variables=variables)

    async def load_prompt(self, request: Request) -> Response:
        """A system-prompt box holding a saved prompt."""
        store = await self.bench.store()
        prompt_id = request.query_params.get("prompt_id", "")
        prompt = await store.prompts.get_prompt(prompt_id) if prompt_id else None
        return self.bench.page(request, "partials/system_field.html", text=prompt.text if prompt else "")

    async def _library(self, request: Request, notice: str = "") -> Response:
        store = await self.bench.store()
        prompts = await store.prompts.list_prompts()
        return self.bench.page(request, "partials/prompt_library.html", prompts=prompts, notice=notice)

    async def save_prompt(self, request: Request) -> Response:
        """Save the system prompt under a name (replacing one of that name)."""
        form = await request.form()
        name, text = form_text(form, "prompt_name"), form_text(form, "system")
        if not name or not text:
            raise errors.BadRequestError("give the system prompt a name and some text", param="prompt_name")
        store = await self.bench.store()
        existing = await store.prompts.get_prompt(name)
        if existing is not None:
            await store.prompts.update_prompt(existing.id, text=text)
        else:
            await store.prompts.create_prompt(SystemPrompt(name=name, text=text))
        return await self._library(request, f"Saved “{name}”.")

    async def rename_prompt(self, request: Request) -> Response:
        """Rename a saved system prompt."""
        form = await request.form()
        name = form_text(form, "name")
        if not name:
            raise errors.BadRequestError("a name is required", param="name")
        store = await self.bench.store()
        if await store.prompts.update_prompt(request.path_params["id"], name=name) is None:
            raise errors.NotFoundError("no such system prompt")
        return await self._library(request, f"Renamed to “{name}”.")

    async def delete_prompt(self, request: Request) -> Response:
        """Delete a saved system prompt."""
        store = await self.bench.store()
        if not await store.prompts.delete_prompt(request.path_params["id"]):
            raise errors.NotFoundError("no such system prompt")
        return await self._library(request, "Deleted.")
