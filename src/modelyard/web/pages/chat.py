"""Chat: saved multi-turn conversations (new, open, rename, delete, fork at a message, continue on another model)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard import errors
from modelyard.pipeline import CallOptions
from modelyard.storage.base import Conversation
from modelyard.types.chat import ChatRequest, Message
from modelyard.web.base import Workbench, form_number, form_text, posted
from modelyard.web.forms import chosen_model, model_groups
from modelyard.web.runs import RunSpec

CHAT_TAG = "workbench-chat"


class ChatPage:
    """``/chat`` and ``/chat/{id}`` plus the actions on a conversation."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def routes(self) -> list[Route]:
        """Chat routes."""
        post = posted(self.bench)
        return [
            Route("/chat", self.index),
            Route("/chat/{id}", self.conversation),
            Route("/ui/chat/new", post(self.create), methods=["POST"]),
            Route("/ui/chat/{id}/send", post(self.send), methods=["POST"]),
            Route("/ui/chat/{id}/rename", post(self.rename), methods=["POST"]),
            Route("/ui/chat/{id}/delete", post(self.delete), methods=["POST"]),
            Route("/ui/chat/{id}/fork", post(self.fork), methods=["POST"]),
        ]

    async def _render(self, request: Request, conversation: Conversation | None, status: int = 200) -> Response:
        store = await self.bench.store()
        return self.bench.page(
            request,
            "chat.html",
            status=status,
            conversations=await store.conversations.list(limit=100),
            conversation=conversation,
            groups=model_groups(await self.bench.models()),
            default_model=self.bench.gateway.settings.default_model,
            active="chat",
        )

    async def index(self, request: Request) -> Response:
        """The conversation list and the new-chat form."""
        return await self._render(request, None)

    async def conversation(self, request: Request) -> Response:
        """One saved conversation."""
        store = await self.bench.store()
        found = await store.conversations.get(request.path_params["id"])
        if found is None:
            return self.bench.page(request, "not_found.html", status=404, what="conversation", active="chat")
        return await self._render(request, found)

    async def _get(self, request: Request) -> Conversation:
        store = await self.bench.store()
        found = await store.conversations.get(request.path_params["id"])
        if found is None:
            raise errors.NotFoundError("no such conversation", code="conversation_not_found")
        return found

    async def create(self, request: Request) -> Response:
        """Start a conversation and open it."""
        form = await request.form()
        model = chosen_model(form) or self.bench.gateway.settings.default_model
        system = form_text(form, "system") or None
        store = await self.bench.store()
        created = await store.conversations.create(Conversation(model=model, system_prompt=system))
        return self.bench.redirect(request, f"/chat/{created.id}")

    async def send(self, request: Request) -> Response:
        """Send a message: the user bubble and a streamed answer (saved by the gateway when complete)."""
        conversation = await self._get(request)
        form = await request.form()
        content = form_text(form, "content")
        if not content:
            raise errors.BadRequestError("write a message first", param="content")
        model = chosen_model(form) or conversation.model or self.bench.gateway.settings.default_model
        params: dict[str, int] = {}
        max_tokens = form_number(form, "max_tokens", int)
        if max_tokens is not None:
            params["max_tokens"] = int(max_tokens)
        chat = ChatRequest(model=model, messages=[Message(role="user", content=content)], **params)
        options = CallOptions(conversation_id=conversation.id, tags=[CHAT_TAG])
        index = len(conversation.messages)
        context = {"conversation_id": conversation.id, "index": index + 1}
        run_id = self.bench.runs.add(RunSpec(request=chat, options=options, kind="chat", context=context))
        return self.bench.page(
            request,
            "partials/chat_turn.html",
            run_id=run_id,
            label=model,
            kind="chat",
            content=content,
            index=index,
            conversation=conversation,
        )

    async def rename(self, request: Request) -> Response:
        """Rename the conversation."""
        conversation = await self._get(request)
        title = form_text(await request.form(), "title")[:200]
        store = await self.bench.store()
        await store.conversations.rename(conversation.id, title)
        return self.bench.redirect(request, f"/chat/{conversation.id}")

    async def delete(self, request: Request) -> Response:
        """Delete the conversation."""
        conversation = await self._get(request)
        store = await self.bench.store()
        await store.conversations.delete(conversation.id)
        return self.bench.redirect(request, "/chat")

    async def fork(self, request: Request) -> Response:
        """Copy the conversation up to a message into a new one (optionally on another model)."""
        conversation = await self._get(request)
        form = await request.form()
        at = form_number(form, "at", int)
        if at is None or not 0 <= at < len(conversation.messages):
            raise errors.BadRequestError("no such message to fork at", param="at")
        store = await self.bench.store()
        title = f"{conversation.title or 'Chat'} (fork)"
        forked = await store.conversations.fork(conversation.id, int(at), title)
        if forked is None:
            raise errors.NotFoundError("no such conversation")
        model = chosen_model(form)
        if model:
            await store.conversations.update(forked.id, model=model)
        return self.bench.redirect(request, f"/chat/{forked.id}")
