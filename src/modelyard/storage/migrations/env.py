"""Alembic environment.

``modelyard.storage.migrate`` hands in a live connection (``config.attributes["connection"]``), so this
works inside a running event loop. Run by the ``alembic`` command instead, it opens its own async engine
from ``sqlalchemy.url``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from modelyard.storage.engine import create_engine
from modelyard.storage.schema import is_full_text_object, metadata

config = context.config


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave the dialect-specific full-text objects out of autogenerate comparisons."""
    return not is_full_text_object(name)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=_include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    asyncio.run(_run_async(str(config.get_main_option("sqlalchemy.url"))))
