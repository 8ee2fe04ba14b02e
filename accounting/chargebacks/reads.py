"""What other flows may read of chargebacks: whether a purchase stands charged back (a refund
check refuses it), and how many of a gift's diamonds standing chargebacks clawed back (a hold
release leaves them out)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, ScalarSelect, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from accounting.chargebacks.tables import ChargebackClawbackRow, ChargebackRow

Chargeback = ChargebackRow
"""A chargeback's record, as other flows see it (read it, never write it)."""


async def standing_chargeback(session: AsyncSession, purchase_id: int) -> Chargeback | None:
    """The purchase's chargeback, unless a dispute won undid it."""
    return await session.scalar(
        select(ChargebackRow).where(
            ChargebackRow.purchase_id == purchase_id, ChargebackRow.status != "won"
        )
    )


def diamonds_clawed_back(
    gift_id: InstrumentedAttribute[int] | ColumnElement[int],
) -> ScalarSelect[int]:
    """The diamonds standing chargebacks clawed back from the gift ``gift_id`` names (a
    chargeback undone by a dispute won gives them back), as a correlated subquery."""
    return (
        select(func.coalesce(func.sum(ChargebackClawbackRow.diamonds), 0))
        .join(ChargebackRow, ChargebackRow.id == ChargebackClawbackRow.chargeback_id)
        .where(ChargebackClawbackRow.gift_id == gift_id, ChargebackRow.status != "won")
        .scalar_subquery()
    )
