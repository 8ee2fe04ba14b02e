"""Dated exchange rates into the functional currency."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.errors import FxRateMissing
from accounting.ledger.tables import FxRateRow


async def rate_at(session: AsyncSession, base: str, quote: str, at: datetime) -> Decimal:
    """Units of ``quote`` per unit of ``base`` in force at ``at`` (the latest rate before it)."""
    rate: Decimal | None = await session.scalar(
        select(FxRateRow.rate)
        .where(FxRateRow.base == base, FxRateRow.quote == quote, FxRateRow.valid_from <= at)
        .order_by(FxRateRow.valid_from.desc())
        .limit(1)
    )
    if rate is None:
        raise FxRateMissing(
            f"No {base}/{quote} exchange rate in force at {at.isoformat()}",
            field="currency",
            base=base,
            quote=quote,
        )
    return rate.normalize()


async def set_rate(
    session: AsyncSession, base: str, quote: str, rate: Decimal, valid_from: datetime
) -> None:
    session.add(FxRateRow(base=base, quote=quote, rate=rate, valid_from=valid_from))
    await session.flush()
