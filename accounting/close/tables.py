"""The close's tables: each month closed (``closed_period``) and each entry's seal
(``entry_seal``), both history (migrations/versions/0013_period_close.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class ClosedPeriodRow(Base):
    """A month finance closed: ``[month, period_end)`` in UTC. ``head_entry_id`` and
    ``head_hash`` are the chain's last seal when it closed (null when nothing was sealed)."""

    __tablename__ = "closed_period"

    month: Mapped[datetime] = mapped_column(primary_key=True)
    period_end: Mapped[datetime]
    closed_by: Mapped[str]
    reason: Mapped[str]
    closed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    override: Mapped[bool] = mapped_column(Boolean, server_default="false")
    override_reason: Mapped[str | None]
    open_exceptions: Mapped[int]
    """Reconciliation exceptions still open when it closed (more than 0 only by override)."""
    head_entry_id: Mapped[int | None]
    head_hash: Mapped[str | None]

    __table_args__ = (
        CheckConstraint(
            "month = date_trunc('month', month, 'UTC')"
            " AND period_end = (month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC'",
            name="month",
        ),
        CheckConstraint(
            "override = (override_reason IS NOT NULL) AND (override OR open_exceptions = 0)",
            name="override",
        ),
        CheckConstraint("(head_entry_id IS NULL) = (head_hash IS NULL)", name="head"),
    )


class EntrySealRow(Base):
    """An entry's seal: the sha256 (hex) of its canonical encoding chained over its
    predecessor's seal (accounting/close/rules.py)."""

    __tablename__ = "entry_seal"

    entry_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    hash: Mapped[str]
    sealed_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (CheckConstraint("hash ~ '^[0-9a-f]{64}$'", name="hash"),)
