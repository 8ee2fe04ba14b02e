"""A close racing a transaction that posts into the month it closes, on real connections: the
entry is either included (committed before the close sealed, and under its head) or refused
into the next period (the database refuses it dated in the closed month; dated now, it posts),
never both, never neither.

The books: two months ago (M1) 10 coins issued and spent on the 3rd; the racing transaction
(a gift batch, written by hand so that it can be dated in M1) issues and spends 5 on the 26th."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.close import reads
from accounting.close.service import CloseRequest, close_period
from api.database import libpq_url
from tests.close.support import FINANCE, grant, months_ago, name, raw, violations

__all__ = ["raw"]

DAY = timedelta(days=1)


def close_m1() -> CloseRequest:
    return CloseRequest(name(months_ago(2)), FINANCE, "month-end")


async def test_a_close_waits_for_the_batch_in_flight_and_includes_it(
    sessions: async_sessionmaker[AsyncSession], raw: asyncpg.Connection
) -> None:
    """The batch has written its M1 entry and not committed when the close starts: the close
    waits (still running half a second later); the batch commits; the close then seals it and
    records it as the head: included, once."""
    m1 = months_ago(2)
    await grant(raw, "m1-a", m1 + 2 * DAY, 10)
    batch = raw.transaction()
    await batch.start()
    in_flight = await grant(raw, "gift-batch", m1 + 25 * DAY, 5)
    closing = asyncio.create_task(close_period(sessions, close_m1(), wait_seconds=10))
    await asyncio.sleep(0.5)
    assert not closing.done()
    await batch.commit()
    row = await closing
    assert row.head_entry_id == in_flight.id
    async with sessions() as session:
        verified = await reads.verify_chain(session)
    assert verified.intact and (verified.entries_checked, verified.sealed) == (2, 2)
    assert await violations(sessions) == []


async def test_a_batch_behind_a_close_in_progress_is_refused_into_the_next_period(
    sessions: async_sessionmaker[AsyncSession], raw: asyncpg.Connection, db_url: URL
) -> None:
    """A close in progress holds the close's lock and has recorded M1, not yet committed (as
    close_period does after it sealed). The batch's M1 entry waits for it; the close commits;
    the entry is refused. Dated now, in the open period, and referencing M1, it posts."""
    m1 = months_ago(2)
    first = await grant(raw, "m1-a", m1 + 2 * DAY, 10)
    closer = await asyncpg.connect(libpq_url(db_url))
    try:
        closing = closer.transaction()
        await closing.start()
        await closer.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('coinbooks:period_close', 0))"
        )
        await closer.execute(
            "INSERT INTO closed_period (month, period_end, closed_by, reason, open_exceptions)"
            " VALUES ($1, $2, $3, 'month-end', 0)",
            m1,
            months_ago(1),
            FINANCE,
        )
        batch = asyncio.create_task(grant(raw, "gift-batch", m1 + 25 * DAY, 5))
        await asyncio.sleep(0.5)
        assert not batch.done()
        await closing.commit()
        with pytest.raises(asyncpg.RestrictViolationError, match="falls in a closed period"):
            await batch
    finally:
        await closer.close()
    now = await raw.fetchval("SELECT now()")
    late = await grant(raw, "gift-batch-late", now, 5, f'{{"follows_entry_id": {first.id}}}')
    assert late.id > first.id
    dated = await raw.fetch("SELECT event_key, posted_at FROM journal_entry ORDER BY id")
    assert [row["event_key"] for row in dated] == ["m1-a", "gift-batch-late"]
    assert dated[1]["posted_at"] >= months_ago(0)
