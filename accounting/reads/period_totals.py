"""The postings' totals per hour, so that the roll-forwards and the balance sheet at a past
instant read a few rows per hour instead of every posting of the history.

``posting_hour_total`` holds, per hour (UTC), account kind (a platform account's code, or the
pattern of a user's or creator's accounts: ``user:*:coins_value``), commodity and flow (the
entry kind, ``payout:<phase>`` for a payout's), the sum and the count of the postings. The
watermark ``posting_total_watermark.summarized_until`` says how far they go: every posting dated
before it is counted, none after. The reads (``financials``) take whole hours below the
watermark from the totals and the rest (a period's partial first and last hours, anything from
the watermark on) from the postings; they never write, so when the totals lag they read more
postings, and the figures are the same to the unit either way.

**Why a summarized hour is complete.** A posting's ``posted_at`` is its entry's, the
``clock_timestamp()`` of the entry's insert, taken after the transaction locked its accounts
(``SELECT ... FOR UPDATE``), and so after it was given a transaction id. Any transaction that
may yet commit a posting dated before the target (an hour boundary at least ``margin`` in the
past, read first) thus had its id before ``summarize`` next takes an id of its own (ids are
given in increasing order). Waiting until the oldest transaction still running is younger
than that id (``pg_snapshot_xmin(pg_current_snapshot())`` past it) means every such
transaction has committed or rolled back, and a transaction that starts after the wait sees
all it wrote. (A snapshot's ``xmax`` would not do as the mark: it is one past the latest
*completed* id, and a transaction in flight may hold an id above it.) If the wait runs out (a
long transaction holds an id), nothing is summarized this time.

**Concurrent summaries** serialize on the watermark row (``FOR UPDATE``): the second one finds
the watermark already at the target and writes nothing, so each hour is written once (its
key would refuse a second row anyway). The totals are history: append-only, like the postings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.checks import Check
from accounting.ledger.in_flight import in_flight_done
from accounting.reads.financials import EDGE_POSTINGS, FLOW_OF_ENTRY, KIND_OF_ACCOUNT

MARGIN = timedelta(minutes=2)
"""How far behind the clock the summaries stay: the hour summarized up to is the one begun at
least this long ago."""
WAIT_SECONDS = 5.0
"""How long a summary waits for the transactions in flight before it gives up for this time."""
BATCH_HOURS = 24 * 31
"""Most hours written in one transaction: a first summary of a long history goes a month at a
time, each committed with its watermark."""

_TARGET = text("SELECT date_trunc('hour', clock_timestamp() - CAST(:margin AS interval), 'UTC')")
_LOCK_WATERMARK = text("SELECT summarized_until FROM posting_total_watermark FOR UPDATE")
_FIRST_HOUR = text("SELECT date_trunc('hour', min(posted_at), 'UTC') FROM journal_entry")
_OPEN_WATERMARK = text(
    "INSERT INTO posting_total_watermark (summarized_until) VALUES (:until)"
    " ON CONFLICT (id) DO NOTHING"
)
_MOVE_WATERMARK = text("UPDATE posting_total_watermark SET summarized_until = :until")
_SUMMARIZE = text(
    "INSERT INTO posting_hour_total"
    "       (hour, account_kind, commodity, flow, account_type, normal_sign, amount, postings)"
    f" SELECT date_trunc('hour', e.posted_at, 'UTC'), {KIND_OF_ACCOUNT}, a.commodity,"
    f"        {FLOW_OF_ENTRY}, a.type, a.normal_sign, sum(p.amount), count(*)"
    f"   FROM {EDGE_POSTINGS}"
    "   WHERE e.posted_at >= :start AND e.posted_at < :until"
    "   GROUP BY 1, 2, 3, 4, 5, 6"
)


@dataclass(frozen=True, slots=True)
class Summary:
    """What one ``summarize`` did: the watermark before and after, the hours and rows written.
    ``waited_out`` when transactions in flight outlasted the wait (nothing written)."""

    summarized_from: datetime | None
    summarized_until: datetime | None
    hours: int
    rows: int
    waited_out: bool = False


async def summarize(
    session: AsyncSession,
    *,
    margin: timedelta = MARGIN,
    wait_seconds: float = WAIT_SECONDS,
    batch_hours: int = BATCH_HOURS,
) -> Summary:
    """Bring the totals up to the hour begun at least ``margin`` ago, once no transaction in
    flight can still commit a posting before it (the module's docstring says why this order
    makes that so). Commits; each batch of hours with its watermark in one transaction."""
    target: datetime = await session.scalar(_TARGET, {"margin": margin})
    done = await in_flight_done(session, wait_seconds)
    await session.commit()
    if not done:
        return Summary(None, None, 0, 0, waited_out=True)
    started: datetime | None = None
    until: datetime | None = None
    hours = rows = 0
    while True:
        until = await session.scalar(_LOCK_WATERMARK)
        if until is None:
            first = await session.scalar(_FIRST_HOUR)
            await session.execute(_OPEN_WATERMARK, {"until": min(first or target, target)})
            until = await session.scalar(_LOCK_WATERMARK)
        assert until is not None
        started = until if started is None else started
        if until >= target:
            await session.commit()
            return Summary(started, until, hours, rows)
        step = min(target, until + timedelta(hours=batch_hours))
        written = await session.execute(_SUMMARIZE, {"start": until, "until": step})
        await session.execute(_MOVE_WATERMARK, {"until": step})
        await session.commit()
        hours += int((step - until) / timedelta(hours=1))
        rows += written.rowcount  # type: ignore[attr-defined]


CHECKS: tuple[Check, ...] = (
    Check(
        5,
        "hour_totals_are_the_sums_of_postings",
        f"""
        WITH watermark AS (SELECT summarized_until FROM posting_total_watermark),
        counted AS (SELECT hour, account_kind, commodity, flow, amount, postings
                      FROM posting_hour_total),
        posted AS (
             SELECT date_trunc('hour', e.posted_at, 'UTC') AS hour,
                    {KIND_OF_ACCOUNT} AS account_kind, a.commodity, {FLOW_OF_ENTRY} AS flow,
                    sum(p.amount) AS amount, count(*) AS postings
               FROM watermark w, {EDGE_POSTINGS}
              WHERE e.posted_at < w.summarized_until
              GROUP BY 1, 2, 3, 4)
        SELECT format('hour %s, %s %s %s: the totals hold %s in %s postings, the postings'
                      ' before the watermark sum to %s in %s',
                      hour, account_kind, commodity, flow, coalesce(c.amount, 0),
                      coalesce(c.postings, 0), coalesce(p.amount, 0), coalesce(p.postings, 0))
          FROM counted c FULL JOIN posted p USING (hour, account_kind, commodity, flow)
         WHERE c.amount IS DISTINCT FROM p.amount OR c.postings IS DISTINCT FROM p.postings""",
    ),
)
"""The totals of every summarized hour are the sums of its postings, and every posting dated
before the watermark is counted (a total of an hour at or past the watermark, or one no
posting explains, shows as a total the postings do not match)."""
