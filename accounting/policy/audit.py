"""The audit log: what support, finance and admin people do, by whom, when and why. It only
grows (a trigger refuses updates and deletes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.errors import InvalidReason
from accounting.ledger.pages import Page, newest_first
from accounting.policy.tables import AuditRow

MAX_REASON = 500


def check_reason(reason: str, *, required: bool = False) -> str:
    if len(reason) > MAX_REASON:
        raise InvalidReason(f"A reason is at most {MAX_REASON} characters", field="reason")
    if required and not reason.strip():
        raise InvalidReason("Say why: a reason is required", field="reason")
    return reason


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    subject: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditRow:
    """Write one audit row in the caller's transaction: it commits with what it records."""
    row = AuditRow(
        actor=actor, action=action, subject=subject, reason=reason, details=details or {}
    )
    session.add(row)
    await session.flush()
    return row


async def audit_trail(
    session: AsyncSession,
    *,
    subject: str | None = None,
    first: int = 20,
    before_id: int | None = None,
) -> Page[AuditRow]:
    """Audit rows, newest first, of one subject (``payout:3``, ``user:bo``) or of all."""
    conditions = [] if subject is None else [AuditRow.subject == subject]
    return await newest_first(session, AuditRow, *conditions, first=first, before_id=before_id)
