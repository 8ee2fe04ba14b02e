"""Reading the close's facts: the months closed, the chain's head, the entries as their seals
cover them, and the chain recomputed from the data (``verify_chain``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.close.rules import GENESIS, SealedFacts, seal
from accounting.close.tables import ClosedPeriodRow, EntrySealRow

VERIFY_BATCH = 2000
"""Entries read at a time when the chain is recomputed."""

_ENTRIES = text(
    "SELECT e.id, e.kind, e.posted_at, CAST(e.rates AS text) AS rates,"
    "       CAST(e.refs AS text) AS refs, e.reverses_entry_id, s.hash AS sealed,"
    "       (SELECT CAST(coalesce(jsonb_agg(jsonb_build_array(a.code, p.commodity, p.amount)),"
    "                             '[]') AS text)"
    "          FROM posting p JOIN account a ON a.id = p.account_id"
    "         WHERE p.entry_id = e.id) AS postings"
    "  FROM journal_entry e LEFT JOIN entry_seal s ON s.entry_id = e.id"
    " WHERE e.id > :after AND e.id <= :until ORDER BY e.id LIMIT :limit"
)
_ORPHAN_SEAL = text(
    "SELECT min(s.entry_id) FROM entry_seal s"
    " WHERE NOT EXISTS (SELECT 1 FROM journal_entry e WHERE e.id = s.entry_id)"
)
_LAST_ID_DRAWN = text(
    "SELECT pg_sequence_last_value(CAST(pg_get_serial_sequence('journal_entry', 'id') AS regclass))"
)


@dataclass(frozen=True, slots=True)
class ChainHead:
    entry_id: int | None
    hash: str
    """The last seal, or :data:`GENESIS` when nothing is sealed."""


@dataclass(frozen=True, slots=True)
class JournalEntryFacts:
    facts: SealedFacts
    sealed: str | None
    """The entry's stored seal, if it has one."""


async def closed_periods(session: AsyncSession) -> Sequence[ClosedPeriodRow]:
    """Every month closed, newest first."""
    rows = await session.scalars(select(ClosedPeriodRow).order_by(ClosedPeriodRow.month.desc()))
    return rows.all()


async def last_closed(session: AsyncSession) -> ClosedPeriodRow | None:
    return await session.scalar(
        select(ClosedPeriodRow).order_by(ClosedPeriodRow.month.desc()).limit(1)
    )


async def chain_head(session: AsyncSession) -> ChainHead:
    row = await session.scalar(select(EntrySealRow).order_by(EntrySealRow.entry_id.desc()).limit(1))
    return ChainHead(None, GENESIS) if row is None else ChainHead(row.entry_id, row.hash)


async def last_entry_id(session: AsyncSession) -> int | None:
    """The highest entry id given out so far, committed or not (a sequence is not
    transactional): an entry in flight has its id at or below it."""
    last: int | None = await session.scalar(_LAST_ID_DRAWN)
    return last


async def entries_after(
    session: AsyncSession, after: int, until: int, limit: int
) -> list[JournalEntryFacts]:
    """Up to ``limit`` entries with ids in ``(after, until]``, in id order, as sealed."""
    rows = await session.execute(_ENTRIES, {"after": after, "until": until, "limit": limit})
    return [
        JournalEntryFacts(
            SealedFacts(
                id=row.id,
                kind=row.kind,
                posted_at=row.posted_at,
                postings=tuple(tuple(p) for p in json.loads(row.postings)),
                rates=json.loads(row.rates),
                refs=json.loads(row.refs),
                reverses_entry_id=row.reverses_entry_id,
            ),
            row.sealed,
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class ChainVerification:
    """The chain recomputed from the data. ``first_difference`` is the first entry (by id) whose
    stored seal is not the one its data and its predecessors give (or that has none while a
    later entry has one, or whose seal names an entry that is gone); None when intact."""

    entries_checked: int
    sealed: int
    head: ChainHead
    first_difference: int | None = None
    detail: str = ""

    @property
    def intact(self) -> bool:
        return self.first_difference is None


async def verify_chain(session: AsyncSession, batch: int = VERIFY_BATCH) -> ChainVerification:
    """Recompute every seal from the entries, in id order, and compare with those stored and
    with each closed month's recorded head. Reads only; sees the journal as of each batch."""
    closed_heads: dict[int, tuple[str | None, datetime]] = {
        row.head_entry_id: (row.head_hash, row.month)
        for row in await closed_periods(session)
        if row.head_entry_id is not None
    }
    until = await last_entry_id(session) or 0
    previous, after, checked, sealed = GENESIS, 0, 0, 0
    unsealed_from: int | None = None
    while facts := await entries_after(session, after, until, batch):
        for entry in facts:
            previous = seal(previous, entry.facts)
            checked += 1
            difference = _difference(entry, previous, unsealed_from, closed_heads)
            if difference:
                head = await chain_head(session)
                return ChainVerification(checked, sealed, head, entry.facts.id, difference)
            if entry.sealed is None:
                unsealed_from = unsealed_from or entry.facts.id
            else:
                sealed += 1
        after = facts[-1].facts.id
    orphan = await session.scalar(_ORPHAN_SEAL)
    head = await chain_head(session)
    if orphan is not None:
        detail = f"entry {orphan} is sealed but no longer in the journal"
        return ChainVerification(checked, sealed, head, orphan, detail)
    return ChainVerification(checked, sealed, head)


def _difference(
    entry: JournalEntryFacts,
    computed: str,
    unsealed_from: int | None,
    closed_heads: dict[int, tuple[str | None, datetime]],
) -> str:
    """Why ``entry`` breaks the chain, or "" when it does not."""
    entry_id = entry.facts.id
    if entry.sealed is not None and unsealed_from is not None:
        return f"entry {unsealed_from} has no seal, yet entry {entry_id} after it has"
    if entry.sealed is not None and entry.sealed != computed:
        return f"entry {entry_id}: sealed {entry.sealed}, its data and predecessors give {computed}"
    recorded = closed_heads.get(entry_id)
    if recorded is not None and recorded[0] != computed:
        return (
            f"entry {entry_id}, the head when {recorded[1]:%Y-%m} closed: recorded {recorded[0]},"
            f" its data and predecessors give {computed}"
        )
    return ""
