"""Alembic environment (async). The URL comes from ``config.attributes['database_url']``,
set by ``api.database.alembic_config``, or from ``DATABASE_URL`` when run as plain alembic.
With ``config.attributes['advisory_lock']`` (a bigint), the run holds that advisory lock on the
database: runs started together go one after the other, and the later find the work done."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from accounting.metadata import Base

config = context.config
target_metadata = Base.metadata


def _url() -> URL:
    url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
    if url is None:
        raise RuntimeError("set DATABASE_URL or run migrations through `coinbooks migrate`")
    return make_url(url) if isinstance(url, str) else url


def _run(connection: Connection) -> None:
    lock = config.attributes.get("advisory_lock")
    if lock is not None:  # held until the connection closes, after the migrations committed
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock})
        connection.commit()
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(
        _url().set(drivername="postgresql+asyncpg"), poolclass=pool.NullPool
    )
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=_url().render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
