"""What other flows may read of settlement: the reconciliation exceptions still open (a period
close is refused while any remain)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.settlement.tables import ReconciliationExceptionRow

ReconciliationException = ReconciliationExceptionRow
"""A reconciliation exception, as other flows see it (read it, never write it)."""


async def open_exception_count(session: AsyncSession) -> int:
    """How many reconciliation exceptions finance has not resolved yet."""
    count = await session.scalar(
        select(func.count()).where(ReconciliationExceptionRow.status == "open")
    )
    return int(count or 0)
