"""The invariant check after each phase: the integrity check finds no violation, and every
acknowledged purchase is exactly one purchase entry in the books (none lost, none extra)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.integrity import check_integrity
from api.database import create_engine, libpq_url, session_factory

PURCHASE_ENTRIES = "SELECT count(*) FROM journal_entry WHERE kind = 'purchase'"
TRANSACTIONS = (
    "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
)


@dataclass(frozen=True, slots=True)
class BooksCheck:
    acknowledged: int
    """Purchases the clients were told completed."""
    purchase_entries: int
    """Purchase journal entries written during the phase."""
    entries_checked: int
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and self.acknowledged == self.purchase_entries

    def problems(self) -> list[str]:
        found = list(self.violations)
        if self.acknowledged != self.purchase_entries:
            found.append(
                f"{self.acknowledged} purchases acknowledged, "
                f"{self.purchase_entries} purchase entries in the books"
            )
        return found


async def purchase_entries(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        count = await session.scalar(text(PURCHASE_ENTRIES))
    return int(count or 0)


async def check_books(
    sessions: async_sessionmaker[AsyncSession], acknowledged: int, entries_before: int = 0
) -> BooksCheck:
    """Check the books once the phase's load has stopped. ``entries_before`` is the count of
    purchase entries before the phase (0 on a fresh database)."""
    async with sessions() as session:
        report = await check_integrity(session)
    return BooksCheck(
        acknowledged=acknowledged,
        purchase_entries=await purchase_entries(sessions) - entries_before,
        entries_checked=report.entries,
        violations=[f"invariant {v.invariant} {v.check}: {v.detail}" for v in report.violations],
    )


async def entries_at(url: URL) -> int:
    """Purchase entries in the database at ``url`` (its own short-lived connection)."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        return await purchase_entries(session_factory(engine))
    finally:
        await engine.dispose()


async def check_books_at(url: URL, acknowledged: int, entries_before: int) -> BooksCheck:
    """:func:`check_books` on the database at ``url``, once nothing else writes to it."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        return await check_books(session_factory(engine), acknowledged, entries_before)
    finally:
        await engine.dispose()


async def transactions_at(url: URL, *, settle: bool = False) -> int:
    """Transactions PostgreSQL has counted in the database (committed and rolled back).

    Backends report their counts when they exit, a moment after their connection closes:
    with ``settle``, wait until the figure stops moving.
    """
    if settle:
        await asyncio.sleep(0.25)
    conn = await asyncpg.connect(libpq_url(url))
    try:
        count = await conn.fetchval(TRANSACTIONS)
        for _ in range(20 if settle else 0):
            await asyncio.sleep(0.25)
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            again = await conn.fetchval(TRANSACTIONS)
            if again == count:
                break
            count = again
    finally:
        await conn.close()
    return int(count or 0)
