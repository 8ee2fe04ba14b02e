"""Closing a month: the rules (ended, in order, once, no open reconciliation exception unless
overridden with a reason), the record and its audit, and the database refusing any entry dated
into a closed month, raw SQL included, while an entry dated in the open month still posts and
references the one it follows up.

The books: two months ago (M1) 10 coins are issued and spent on the 3rd and 4 on the 20th; last
month (M2) 6 on the 5th. Closing M1 seals all three entries (the head is M2's entry, the last
posted); closing M2 after it records the same head."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.close import reads
from accounting.close.errors import (
    InvalidMonth,
    PeriodAlreadyClosed,
    PeriodNotEnded,
    PeriodOutOfOrder,
    UnresolvedExceptions,
)
from accounting.close.service import CloseRequest, close_period
from accounting.ledger.errors import InvalidReason
from accounting.policy.tables import AuditRow
from accounting.settlement import service as settlement
from tests.close.support import FINANCE, grant, months_ago, name, raw, violations
from tests.settlement.support import report

__all__ = ["raw"]

DAY = timedelta(days=1)


def close(month: str, reason: str = "month-end", **override: str) -> CloseRequest:
    return CloseRequest(
        month,
        FINANCE,
        reason,
        override=bool(override),
        override_reason=override.get("because", ""),
    )


async def a_quarter(raw: asyncpg.Connection) -> list[int]:
    m1, m2 = months_ago(2), months_ago(1)
    entries = [
        await grant(raw, "m1-a", m1 + 2 * DAY, 10),
        await grant(raw, "m1-b", m1 + 19 * DAY, 4),
        await grant(raw, "m2-a", m2 + 4 * DAY, 6),
    ]
    return [entry.id for entry in entries]


async def test_a_closed_month_refuses_every_entry_dated_into_it(
    sessions: async_sessionmaker[AsyncSession], raw: asyncpg.Connection
) -> None:
    """M1 closes: its record says who, why and the chain's head (M2's entry, the last one),
    audited. Then raw SQL dating an entry on M1's last microsecond is refused by the database,
    one on M2's 21st posts, and so does a late entry dated now that references M1's."""
    ids = await a_quarter(raw)
    m1, m2 = months_ago(2), months_ago(1)
    row = await close_period(sessions, close(name(m1), "books of M1 done"))
    assert (row.month, row.period_end, row.closed_by) == (m1, m2, FINANCE)
    assert (row.override, row.override_reason, row.open_exceptions) == (False, None, 0)
    assert row.head_entry_id == ids[2]
    async with sessions() as session:
        head = await reads.chain_head(session)
        assert (head.entry_id, head.hash) == (ids[2], row.head_hash)
        audit = await session.scalar(select(AuditRow).where(AuditRow.action == "close_period"))
    assert audit is not None
    assert (audit.actor, audit.subject, audit.reason) == (
        FINANCE,
        f"period:{name(m1)}",
        "books of M1 done",
    )
    assert audit.details["head_entry_id"] == ids[2]

    with pytest.raises(asyncpg.RestrictViolationError, match="falls in a closed period"):
        await grant(raw, "late-m1", m2 - timedelta(microseconds=1), 3)
    await grant(raw, "later-in-m2", m2 + 20 * DAY, 2)
    await grant(raw, "late-follow-up", await raw.fetchval("SELECT now()"), 3, '{"follows": 1}')
    assert await raw.fetchval("SELECT count(*) FROM journal_entry WHERE event_key = 'late-m1'") == 0
    assert await violations(sessions) == []


async def test_months_close_after_they_end_in_order_once(
    sessions: async_sessionmaker[AsyncSession], raw: asyncpg.Connection
) -> None:
    """This month has not ended; M2 cannot close before M1 (the month of the first entry); the
    month before M1, before the books began, may close first (empty; its close seals the three
    entries all the same); then M1, once; then M2, recording the same head (nothing was posted
    in between); a month is YYYY-MM and a close says why."""
    ids = await a_quarter(raw)
    m0, m1, m2, now = months_ago(3), months_ago(2), months_ago(1), months_ago(0)
    refusals: list[tuple[CloseRequest, type[Exception], str]] = [
        (close(name(now)), PeriodNotEnded, f"{name(now)} ends at "),
        (close(name(m2)), PeriodOutOfOrder, f"the next to close is {name(m1)}"),
        (close("2026-13"), InvalidMonth, "A month is YYYY-MM"),
        (close(name(m1), " "), InvalidReason, "a reason is required"),
    ]
    for request, refused, message in refusals:
        with pytest.raises(refused, match=message):
            await close_period(sessions, request)
    before = await close_period(sessions, close(name(m0)))
    assert before.head_entry_id == ids[2]
    with pytest.raises(PeriodOutOfOrder, match=f"the next to close is {name(m1)}"):
        await close_period(sessions, close(name(m2)))
    first = await close_period(sessions, close(name(m1)))
    with pytest.raises(PeriodAlreadyClosed):
        await close_period(sessions, close(name(m1)))
    second = await close_period(sessions, close(name(m2)))
    assert second.head_hash == first.head_hash and second.head_entry_id == first.head_entry_id
    async with sessions() as session:
        assert [p.month for p in await reads.closed_periods(session)] == [m2, m1, m0]


async def test_an_open_reconciliation_exception_holds_the_close_unless_overridden(
    sessions: async_sessionmaker[AsyncSession], raw: asyncpg.Connection
) -> None:
    """A card report settled on M1's 25th names a charge the ledger never saw (ch_ghost, $2.00,
    fee $0.36, net $1.64): one open exception. The close of M1 is refused; with an override but
    no reason too; with the override and its reason it closes, recording 1 open exception."""
    await a_quarter(raw)
    m1 = months_ago(2)
    settled = (m1 + 24 * DAY).isoformat()
    text = report(
        "rep-m1", "card", ("ch_ghost", "charge", "2.00", "0.36", "1.64", "USD"), at=settled
    )
    imported = await settlement.import_report(sessions, settlement.ImportRequest(text, FINANCE))
    assert [e.kind for e in imported.exceptions] == ["missing_in_ledger"]
    with pytest.raises(UnresolvedExceptions, match="1 reconciliation exception") as refused:
        await close_period(sessions, close(name(m1)))
    assert refused.value.facts["open_exceptions"] == 1
    with pytest.raises(InvalidReason):
        await close_period(sessions, close(name(m1), because=" "))
    row = await close_period(sessions, close(name(m1), because="ghost charge chased with card"))
    assert (row.override, row.override_reason, row.open_exceptions) == (
        True,
        "ghost charge chased with card",
        1,
    )
