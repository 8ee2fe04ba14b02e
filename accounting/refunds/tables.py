"""The refund flow's table: one refund per purchase at most, with who asked and why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class RefundRow(Base):
    """A purchase refunded: at most one per purchase, with who did it and why."""

    __tablename__ = "refund"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    purchase_id: Mapped[int] = mapped_column(unique=True)
    """The purchase refunded (never deleted; the integrity check ties the two)."""
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"), unique=True)
    actor: Mapped[str]
    idempotency_key: Mapped[str]
    reason: Mapped[str]
    coins: Mapped[int]
    cash_minor: Mapped[int]
    value_released_micros: Mapped[int]
    contra_revenue_micros: Mapped[int]
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("actor", "idempotency_key"),
        CheckConstraint(
            "coins > 0 AND cash_minor > 0 AND value_released_micros >= 0", name="amounts"
        ),
        CheckConstraint("length(reason) BETWEEN 1 AND 500", name="reason"),
    )
