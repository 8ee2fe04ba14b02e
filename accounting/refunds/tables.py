"""The refund flow's table: one refund per purchase at most, with who asked and why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class RefundRow(Base):
    """A purchase refunded: at most one per purchase, with who did it and why."""

    __tablename__ = "refund"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    purchase_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    """The purchase refunded (never deleted; the integrity check ties the two)."""
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("journal_entry.id"), unique=True)
    actor: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    coins: Mapped[int] = mapped_column(BigInteger)
    cash_minor: Mapped[int] = mapped_column(BigInteger)
    value_released_micros: Mapped[int] = mapped_column(BigInteger)
    contra_revenue_micros: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("actor", "idempotency_key"),
        CheckConstraint(
            "coins > 0 AND cash_minor > 0 AND value_released_micros >= 0", name="amounts"
        ),
        CheckConstraint("length(reason) BETWEEN 1 AND 500", name="reason"),
    )
