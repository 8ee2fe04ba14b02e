"""Waiting for the transactions in flight: what a step that treats the journal up to some point
as complete (the postings' totals of an hour, the seals of the chain, a period's close) does
first, so that no transaction still running can add to what it is about to treat as done.

An entry's ``posted_at`` is the ``clock_timestamp()`` of its insert, taken after its transaction
locked its accounts and so after it was given a transaction id; its id (``journal_entry.id``)
is drawn at the insert too. Any transaction that may yet commit an entry dated before an instant
read first, or whose id is below one drawn first, thus had its transaction id before the waiting
step next takes an id of its own (ids are given in increasing order). Once the oldest
transaction still running is younger than that id, every such transaction has committed or
rolled back, and a transaction that starts after the wait sees all it wrote
(accounting/reads/period_totals.py explains it at length)."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

POLL_SECONDS = 0.05

_NEW_XID = text("SELECT CAST(pg_current_xact_id() AS text)")
_IN_FLIGHT_DONE = text(
    "SELECT pg_snapshot_xmin(pg_current_snapshot()) > CAST(CAST(:xid AS text) AS xid8)"
)


async def in_flight_done(session: AsyncSession, wait_seconds: float) -> bool:
    """Wait (at most ``wait_seconds``) until every transaction that holds an id now has
    finished: True once the oldest transaction still running is younger than an id taken now.

    The id is taken (and committed) for the purpose: a snapshot's ``xmax`` would not do, being
    one past the latest *completed* id, so that a transaction in flight may hold an id at or
    above it (and not be listed among the snapshot's running ones)."""
    xid = await session.scalar(_NEW_XID)
    await session.commit()
    deadline = time.monotonic() + wait_seconds
    while not await session.scalar(_IN_FLIGHT_DONE, {"xid": xid}):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True
