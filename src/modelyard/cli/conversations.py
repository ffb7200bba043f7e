"""Saved conversations for ``prompt`` and ``chat``: start one, continue the latest, or a given one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from modelyard.cli.render import err
from modelyard.errors import NotFoundError, PermissionDeniedError
from modelyard.storage.base import Conversation

if TYPE_CHECKING:
    from modelyard.sdk.sync import Client


def latest(client: Client) -> Conversation | None:
    """The most recently updated conversation, if any."""
    found = client.admin.conversations(limit=1)
    return found[0] if found else None


def require(client: Client, conversation_id: str) -> Conversation:
    """The conversation with its messages; ``NotFoundError`` with the fix when there is none."""
    found = client.conversation(conversation_id)
    if found is None:
        raise NotFoundError(
            f"no conversation {conversation_id!r}: see `modelyard logs list` or start one without --cid",
            param="conversation_id",
        )
    return found


def resolve(
    client: Client, *, continue_last: bool, conversation_id: str | None, model: str | None, system: str | None
) -> Conversation | None:
    """The conversation a prompt goes to: the given one, the latest (``-c``), or a new one.

    ``None`` when a server will not keep conversations for this key (not its master key): the prompt is then
    sent unsaved, with a note on stderr.
    """
    if conversation_id is not None:
        return require(client, conversation_id)
    if continue_last:
        found = latest(client)
        if found is not None:
            return found
    try:
        return client.create_conversation(model=model, system_prompt=system)
    except PermissionDeniedError:
        err.print("not saved as a conversation: the server keeps conversations for its master key only", style="dim")
        return None


@contextmanager
def dropped_if_empty(client: Client, conversation: Conversation | None) -> Iterator[None]:
    """Delete a conversation that is still empty when the first prompt sent to it fails."""
    try:
        yield
    except BaseException:
        if conversation is not None and not conversation.messages:
            with suppress(Exception):
                client.admin.delete_conversation(conversation.id)
        raise


def update(client: Client, conversation_id: str, **fields: Any) -> Conversation | None:
    """Change a conversation's title, model or system prompt."""
    return client.admin.update_conversation(conversation_id, **fields)
