"""A user's standing: whether their account is frozen, and whether a creator's identity is
verified (KYC), by whom and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import AccountFrozen, InvalidReason
from accounting.policy.audit import check_reason, record
from accounting.policy.tables import CreatorKycRow, UserStatusRow

MAX_REASON = 500


async def is_frozen(session: AsyncSession, user_id: str) -> bool:
    frozen = await session.scalar(
        select(UserStatusRow.frozen).where(UserStatusRow.user_id == user_id)
    )
    return bool(frozen)


async def check_not_frozen(session: AsyncSession, user_id: str, *, doing: str) -> None:
    if await is_frozen(session, user_id):
        raise AccountFrozen(f"Account {user_id} is frozen: it may not {doing}", user_id=user_id)


async def set_frozen(
    session: AsyncSession, user_id: str, *, frozen: bool, reason: str, actor: str
) -> UserStatusRow:
    check_user_id(user_id)
    if len(reason) > MAX_REASON:
        raise InvalidReason(f"A reason is at most {MAX_REASON} characters", field="reason")
    statement = pg_insert(UserStatusRow).values(
        user_id=user_id, frozen=frozen, reason=reason, changed_by=actor
    )
    row: Any = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["user_id"],
            set_={
                "frozen": statement.excluded.frozen,
                "reason": statement.excluded.reason,
                "changed_by": statement.excluded.changed_by,
                "changed_at": statement.excluded.changed_at,
            },
        ).returning(UserStatusRow)
    )
    assert row is not None
    await record(
        session,
        actor=actor,
        action="account.frozen" if frozen else "account.thawed",
        subject=f"user:{user_id}",
        reason=reason,
    )
    return row  # type: ignore[no-any-return]


async def is_kyc_verified(session: AsyncSession, creator_id: str) -> bool:
    verified = await session.scalar(
        select(CreatorKycRow.verified).where(CreatorKycRow.creator_id == creator_id)
    )
    return bool(verified)


async def set_kyc_verified(
    session: AsyncSession, creator_id: str, *, verified: bool, reason: str, actor: str
) -> CreatorKycRow:
    """Record whether a creator's identity is verified (an admin's decision), and audit it."""
    check_user_id(creator_id, field="creatorId")
    check_reason(reason, required=True)
    statement = pg_insert(CreatorKycRow).values(
        creator_id=creator_id, verified=verified, reason=reason, changed_by=actor
    )
    row: Any = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["creator_id"],
            set_={
                "verified": statement.excluded.verified,
                "reason": statement.excluded.reason,
                "changed_by": statement.excluded.changed_by,
                "changed_at": statement.excluded.changed_at,
            },
        ).returning(CreatorKycRow)
    )
    assert row is not None
    await record(
        session,
        actor=actor,
        action="kyc.verified" if verified else "kyc.unverified",
        subject=f"user:{creator_id}",
        reason=reason,
        details={"verified": verified},
    )
    return row  # type: ignore[no-any-return]
