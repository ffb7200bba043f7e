"""``SessionRevocationStore`` on SQLAlchemy: workbench sessions logged out before they expire, for every process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.storage.base import utcnow
from modelyard.storage.schema import web_session_revocations as revocations
from modelyard.storage.sql_filters import OnConflictInsert


class SQLSessionRevocationStore:
    """Revoked session nonces until their sessions would have expired; expired rows go on each revoke."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = OnConflictInsert(engine.dialect.name)

    async def revoke(self, nonce: str, expires_at: datetime) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(delete(revocations).where(revocations.c.expires_at <= utcnow()))
            await connection.execute(self._insert(revocations, "nonce"), [{"nonce": nonce, "expires_at": expires_at}])

    async def revoked(self) -> set[str]:
        """The nonces of sessions logged out and not yet expired."""
        statement = select(revocations.c.nonce).where(revocations.c.expires_at > utcnow())
        async with self._engine.connect() as connection:
            return set((await connection.scalars(statement)).all())
