"""Continue a saved conversation: prepend its history, then save the new turn when the answer is complete."""

from __future__ import annotations

from typing import Any

from modelyard import errors
from modelyard.pipeline import Call, ChatStream, Handler, Outcome, StreamEnd
from modelyard.storage.base import Conversation, ConversationStore
from modelyard.streaming import ChunkAccumulator
from modelyard.types.chat import ChatRequest, ChatResponse, Message


class ConversationMiddleware:
    """Active only for calls that carry ``options.conversation_id``."""

    def __init__(self, store: ConversationStore) -> None:
        self.store = store

    def skips(self, call: Call) -> bool:
        return call.options.conversation_id is None or not isinstance(call.request, ChatRequest)

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        conversation_id = call.options.conversation_id
        if conversation_id is None or not isinstance(call.request, ChatRequest):  # ``skips``, narrowing the types
            return await next(call)
        conversation = await self.store.get(conversation_id)
        if conversation is None:
            raise errors.NotFoundError(
                f"no conversation {conversation_id!r}", param="conversation_id", code="conversation_not_found"
            )
        new_messages = [m for m in call.request.messages if m.role not in ("system", "developer")]
        call.request = call.request.model_copy(update={"messages": with_history(conversation, call.request.messages)})
        outcome = await next(call)
        if isinstance(outcome, ChatResponse):
            await self._save(conversation, new_messages, outcome, call)
            return outcome
        assert isinstance(outcome, ChatStream)
        acc = ChunkAccumulator()

        async def on_end(end: StreamEnd) -> None:
            # Only a completed stream: an interrupted answer is not saved as if it were whole.
            if end.completed:
                await self._save(conversation, new_messages, acc.response(), call)

        return outcome.observe(acc.add, on_end, delivered=True)

    async def _save(
        self, conversation: Conversation, new_messages: list[Message], response: ChatResponse, call: Call
    ) -> None:
        if not response.choices:
            return
        reply = response.choices[0].message
        await self.store.append(conversation.id, [*new_messages, reply])
        fields: dict[str, Any] = {"model": call.info.served_model or call.request.model}
        if not conversation.title and new_messages:
            fields["title"] = new_messages[0].text()[:80]
        await self.store.update(conversation.id, **fields)


def with_history(conversation: Conversation, messages: list[Message]) -> list[Message]:
    """System prompt (the request's if it has one, else the conversation's), history, then the new messages."""
    system = [m for m in messages if m.role in ("system", "developer")]
    if not system and conversation.system_prompt:
        system = [Message(role="system", content=conversation.system_prompt)]
    history = [m for m in conversation.messages if m.role not in ("system", "developer")]
    rest = [m for m in messages if m.role not in ("system", "developer")]
    return [*system, *history, *rest]
