"""The postings' totals per hour: the reports read the same, to the unit, with them and without.

The month of books of ``test_financials`` is told again, then moved back in time so that its
entries stand 20 minutes apart, the first at 00:20 of yesterday's first hour (H0) and every third
exactly on an hour (H0 + 1h, H0 + 2h, ...). Every report is read before any summary (each
account's running balance, each subject account's postings), then after a summary up to H0 + 4h
(totals for the first four hours, the postings for the rest) and after a summary up to two
minutes ago (totals for every hour of the story): each balance sheet (on every hour, mid-hour,
on each entry and a microsecond either side), each income statement and each roll-forward is
the same. At the end the books read as the story's figures at t2 (``check_sheet_at_t2``, and so
on), derived by hand in ``test_financials``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.integrity import check_integrity
from accounting.ledger import checks as ledger_checks
from accounting.purchases.service import PurchaseService
from accounting.reads import financials, period_totals
from accounting.reads.period_totals import Summary, summarize
from api.app import create_app
from api.database import libpq_url
from api.settings import Settings
from tests.ledger.test_database_invariants import ISSUED, SPENT, RawEntry, insert_postings
from tests.reads.test_financials import (
    MICROSECOND,
    a_month_of_books,
    check_income_statement,
    check_roll_forwards,
    check_sheet_at_t2,
)

HOUR = timedelta(hours=1)
COINBOOKS = Path(sys.executable).parent / "coinbooks"
STEP = timedelta(minutes=20)


@pytest.fixture
async def raw(db_url: URL) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(libpq_url(db_url))
    try:
        yield connection
    finally:
        await connection.close()


async def move_back(raw: asyncpg.Connection) -> tuple[datetime, list[datetime]]:
    """Date the entries (and their postings) H0 + 20 min, H0 + 40 min, H0 + 1h, ... in their
    order, H0 being the hour that began 24 hours before this one: the order of every account's
    history is kept. Entries are history, so their guards are set aside while this is done."""
    h0: datetime = await raw.fetchval("SELECT date_trunc('hour', now(), 'UTC') - interval '24h'")
    ids = [r["id"] for r in await raw.fetch("SELECT id FROM journal_entry ORDER BY posted_at, id")]
    dates = [h0 + STEP * (n + 1) for n in range(len(ids))]
    await raw.execute("ALTER TABLE journal_entry DISABLE TRIGGER USER")
    await raw.execute("ALTER TABLE posting DISABLE TRIGGER USER")
    for table, key in (("journal_entry", "id"), ("posting", "entry_id")):
        await raw.execute(
            f"UPDATE {table} t SET posted_at = m.at"
            f"  FROM unnest($1::bigint[], $2::timestamptz[]) m(id, at) WHERE t.{key} = m.id",
            ids,
            dates,
        )
    await raw.execute("ALTER TABLE journal_entry ENABLE TRIGGER USER")
    await raw.execute("ALTER TABLE posting ENABLE TRIGGER USER")
    return h0, dates


def instants(h0: datetime, dates: list[datetime]) -> list[datetime]:
    """Every hour of the story and its half-hour, and each entry and a microsecond either side."""
    hours = [h0 + HOUR * n for n in range(int((dates[-1] - h0) / HOUR) + 2)]
    return sorted(
        {*hours, *(h + HOUR / 2 for h in hours)}
        | {d + tick for d in dates for tick in (-MICROSECOND, timedelta(0), MICROSECOND)}
    )


async def every_report(
    sessions: async_sessionmaker[AsyncSession], h0: datetime, dates: list[datetime]
) -> dict[tuple[str, datetime, datetime | None], Any]:
    """Each balance sheet at each instant; the income statement and the roll-forwards over
    every period between two of the hours, half-hours and a few entries (exactly and just
    after)."""
    found: dict[tuple[str, datetime, datetime | None], Any] = {}
    bounds = sorted(
        {h0 + HOUR / 2 * n for n in range(int((dates[-1] - h0) / HOUR) * 2 + 3)}
        | {dates[4], dates[7] + MICROSECOND, dates[11]}
    )
    async with sessions() as session:
        for at in instants(h0, dates):
            found[("balance_sheet", at, None)] = await financials.balance_sheet(session, "USD", at)
        for start, end in itertools.combinations(bounds, 2):
            found[("income", start, end)] = await financials.income_statement(
                session, "USD", start, end
            )
            found[("roll", start, end)] = await financials.roll_forwards(session, "USD", start, end)
    return found


async def summarize_until(
    sessions: async_sessionmaker[AsyncSession], until: datetime | None = None
) -> Summary:
    """Summarize up to the hour ``until`` (by a margin that far behind the clock), or up to
    the hour begun two minutes ago."""
    async with sessions() as session:
        if until is None:
            return await summarize(session)
        now: datetime | None = await session.scalar(select(func.clock_timestamp()))
        assert now is not None
        return await summarize(session, margin=now - until - HOUR / 2)


async def totals_rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        found: int | None = await session.scalar(text("SELECT count(*) FROM posting_hour_total"))
    assert found is not None
    return found


LEDGER_AND_TOTALS = {check.name for check in (*ledger_checks.CHECKS, *period_totals.CHECKS)}


async def integrity_violations(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """What the ledger core's checks and the totals' find (moved back in time, a gift's entries
    no longer follow its own dates, which the gifts' checks would rightly say)."""
    async with sessions() as session, session.begin():
        report = await check_integrity(session)
    return [f"{v.check}: {v.detail}" for v in report.violations if v.check in LEDGER_AND_TOTALS]


async def test_every_report_reads_the_same_with_the_totals_and_without(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    client: httpx.AsyncClient,
    raw: asyncpg.Connection,
) -> None:
    _, t1, _ = await a_month_of_books(sessions, purchases, client)
    before_t1 = await raw.fetchval("SELECT count(*) FROM journal_entry WHERE posted_at < $1", t1)
    h0, dates = await move_back(raw)
    assert len(dates) > 12 and dates[2] == h0 + HOUR and dates[-1] < h0 + 12 * HOUR
    without_totals = await every_report(sessions, h0, dates)

    # The first posting is at H0 + 20 min, so the first summary starts at H0: four hours.
    partly = await summarize_until(sessions, h0 + 4 * HOUR)
    assert (partly.summarized_from, partly.summarized_until, partly.hours) == (
        h0,
        h0 + 4 * HOUR,
        4,
    )
    assert partly.rows == await totals_rows(sessions) > 0
    assert await every_report(sessions, h0, dates) == without_totals

    fully = await summarize_until(sessions)
    assert fully.summarized_until is not None and fully.summarized_until >= h0 + 23 * HOUR
    assert fully.summarized_from == h0 + 4 * HOUR
    assert fully.hours == (fully.summarized_until - fully.summarized_from) / HOUR
    assert partly.rows + fully.rows == await totals_rows(sessions)
    assert await every_report(sessions, h0, dates) == without_totals
    assert await integrity_violations(sessions) == []

    # With every hour summarized, the story's figures (test_financials), from the totals.
    t1_moved, t2_moved = dates[before_t1], dates[-1] + MICROSECOND
    async with sessions() as session:
        assert await financials.summarized_hours(session, None, t2_moved) is not None
        check_sheet_at_t2(await financials.balance_sheet(session, "USD", t2_moved))
        check_income_statement(await financials.income_statement(session, "USD", h0, t2_moved))
        check_roll_forwards(await financials.roll_forwards(session, "USD", t1_moved, t2_moved))

    # Nothing to do a second time.
    again = await summarize_until(sessions)
    assert (again.hours, again.rows) == (0, 0)


async def test_the_integrity_check_finds_a_total_no_posting_explains(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    client: httpx.AsyncClient,
    raw: asyncpg.Connection,
) -> None:
    await a_month_of_books(sessions, purchases, client)
    h0, _ = await move_back(raw)
    await summarize_until(sessions)
    await raw.execute(
        "INSERT INTO posting_hour_total VALUES ($1, 'platform:bank:USD', 'USD', 'purchase',"
        " 'asset', 1, 5, 1)",
        h0 + 2 * HOUR,
    )
    violations = await integrity_violations(sessions)
    assert len(violations) == 1
    assert violations[0].startswith("hour_totals_are_the_sums_of_postings: hour ")
    assert "platform:bank:USD USD purchase: the totals hold 5 in 1 postings" in violations[0]


async def test_two_summaries_racing_write_each_hour_once(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    client: httpx.AsyncClient,
    raw: asyncpg.Connection,
) -> None:
    """A third connection holds the watermark while both start; they both wait for it (it is
    a transaction in flight), then race for the watermark: one writes the hours from H0 + 4h
    to the last, the other finds them written."""
    await a_month_of_books(sessions, purchases, client)
    h0, _ = await move_back(raw)
    await summarize_until(sessions, h0 + 4 * HOUR)
    rows_before = await totals_rows(sessions)
    holder = raw.transaction()
    await holder.start()
    await raw.execute("SELECT * FROM posting_total_watermark FOR UPDATE")

    async def release_soon() -> None:
        await asyncio.sleep(0.5)
        await holder.commit()

    one, other, _ = await asyncio.gather(
        summarize_until(sessions), summarize_until(sessions), release_soon()
    )
    last = max(one, other, key=lambda summary: summary.hours).summarized_until
    assert last is not None and one.summarized_until == other.summarized_until == last
    assert sorted([one.hours, other.hours]) == [0, (last - (h0 + 4 * HOUR)) / HOUR]
    assert min(one.rows, other.rows) == 0
    assert rows_before + max(one.rows, other.rows) == await totals_rows(sessions)
    assert await integrity_violations(sessions) == []


async def issue_and_spend_three_hours_ago(raw: asyncpg.Connection) -> datetime:
    """An entry dated three hours ago by its transaction's clock, written by hand: 7 coins
    issued and spent (``platform:coins:issued`` debited, ``platform:coins:spent`` credited)."""
    async with raw.transaction():
        row = await raw.fetchrow(
            "INSERT INTO journal_entry (kind, event_key, fingerprint, posted_at, actor)"
            " VALUES ('transfer', 'late-grant', 'raw', clock_timestamp() - interval '3h',"
            " 'test:raw-sql') RETURNING id, posted_at"
        )
        assert row is not None
        entry = RawEntry(row["id"], row["posted_at"])
        await insert_postings(raw, entry, [(ISSUED, 7), (SPENT, -7)])
    return entry.posted_at


async def test_a_summary_waits_out_a_transaction_that_may_still_post_before_its_hour(
    sessions: async_sessionmaker[AsyncSession], raw: asyncpg.Connection
) -> None:
    """An entry dated three hours ago, not yet committed (its transaction holds it): the
    summary up to the hour begun two minutes ago gives up, writing nothing; once the entry
    commits, the next summary counts its 7 coins issued (a debit of the contra-equity
    ``platform:coins:issued``, read as 7 on its memo line) and spent."""
    writer = raw.transaction()
    await writer.start()
    past = await issue_and_spend_three_hours_ago(raw)
    async with sessions() as session:
        waited = await summarize(session, wait_seconds=0.3)
    assert waited.waited_out and (waited.hours, waited.rows) == (0, 0)
    assert await totals_rows(sessions) == 0

    await writer.commit()
    async with sessions() as session:
        without_totals = await financials.balance_sheet(session, "USD", past + HOUR)
    done = await summarize_until(sessions)
    assert done.rows == 2 and done.hours >= 2  # issued and spent, in the hour of ``past``
    async with sessions() as session:
        sheet = await financials.balance_sheet(session, "USD", past + HOUR)
        assert await financials.summarized_hours(session, None, past + HOUR) is not None
    assert sheet == without_totals
    assert {(line.code, line.amount) for line in sheet.lines} == {
        ("memo:coins_issued", 7),
        ("memo:coins_spent", -7),
    }
    assert await integrity_violations(sessions) == []


async def summarize_totals_command(db_url: URL) -> str:
    env = {**os.environ, "DATABASE_URL": db_url.render_as_string(hide_password=False)}
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS), "summarize-totals", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


async def test_the_command_summarizes_and_says_what_it_wrote(
    db_url: URL, raw: asyncpg.Connection
) -> None:
    """``coinbooks summarize-totals``: the entry's two postings, in the hour of three hours ago,
    are two rows; from that hour to the one begun two minutes ago, three hours (two in the
    first two minutes of an hour). Run again, it writes nothing."""
    await issue_and_spend_three_hours_ago(raw)
    first = await summarize_totals_command(db_url)
    assert re.match(r"Summarized [23] hour\(s\) into 2 row\(s\): totals from ", first)
    again = await summarize_totals_command(db_url)
    assert again.startswith("Summarized 0 hour(s) into 0 row(s)")


async def test_the_service_keeps_the_totals_current(
    settings: Settings, db_url: URL, raw: asyncpg.Connection
) -> None:
    """With the service's round every 0.2 s, its first round counts the entry's two postings."""
    await issue_and_spend_three_hours_ago(raw)
    app = create_app(settings.model_copy(update={"posting_totals_every_seconds": 0.2}), db_url)
    async with app.router.lifespan_context(app):
        for _ in range(100):
            if await raw.fetchval("SELECT count(*) FROM posting_total_watermark"):
                break
            await asyncio.sleep(0.1)
    assert await raw.fetchval("SELECT sum(postings) FROM posting_hour_total") == 2
