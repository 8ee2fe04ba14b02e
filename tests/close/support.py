"""Shared set-up for the close's tests: entries written by hand, dated in a past month (the
service dates every entry now), and the months before this one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.close import checks as close_checks
from accounting.close.rules import month_name, month_start
from accounting.ledger import checks as ledger_checks
from api.database import libpq_url
from tests.ledger.test_database_invariants import ISSUED, SPENT, RawEntry, insert_postings

FINANCE = "user:fiona"


def months_ago(count: int) -> datetime:
    """The first instant (UTC) of the month ``count`` months before this one."""
    month = month_start(datetime.now(UTC))
    for _ in range(count):
        month = month_start(month - timedelta(days=1))
    return month


def name(month: datetime) -> str:
    return month_name(month)


@pytest.fixture
async def raw(db_url: URL) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(libpq_url(db_url))
    try:
        yield connection
    finally:
        await connection.close()


async def grant(
    raw: asyncpg.Connection, key: str, at: datetime, coins: int, refs: str = "{}"
) -> RawEntry:
    """An entry written by hand, dated ``at``: ``coins`` coins issued and spent
    (``platform:coins:issued`` debited, ``platform:coins:spent`` credited). Commits unless the
    caller holds a transaction on ``raw``."""
    async with raw.transaction():
        row = await raw.fetchrow(
            "INSERT INTO journal_entry (kind, event_key, fingerprint, posted_at, actor, refs)"
            " VALUES ('transfer', $1, 'raw', $2, 'test:raw-sql', CAST($3 AS jsonb))"
            " RETURNING id, posted_at",
            key,
            at,
            refs,
        )
        assert row is not None
        entry = RawEntry(row["id"], row["posted_at"])
        await insert_postings(raw, entry, [(ISSUED, coins), (SPENT, -coins)])
    return entry


async def violations(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """What the ledger core's checks and the close's find (the integrity check's, run alone)."""
    found: list[str] = []
    async with sessions() as session:
        for check in (*ledger_checks.CHECKS, *close_checks.CHECKS):
            found += list(await session.scalars(text(check.sql)))
    return found
