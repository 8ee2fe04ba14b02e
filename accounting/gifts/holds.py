"""Hold release: a gift's diamonds move from pending to available once its hold has passed.

Both the job (``coinbooks release-holds``) and reads of a creator's balances release what is
due. Each gift is released at most once: the due gifts are locked (``SKIP LOCKED``, so
concurrent releasers share the work instead of waiting) and marked with the release entry in
the same transaction; one entry per creator per batch, every creator's diamonds locked in one
statement before the first of them posts (accounting/ledger/locks.py)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from accounting.chargebacks.reads import diamonds_clawed_back
from accounting.gifts.tables import GiftRow
from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.posting import in_transaction, lock_accounts, post_entry

MAX_BATCH = 1000


def release_entry(creator_id: str, gifts: list[tuple[int, int]]) -> Entry:
    """One entry releasing the diamonds of ``gifts`` ((gift id, diamonds) pairs) of a creator."""
    ids = sorted(gift_id for gift_id, _ in gifts)
    diamonds = sum(d for _, d in gifts)
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:32]
    return Entry(
        kind=EntryKind.HOLD_RELEASE,
        event_key=f"hold_release:{creator_id}:{digest}",
        postings=(
            Posting(chart.creator_diamonds(creator_id, "pending"), diamonds),
            Posting(chart.creator_diamonds(creator_id, "available"), -diamonds),
        ),
        actor="system:hold-release",
        refs={"creator_id": creator_id, "gift_ids": ids},
        memo=f"{diamonds} diamonds from {len(ids)} gift(s) released from hold",
    )


def diamonds_left() -> ColumnElement[int]:
    """A gift's diamonds less those standing chargebacks clawed back from it (a chargeback
    undone by a dispute won gives them back)."""
    return (GiftRow.diamonds - diamonds_clawed_back(GiftRow.id)).label("diamonds_left")


async def release_due_in(
    session: AsyncSession, *, creator_id: str | None = None, limit: int = MAX_BATCH
) -> int:
    """Release what is due inside the caller's transaction; the number of gifts released. A
    gift's diamonds that a chargeback clawed back stay out of it; a gift a chargeback took
    every diamond from stays in its hold (a dispute won would give them back to pending)."""
    left = diamonds_left()
    statement = (
        select(GiftRow.id, GiftRow.creator_id, left)
        .where(
            GiftRow.release_entry_id.is_(None),
            GiftRow.diamonds > 0,
            left > 0,
            GiftRow.release_at <= func.now(),
        )
        .order_by(GiftRow.release_at, GiftRow.id)
        .limit(min(limit, MAX_BATCH))
        .with_for_update(skip_locked=True)
    )
    if creator_id is not None:
        statement = statement.where(GiftRow.creator_id == creator_id)
    due = (await session.execute(statement)).all()
    by_creator: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for gift_id, creator, diamonds in due:
        by_creator[creator].append((gift_id, int(diamonds)))
    # every creator's diamonds locked in one statement, before the first entry posts
    await lock_accounts(
        session,
        (
            chart.creator_diamonds(creator, state)
            for creator in by_creator
            for state in ("pending", "available")
        ),
    )
    for creator in sorted(by_creator):
        gifts = by_creator[creator]
        posted = await post_entry(session, release_entry(creator, gifts))
        await session.execute(
            update(GiftRow)
            .where(GiftRow.id.in_([gift_id for gift_id, _ in gifts]))
            .values(release_entry_id=posted.id)
        )
    return len(due)


async def release_due(
    sessions: async_sessionmaker[AsyncSession],
    *,
    creator_id: str | None = None,
    limit: int = MAX_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Release due holds in batches until none is left; the number of gifts released.
    ``on_batch`` is told how many gifts each committed batch released (a progress bar's)."""
    total = 0
    while True:
        released = await in_transaction(
            sessions, lambda s: release_due_in(s, creator_id=creator_id, limit=limit)
        )
        total += released
        if on_batch is not None:
            on_batch(released)
        if released < min(limit, MAX_BATCH):
            return total
