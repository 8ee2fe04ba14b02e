"""A user's standing: whether their account is frozen, by whom and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.chart import check_user_id
from accounting.errors import AccountFrozen, InvalidReason
from accounting.tables import UserStatusRow

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
    return row  # type: ignore[no-any-return]
