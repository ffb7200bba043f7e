"""The state of a ``modelyard chat`` session and what its commands do. The conversation is saved as it goes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.text import Text

from modelyard.cli import conversations
from modelyard.cli.chat_render import Answer, show_history, show_stream
from modelyard.cli.render import money, out, waiting_label
from modelyard.storage.base import Conversation, LogQuery

if TYPE_CHECKING:
    from modelyard.sdk.sync import Client


@dataclass
class Totals:
    """What this session has used so far."""

    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    last: Any = None

    def add(self, usage: Any, info: Any) -> None:
        self.turns += 1
        self.last = usage
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
        if info is not None and info.cost is not None:
            self.cost += info.cost


@dataclass
class ChatSession:
    """Model, system prompt, template and conversation of one REPL."""

    client: Client
    model: str | None = None
    system: str | None = None
    conversation_id: str | None = None
    template: Any = None
    totals: Totals = field(default_factory=Totals)

    @property
    def model_name(self) -> str:
        """The model messages go to: the chosen one, or the gateway's default (a server's, with --server)."""
        return self.model or self.client.default_model()

    def note(self, text: str) -> None:
        out.print(Text(text, style="dim"))

    # ----- sending -----------------------------------------------------------------------------------
    def send(self, text: str) -> Answer:
        """Send a message (through the active template, if any) and show the streamed answer."""
        if self.template is not None:
            rendered = self.template.render({}, input=text)
            messages = [m.model_dump(exclude_none=True) for m in rendered.messages]
            if self.system:
                messages = [{"role": "system", "content": self.system}, *(m for m in messages if m["role"] != "system")]
            return self._send(messages)
        return self._send([{"role": "user", "content": text}])

    def _send(self, messages: list[dict[str, Any]]) -> Answer:
        conversation_id = self.ensure_conversation()
        if self.system and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": self.system}, *messages]
        stream = self.client.stream(self.model, messages, conversation_id=conversation_id)
        try:
            answer = show_stream(stream, waiting_label(self.model_name))
        finally:
            with contextlib.suppress(Exception):  # after Ctrl-C the stream may be half-closed already
                stream.close()
        self.totals.add(answer.usage, stream.info)
        return answer

    def retry(self) -> Answer | None:
        """Drop the last answer (and its question) and ask the same question again."""
        if self.conversation_id is None:
            self.note("nothing to retry yet")
            return None
        conversation = conversations.require(self.client, self.conversation_id)
        users = [i for i, m in enumerate(conversation.messages) if m.role == "user"]
        if not users:
            self.note("nothing to retry yet")
            return None
        last = users[-1]
        question = conversation.messages[last].model_dump(exclude_none=True)
        kept = conversation.messages[:last]
        self.client.admin.replace_messages(self.conversation_id, kept)
        return self._send([question])

    # ----- the conversation --------------------------------------------------------------------------
    def ensure_conversation(self) -> str:
        """The saved conversation this session writes to (created on first need)."""
        if self.conversation_id is None:
            created = self.client.create_conversation(model=self.model_name, system_prompt=self.system)
            self.conversation_id = created.id
        return self.conversation_id

    def save(self, title: str | None) -> Conversation | None:
        """Name the conversation (it is saved already) and say how to come back to it."""
        conversation_id = self.ensure_conversation()
        if title:
            conversations.update(self.client, conversation_id, title=title)
        saved = self.client.conversation(conversation_id)
        shown = saved.title if saved is not None and saved.title else "(untitled)"
        out.print(f"saved conversation {conversation_id}: {shown}")
        out.print(Text(f"resume it with: modelyard chat --cid {conversation_id}", style="dim"))
        return saved

    def load(self, conversation_id: str, *, show: bool = True) -> Conversation:
        """Continue a saved conversation: its model and system prompt come with it."""
        conversation = conversations.require(self.client, conversation_id)
        self.conversation_id = conversation.id
        self.model = conversation.model or self.model
        self.system = conversation.system_prompt
        if show:
            show_history(conversation)
        return conversation

    def fork(self) -> str | None:
        """Continue in a copy of this conversation; the original stays as it is."""
        conversation = self.client.conversation(self.conversation_id) if self.conversation_id else None
        if conversation is None or not conversation.messages:
            self.note("nothing to fork yet")
            return None
        forked = self.client.fork_conversation(conversation.id, len(conversation.messages) - 1)
        self.conversation_id = forked.id
        self.note(f"forked {conversation.id} into {forked.id}; you are now in the copy")
        return forked.id

    def reset(self) -> None:
        """Start a new conversation (model and system prompt stay)."""
        self.conversation_id = None
        self.totals = Totals()
        self.note("new conversation")

    # ----- settings ----------------------------------------------------------------------------------
    def set_model(self, name: str) -> None:
        self.model = name
        if self.conversation_id is not None:
            conversations.update(self.client, self.conversation_id, model=name)
        self.note(f"model: {name}")

    def set_system(self, text: str | None) -> None:
        self.system = text or None
        if self.conversation_id is not None:
            conversations.update(self.client, self.conversation_id, system_prompt=self.system)
        self.note(f"system prompt: {self.system}" if self.system else "system prompt cleared")

    def set_template(self, name: str | None) -> None:
        if not name:
            self.template = None
            self.note("template cleared")
            return
        self.template = self.client.admin.template(name)
        if self.template.model and self.model is None:
            self.model = self.template.model
        self.note(f"template {name}: each message fills its input")

    # ----- reports -----------------------------------------------------------------------------------
    def usage(self) -> None:
        t = self.totals
        last = f"; last turn {t.last.prompt_tokens} + {t.last.completion_tokens}" if t.last is not None else ""
        out.print(
            f"this session: {t.turns} turns, {t.prompt_tokens} prompt + {t.completion_tokens} completion tokens{last}"
        )
        if self.conversation_id is not None:
            saved = self.client.conversation(self.conversation_id)
            count = len(saved.messages) if saved is not None else 0
            out.print(f"conversation {self.conversation_id}: {count} messages, model {self.model_name}")

    def cost(self) -> None:
        out.print(f"this session: {money(self.totals.cost)}")
        if self.conversation_id is None:
            return
        rows = self.client.admin.cost("model", where=LogQuery(conversation_id=self.conversation_id))
        logged = sum(r.cost for r in rows)
        out.print(f"conversation {self.conversation_id} (logged so far): {money(logged)}")
