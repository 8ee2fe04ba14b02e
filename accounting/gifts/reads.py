"""What other flows may read of gifts: the gifts a chargeback traces spent coins to, locked so no
hold release moves their diamonds meanwhile, before the chargeback's accounts (the hold release
locks a gift before its creator's diamonds: docs/accounting.md, "Lock order")."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.gifts.tables import GiftRow

Gift = GiftRow
"""A gift's record, as other flows see it (read it, never write it)."""


async def lock_gifts(session: AsyncSession, gift_ids: Collection[int]) -> dict[int, Gift]:
    """The gifts by id, locked ``FOR UPDATE`` in id order (the one order every locker uses)."""
    if not gift_ids:
        return {}
    rows = await session.scalars(
        select(GiftRow).where(GiftRow.id.in_(gift_ids)).order_by(GiftRow.id).with_for_update()
    )
    return {gift.id: gift for gift in rows.all()}


async def gifts_in_hold(session: AsyncSession, sender_id: str, since: datetime) -> dict[int, Gift]:
    """The gifts ``sender_id`` sent from ``since`` on that are still in their hold, by id,
    locked ``FOR UPDATE`` in id order, in one statement."""
    rows = await session.scalars(
        select(GiftRow)
        .where(
            GiftRow.sender_id == sender_id,
            GiftRow.created_at >= since,
            GiftRow.release_entry_id.is_(None),
        )
        .order_by(GiftRow.id)
        .with_for_update()
    )
    return {gift.id: gift for gift in rows.all()}
