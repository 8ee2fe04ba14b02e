"""Closing a period and sealing the journal.

**Sealing** (:func:`seal_journal`) hashes the entries above the last sealed one, in id order,
into ``entry_seal``, after the transaction that posted them committed: the gift's hot path
writes no hash and waits for nothing. It reads the highest entry id given out so far (the
sequence's, committed or not) first, then waits for the transactions in flight
(accounting/ledger/in_flight.py): a transaction draws an entry's id at the insert, after it
locked its accounts and so after it held a transaction id, so once those in flight have
finished no entry can appear at or below that id, and the chain never skips one (an id of a
transaction rolled back is a gap in the ids, not in the chain). Concurrent sealers serialize
on an advisory lock; each batch commits with its seals.

**Closing** (:func:`close_period`) checks the month (ended, the next in order, not closed,
no open reconciliation exception unless overridden with a reason), waits for the transactions
older than it and seals (so an entry dated in the month by a transaction in flight is either
committed and sealed before the close, or refused by the trigger of migrations/sql/invariants/
close.sql after it, never both), then, under the close's advisory lock, records the month with
the chain's head and audits it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.close import reads, rules
from accounting.close.errors import (
    PeriodAlreadyClosed,
    PeriodNotEnded,
    PeriodOutOfOrder,
    TransactionsInFlight,
    UnresolvedExceptions,
)
from accounting.close.tables import ClosedPeriodRow, EntrySealRow
from accounting.ledger.errors import InvalidReason
from accounting.ledger.in_flight import in_flight_done
from accounting.policy import audit
from accounting.settlement.reads import open_exception_count_before

WAIT_SECONDS = 5.0
"""How long sealing waits for the transactions in flight before it gives up for this time."""
SEAL_BATCH = 2000
"""Most entries sealed in one transaction."""

_SEAL_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('coinbooks:entry_seal', 0))")
_CLOSE_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('coinbooks:period_close', 0))")
"""Taken shared by an entry dated before the current month (invariants/close.sql)."""
_NOW = text("SELECT clock_timestamp()")
_FIRST_ENTRY_AT = text("SELECT min(posted_at) FROM journal_entry")


@dataclass(frozen=True, slots=True)
class Sealing:
    """What one :func:`seal_journal` did: entries sealed and the head after; ``waited_out``
    when transactions in flight outlasted the wait (nothing sealed)."""

    sealed: int
    head: reads.ChainHead
    waited_out: bool = False


async def seal_journal(
    session: AsyncSession, *, wait_seconds: float = WAIT_SECONDS, batch: int = SEAL_BATCH
) -> Sealing:
    """Seal every entry up to the highest id committed now, once the transactions in flight
    have finished (the module's docstring says why in this order). Commits."""
    until = await reads.last_entry_id(session)
    if not await in_flight_done(session, wait_seconds):
        return Sealing(0, await reads.chain_head(session), waited_out=True)
    sealed = 0
    while True:
        await session.execute(_SEAL_LOCK)
        head = await reads.chain_head(session)
        after = head.entry_id or 0
        if until is None or after >= until:
            await session.commit()
            return Sealing(sealed, head)
        entries = await reads.entries_after(session, after, until, batch)
        seals = rules.chain(head.hash, (entry.facts for entry in entries))
        rows = [{"entry_id": entry_id, "hash": hash} for entry_id, hash in seals]
        await session.execute(pg_insert(EntrySealRow), rows)
        await session.commit()
        sealed += len(rows)


@dataclass(frozen=True, slots=True)
class CloseRequest:
    month: str
    """``YYYY-MM``, in UTC."""
    actor: str
    reason: str
    override: bool = False
    """Close although reconciliation exceptions of the period are still open."""
    override_reason: str = ""


async def close_period(
    sessions: async_sessionmaker[AsyncSession],
    request: CloseRequest,
    *,
    wait_seconds: float = WAIT_SECONDS,
) -> ClosedPeriodRow:
    """Close the month: from then on no entry may be dated into it. Seals the journal first and
    records its head. Refused (nothing written) when the month has not ended, is not the next
    in order, is closed already, has open reconciliation exceptions without an override and its
    reason, or when transactions in flight outlast the wait."""
    month = rules.parse_month(request.month)
    audit.check_reason(request.reason, required=True)
    audit.check_reason(request.override_reason)
    if request.override and not request.override_reason.strip():
        raise InvalidReason(
            "Say why the close overrides open exceptions: an override reason is required",
            field="overrideReason",
        )
    async with sessions() as session:
        await _closable(session, month, request)
        sealing = await seal_journal(session, wait_seconds=wait_seconds)
        if sealing.waited_out:
            raise TransactionsInFlight(
                f"Transactions in flight outlasted {wait_seconds} s: nothing closed; try again"
            )
        await session.execute(_CLOSE_LOCK)
        open_exceptions = await _closable(session, month, request)
        head = await reads.chain_head(session)
        row = ClosedPeriodRow(
            month=month,
            period_end=rules.next_month(month),
            closed_by=request.actor,
            reason=request.reason,
            override=request.override,
            override_reason=request.override_reason if request.override else None,
            open_exceptions=open_exceptions,
            head_entry_id=head.entry_id,
            head_hash=head.hash if head.entry_id is not None else None,
        )
        session.add(row)
        await audit.record(
            session,
            actor=request.actor,
            action="close_period",
            subject=f"period:{rules.month_name(month)}",
            reason=request.reason,
            details={
                "override": request.override,
                "override_reason": row.override_reason,
                "open_exceptions": open_exceptions,
                "head_entry_id": head.entry_id,
                "head_hash": row.head_hash,
            },
        )
        await session.commit()
    return row


async def _closable(session: AsyncSession, month: datetime, request: CloseRequest) -> int:
    """Refuse a month that may not close now; else the open exceptions it closes over."""
    name = rules.month_name(month)
    end = rules.next_month(month)
    now = await session.scalar(_NOW)
    if now < end:
        raise PeriodNotEnded(f"{name} ends at {end:%Y-%m-%d %H:%M} UTC", field="month", ends_at=end)
    last = await reads.last_closed(session)
    if last is not None and last.month >= month:
        raise PeriodAlreadyClosed(f"{name} is closed already", field="month")
    expected = rules.out_of_order(
        month, None if last is None else last.month, await session.scalar(_FIRST_ENTRY_AT)
    )
    if expected is not None:
        message = f"Months close in order: the next to close is {rules.month_name(expected)}"
        raise PeriodOutOfOrder(message, field="month", expected=rules.month_name(expected))
    open_exceptions = await open_exception_count_before(session, end)
    if open_exceptions and not request.override:
        raise UnresolvedExceptions(
            f"{open_exceptions} reconciliation exception(s) of {name} or before are open:"
            " resolve them, or close with an override and its reason",
            field="month",
            open_exceptions=open_exceptions,
        )
    return open_exceptions
