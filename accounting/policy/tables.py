"""The ledger's tables, as SQLAlchemy models. Migrations create them; triggers in
``migrations/sql`` enforce the invariants on top of the constraints declared here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class UserStatusRow(Base):
    """A user's standing: a frozen account may not buy, gift or be paid out."""

    __tablename__ = "user_status"

    user_id: Mapped[str] = mapped_column(primary_key=True)
    frozen: Mapped[bool] = mapped_column(Boolean, server_default="false")
    reason: Mapped[str] = mapped_column(server_default="")
    changed_by: Mapped[str]
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CreatorKycRow(Base):
    """Whether a creator's identity is verified (set by an admin), by whom and why."""

    __tablename__ = "creator_kyc"

    creator_id: Mapped[str] = mapped_column(primary_key=True)
    verified: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(server_default="")
    changed_by: Mapped[str]
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AuditRow(Base):
    """What a support, finance or admin person did: who, when, what (to which subject), why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    actor: Mapped[str]
    action: Mapped[str]
    subject: Mapped[str]
    reason: Mapped[str] = mapped_column(server_default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        Index("ix_audit_log_subject", "subject", "id"),
        Index("ix_audit_log_actor", "actor", "id"),
    )
