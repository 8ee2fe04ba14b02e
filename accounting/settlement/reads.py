"""What other flows may read of settlement: the reconciliation exceptions still open (a period
close is refused while any of its reports' remain)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.settlement.tables import ReconciliationExceptionRow, SettlementReportRow

ReconciliationException = ReconciliationExceptionRow
"""A reconciliation exception, as other flows see it (read it, never write it)."""


async def open_exception_count(session: AsyncSession) -> int:
    """How many reconciliation exceptions finance has not resolved yet."""
    count = await session.scalar(
        select(func.count()).where(ReconciliationExceptionRow.status == "open")
    )
    return int(count or 0)


async def open_exception_count_before(session: AsyncSession, end: datetime) -> int:
    """How many exceptions are still open of reports whose period starts before ``end``: those
    a period ending at ``end`` may not close over (unless finance overrides)."""
    count = await session.scalar(
        select(func.count())
        .select_from(ReconciliationExceptionRow)
        .join(SettlementReportRow, SettlementReportRow.id == ReconciliationExceptionRow.report_id)
        .where(ReconciliationExceptionRow.status == "open", SettlementReportRow.period_start < end)
    )
    return int(count or 0)
