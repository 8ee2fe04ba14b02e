"""What other flows may read of refunds: whether a purchase was refunded (a chargeback of a
refunded purchase moves nothing)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.refunds.tables import RefundRow

Refund = RefundRow
"""A refund's record, as other flows see it (read it, never write it)."""


async def refund_of(session: AsyncSession, purchase_id: int) -> Refund | None:
    """The refund of the purchase, if it was refunded."""
    return await session.scalar(select(RefundRow).where(RefundRow.purchase_id == purchase_id))
