"""The invariant check after each phase: the integrity check finds no violation, and every
acknowledged request (a purchase, a gift) is exactly one entry of its kind in the books (none
lost, none extra)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.integrity import check_integrity
from api.database import create_engine, libpq_url, session_factory

ENTRIES_OF_KIND = "SELECT count(*) FROM journal_entry WHERE kind = :kind"
TRANSACTIONS = (
    "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
)


@dataclass(frozen=True, slots=True)
class BooksCheck:
    acknowledged: int
    """Requests the clients were told succeeded (purchases completed, gifts sent)."""
    entries: int
    """Journal entries of ``kind`` written during the phase."""
    entries_checked: int
    kind: str = "purchase"
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and self.acknowledged == self.entries

    def problems(self) -> list[str]:
        found = list(self.violations)
        if self.acknowledged != self.entries:
            found.append(
                f"{self.acknowledged} {self.kind}s acknowledged, "
                f"{self.entries} {self.kind} entries in the books"
            )
        return found


async def entries_of_kind(sessions: async_sessionmaker[AsyncSession], kind: str) -> int:
    async with sessions() as session:
        count = await session.scalar(text(ENTRIES_OF_KIND), {"kind": kind})
    return int(count or 0)


async def purchase_entries(sessions: async_sessionmaker[AsyncSession]) -> int:
    return await entries_of_kind(sessions, "purchase")


async def check_books(
    sessions: async_sessionmaker[AsyncSession],
    acknowledged: int,
    entries_before: int = 0,
    *,
    kind: str = "purchase",
) -> BooksCheck:
    """Check the books once the phase's load has stopped. ``entries_before`` is the count of
    ``kind`` entries before the phase (0 on a fresh database)."""
    async with sessions() as session:
        report = await check_integrity(session)
    return BooksCheck(
        acknowledged=acknowledged,
        entries=await entries_of_kind(sessions, kind) - entries_before,
        entries_checked=report.entries,
        kind=kind,
        violations=[f"invariant {v.invariant} {v.check}: {v.detail}" for v in report.violations],
    )


async def entries_at(url: URL, kind: str = "purchase") -> int:
    """Entries of ``kind`` in the database at ``url`` (its own short-lived connection)."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        return await entries_of_kind(session_factory(engine), kind)
    finally:
        await engine.dispose()


async def check_books_at(
    url: URL, acknowledged: int, entries_before: int, *, kind: str = "purchase"
) -> BooksCheck:
    """:func:`check_books` on the database at ``url``, once nothing else writes to it."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        return await check_books(session_factory(engine), acknowledged, entries_before, kind=kind)
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
