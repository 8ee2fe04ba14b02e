"""A user's standing: whether their account is frozen, and whether a creator's identity is
verified (KYC), by whom and why. Each change is audited in the transaction that makes it."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, ScalarSelect, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import AccountFrozen, InvalidReason
from accounting.ledger.posting import in_transaction
from accounting.policy import separation
from accounting.policy.audit import check_reason, record
from accounting.policy.tables import CreatorKycRow, UserStatusRow

MAX_REASON = 500

Standing = TypeVar("Standing", UserStatusRow, CreatorKycRow)


async def is_frozen(session: AsyncSession, user_id: str) -> bool:
    frozen = await session.scalar(
        select(UserStatusRow.frozen).where(UserStatusRow.user_id == user_id)
    )
    return bool(frozen)


async def check_not_frozen(session: AsyncSession, user_id: str, *, doing: str) -> None:
    refuse_frozen(user_id, await is_frozen(session, user_id), doing=doing)


def frozen_of(user_id: ColumnElement[str]) -> ScalarSelect[bool]:
    """Whether the user is frozen, as a column of a larger read (NULL: never frozen), so a flow
    that reads anyway learns it without a round trip of its own."""
    return select(UserStatusRow.frozen).where(UserStatusRow.user_id == user_id).scalar_subquery()


def refuse_frozen(user_id: str, frozen: bool | None, *, doing: str) -> None:
    """Refuse what the user is ``doing`` if :func:`frozen_of` said they are frozen."""
    if frozen:
        raise AccountFrozen(f"Account {user_id} is frozen: it may not {doing}", user_id=user_id)


async def freeze_account(
    sessions: async_sessionmaker[AsyncSession],
    user_id: str,
    *,
    frozen: bool,
    reason: str,
    actor: str,
) -> UserStatusRow:
    """Freeze a user's account (or thaw it, ``frozen=False``), in a transaction of its own."""
    return await in_transaction(
        sessions,
        lambda session: set_frozen(session, user_id, frozen=frozen, reason=reason, actor=actor),
    )


async def set_frozen(
    session: AsyncSession, user_id: str, *, frozen: bool, reason: str, actor: str
) -> UserStatusRow:
    check_user_id(user_id)
    separation.check_not_own(
        actor, user_id, doing="freeze or thaw your own account", field="userId"
    )
    if len(reason) > MAX_REASON:
        raise InvalidReason(f"A reason is at most {MAX_REASON} characters", field="reason")
    return await _decide(
        session,
        UserStatusRow,
        ("user_id", user_id),
        {"frozen": frozen},
        reason=reason,
        actor=actor,
        action="account.frozen" if frozen else "account.thawed",
    )


async def is_kyc_verified(session: AsyncSession, creator_id: str) -> bool:
    verified = await session.scalar(
        select(CreatorKycRow.verified).where(CreatorKycRow.creator_id == creator_id)
    )
    return bool(verified)


async def verify_identity(
    sessions: async_sessionmaker[AsyncSession],
    creator_id: str,
    *,
    verified: bool,
    reason: str,
    actor: str,
) -> CreatorKycRow:
    """Record whether a creator's identity is verified, in a transaction of its own."""
    return await in_transaction(
        sessions,
        lambda session: set_kyc_verified(
            session, creator_id, verified=verified, reason=reason, actor=actor
        ),
    )


async def set_kyc_verified(
    session: AsyncSession, creator_id: str, *, verified: bool, reason: str, actor: str
) -> CreatorKycRow:
    """Record whether a creator's identity is verified (an admin's decision), and audit it."""
    check_user_id(creator_id, field="creatorId")
    separation.check_not_own(actor, creator_id, doing="set your own KYC flag", field="userId")
    check_reason(reason, required=True)
    return await _decide(
        session,
        CreatorKycRow,
        ("creator_id", creator_id),
        {"verified": verified},
        reason=reason,
        actor=actor,
        action="kyc.verified" if verified else "kyc.unverified",
        details={"verified": verified},
    )


async def _decide(
    session: AsyncSession,
    table: type[Standing],
    user: tuple[str, str],
    decided: dict[str, bool],
    *,
    reason: str,
    actor: str,
    action: str,
    details: dict[str, Any] | None = None,
) -> Standing:
    """Record a decision on a user's standing (``user``: the table's key column and the user),
    replacing the last one and stamped with the time of this change, and audit it."""
    column, user_id = user
    values = {column: user_id, **decided, "reason": reason, "changed_by": actor}
    statement = pg_insert(table).values(values)
    changed = [*decided, "reason", "changed_by", "changed_at"]
    row: Standing | None = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=[column], set_={name: statement.excluded[name] for name in changed}
        ).returning(table)
    )
    assert row is not None
    await record(
        session,
        actor=actor,
        action=action,
        subject=f"user:{user_id}",
        reason=reason,
        details=details,
    )
    return row
