"""Conversations and their messages on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from modelyard.errors import BadRequestError, NotFoundError
from modelyard.storage.base import Conversation, utcnow
from modelyard.storage.engine import scrub_nul
from modelyard.storage.schema import conversation_messages, conversations
from modelyard.types.chat import Message

UPDATABLE = frozenset({"title", "model", "system_prompt", "metadata"})


def _message_row(conversation_id: str, position: int, message: Message | dict[str, Any]) -> dict[str, Any]:
    parsed = message if isinstance(message, Message) else Message.model_validate(message)
    return {
        "conversation_id": conversation_id,
        "position": position,
        "message": scrub_nul(parsed.model_dump(mode="json", exclude_none=True)),
    }


def _conversation(row: RowMapping, messages: list[Any] | None = None, count: int | None = None) -> Conversation:
    data = {k: v for k, v in row.items() if k != "message_count" and v is not None}
    found = messages or []
    return Conversation.model_validate(
        {**data, "messages": found, "message_count": len(found) if count is None else count}
    )


class SQLConversationStore:
    """``ConversationStore`` over an async engine whose database is migrated."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, conversation: Conversation) -> Conversation:
        row = scrub_nul(conversation.model_dump(exclude={"messages", "message_count"}, mode="python"))
        async with self._engine.begin() as connection:
            await connection.execute(insert(conversations), [row])
            await self._insert_messages(connection, conversation.id, 0, conversation.messages)
        return conversation.model_copy(update={"message_count": len(conversation.messages)})

    async def get(self, conversation_id: str) -> Conversation | None:
        async with self._engine.connect() as connection:
            found = select(conversations).where(conversations.c.id == conversation_id)
            row = (await connection.execute(found)).mappings().first()
            if row is None:
                return None
            ordered = (
                select(conversation_messages.c.message)
                .where(conversation_messages.c.conversation_id == conversation_id)
                .order_by(conversation_messages.c.position)
            )
            messages = list((await connection.execute(ordered)).scalars())
        return _conversation(row, messages)

    async def list(self, limit: int = 50, offset: int = 0) -> list[Conversation]:
        """Most recently updated first, without messages (``message_count`` is set)."""
        counts = (
            select(conversation_messages.c.conversation_id, func.count().label("n"))
            .group_by(conversation_messages.c.conversation_id)
            .subquery()
        )
        statement = (
            select(conversations, func.coalesce(counts.c.n, 0).label("message_count"))
            .outerjoin(counts, counts.c.conversation_id == conversations.c.id)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id)
            .limit(limit)
            .offset(offset)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_conversation(row, count=row["message_count"]) for row in rows]

    async def append(self, conversation_id: str, messages: Sequence[Message | dict[str, Any]]) -> int:
        """Add messages at the end; returns the new message count."""
        async with self._engine.begin() as connection:
            # Touch the row first: it takes the write lock, so concurrent appends queue up.
            await self._touch(connection, conversation_id)
            last = select(func.max(conversation_messages.c.position)).where(
                conversation_messages.c.conversation_id == conversation_id
            )
            last_position = await connection.scalar(last)
            start = 0 if last_position is None else int(last_position) + 1
            await self._insert_messages(connection, conversation_id, start, messages)
        return start + len(messages)

    async def replace_messages(self, conversation_id: str, messages: Sequence[Message | dict[str, Any]]) -> bool:
        """Replace the whole message list (after an edit or a regeneration)."""
        async with self._engine.begin() as connection:
            try:
                await self._touch(connection, conversation_id)
            except NotFoundError:
                return False
            await connection.execute(
                delete(conversation_messages).where(conversation_messages.c.conversation_id == conversation_id)
            )
            await self._insert_messages(connection, conversation_id, 0, messages)
        return True

    async def update(self, conversation_id: str, **fields: Any) -> Conversation | None:
        """Change title, model, system_prompt or metadata."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise BadRequestError(f"cannot update conversation fields: {', '.join(sorted(unknown))}")
        statement = (
            update(conversations).where(conversations.c.id == conversation_id).values(**fields, updated_at=utcnow())
        )
        async with self._engine.begin() as connection:
            if (await connection.execute(statement)).rowcount == 0:
                return None
        return await self.get(conversation_id)

    async def rename(self, conversation_id: str, title: str) -> bool:
        return await self.update(conversation_id, title=title) is not None

    async def delete(self, conversation_id: str) -> bool:
        async with self._engine.begin() as connection:
            await connection.execute(
                delete(conversation_messages).where(conversation_messages.c.conversation_id == conversation_id)
            )
            result = await connection.execute(delete(conversations).where(conversations.c.id == conversation_id))
        return result.rowcount > 0

    async def fork(self, conversation_id: str, at_message_index: int, title: str | None = None) -> Conversation | None:
        """A new conversation holding messages ``0..at_message_index`` (inclusive) of this one."""
        source = await self.get(conversation_id)
        if source is None:
            return None
        if not 0 <= at_message_index < len(source.messages):
            raise BadRequestError(
                f"message index {at_message_index} is outside 0..{len(source.messages) - 1}",
                param="at_message_index",
            )
        now = utcnow()
        fork = Conversation(
            title=title if title is not None else source.title,
            model=source.model,
            system_prompt=source.system_prompt,
            metadata=source.metadata,
            messages=source.messages[: at_message_index + 1],
            created_at=now,
            updated_at=now,
            forked_from=source.id,
            forked_at_message=at_message_index,
        )
        return await self.create(fork)

    async def _touch(self, connection: AsyncConnection, conversation_id: str) -> None:
        statement = update(conversations).where(conversations.c.id == conversation_id).values(updated_at=utcnow())
        if (await connection.execute(statement)).rowcount == 0:
            raise NotFoundError(f"no conversation {conversation_id!r}")

    async def _insert_messages(
        self,
        connection: AsyncConnection,
        conversation_id: str,
        start: int,
        messages: Sequence[Message | dict[str, Any]],
    ) -> None:
        rows = [_message_row(conversation_id, start + i, m) for i, m in enumerate(messages)]
        if rows:
            await connection.execute(insert(conversation_messages), rows)
