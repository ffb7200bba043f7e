"""System prompts, stored templates and virtual keys on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.errors import ConflictError
from modelyard.storage.base import StoredTemplate, SystemPrompt, VirtualKey, utcnow
from modelyard.storage.schema import system_prompts, templates, virtual_keys
from modelyard.storage.sql_filters import OnConflictInsert


def _without_nulls(row: RowMapping) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


class SQLPromptStore:
    """``PromptStore``: system prompts (by id, names unique) and templates (by name)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = OnConflictInsert(engine.dialect.name)

    async def create_prompt(self, prompt: SystemPrompt) -> SystemPrompt:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(system_prompts), [prompt.model_dump()])
        except IntegrityError as exc:
            raise ConflictError(f"a system prompt named {prompt.name!r} already exists") from exc
        return prompt

    async def get_prompt(self, id_or_name: str) -> SystemPrompt | None:
        statement = select(system_prompts).where(
            or_(system_prompts.c.id == id_or_name, system_prompts.c.name == id_or_name)
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else SystemPrompt.model_validate(dict(row))

    async def list_prompts(self) -> list[SystemPrompt]:
        async with self._engine.connect() as connection:
            rows = (await connection.execute(select(system_prompts).order_by(system_prompts.c.name))).mappings()
            return [SystemPrompt.model_validate(dict(row)) for row in rows]

    async def update_prompt(
        self, prompt_id: str, *, name: str | None = None, text: str | None = None
    ) -> SystemPrompt | None:
        changes: dict[str, Any] = {"updated_at": utcnow()}
        changes.update({k: v for k, v in (("name", name), ("text", text)) if v is not None})
        statement = update(system_prompts).where(system_prompts.c.id == prompt_id).values(**changes)
        try:
            async with self._engine.begin() as connection:
                if (await connection.execute(statement)).rowcount == 0:
                    return None
        except IntegrityError as exc:
            raise ConflictError(f"a system prompt named {name!r} already exists") from exc
        return await self.get_prompt(prompt_id)

    async def delete_prompt(self, prompt_id: str) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(system_prompts).where(system_prompts.c.id == prompt_id))
        return result.rowcount > 0

    async def save_template(self, template: StoredTemplate) -> StoredTemplate:
        """Insert or replace by name (``created_at`` of an existing one is kept)."""
        row = template.model_dump()
        row["updated_at"] = utcnow()
        statement = self._insert.insert(templates).on_conflict_do_update(
            index_elements=["name"],
            set_={"yaml": row["yaml"], "content": row["content"], "updated_at": row["updated_at"]},
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement, [row])
        saved = await self.get_template(template.name)
        assert saved is not None
        return saved

    async def get_template(self, name: str) -> StoredTemplate | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(templates).where(templates.c.name == name))).mappings().first()
        return None if row is None else StoredTemplate.model_validate(_without_nulls(row))

    async def list_templates(self) -> list[StoredTemplate]:
        async with self._engine.connect() as connection:
            rows = (await connection.execute(select(templates).order_by(templates.c.name))).mappings()
            return [StoredTemplate.model_validate(_without_nulls(row)) for row in rows]

    async def delete_template(self, name: str) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(templates).where(templates.c.name == name))
        return result.rowcount > 0


class SQLKeyStore:
    """``KeyStore``: virtual keys, found by the HMAC hash of the presented key."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, key: VirtualKey) -> VirtualKey:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(virtual_keys), [key.model_dump()])
        except IntegrityError as exc:
            raise ConflictError("a key with this id or hash already exists") from exc
        return key

    async def get(self, key_id: str) -> VirtualKey | None:
        return await self._one(virtual_keys.c.id == key_id)

    async def get_by_hash(self, key_hash: str) -> VirtualKey | None:
        return await self._one(virtual_keys.c.key_hash == key_hash)

    async def list(self, include_revoked: bool = True) -> list[VirtualKey]:
        statement = select(virtual_keys).order_by(virtual_keys.c.created_at, virtual_keys.c.id)
        if not include_revoked:
            statement = statement.where(virtual_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings()
            return [VirtualKey.model_validate(_without_nulls(row)) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        """Mark revoked (once); ``False`` when there is no such active key."""
        statement = (
            update(virtual_keys)
            .where(virtual_keys.c.id == key_id, virtual_keys.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount > 0

    async def add_spend(self, key_id: str, amount: float) -> float | None:
        """Atomically add to ``spent``; returns the new total (``None`` if no such key)."""
        statement = (
            update(virtual_keys)
            .where(virtual_keys.c.id == key_id)
            .values(spent=virtual_keys.c.spent + amount)
            .returning(virtual_keys.c.spent)
        )
        async with self._engine.begin() as connection:
            spent = (await connection.execute(statement)).scalar_one_or_none()
        return None if spent is None else float(spent)

    async def _one(self, condition: Any) -> VirtualKey | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(virtual_keys).where(condition))).mappings().first()
        return None if row is None else VirtualKey.model_validate(_without_nulls(row))
