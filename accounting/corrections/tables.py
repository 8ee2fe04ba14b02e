"""The corrections' tables: each reversal finance made, with who, why and under which key; and
each proposed adjusting entry, from its proposal to its approval (posted) or rejection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class EntryReversalRow(Base):
    """An entry reversed by finance: at most one per entry, with who did it and why."""

    __tablename__ = "entry_reversal"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(unique=True)
    """The entry reversed (entries are never deleted; the integrity check ties the two)."""
    reversal_entry_id: Mapped[int] = mapped_column(unique=True)
    actor: Mapped[str]
    idempotency_key: Mapped[str]
    reason: Mapped[str]
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("actor", "idempotency_key"),
        CheckConstraint("length(reason) BETWEEN 1 AND 500", name="reason"),
    )


class AdjustmentProposalRow(Base):
    """A manual adjusting entry: proposed by one finance person, posted when another approves
    it, or rejected. ``postings`` holds ``{"account", "commodity", "amount"}`` objects, each
    amount debit-positive in the commodity's smallest unit (coins, diamonds, micro-units)."""

    __tablename__ = "adjustment_proposal"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    proposed_by: Mapped[str]
    idempotency_key: Mapped[str]
    reason: Mapped[str]
    memo: Mapped[str] = mapped_column(server_default="")
    postings: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(server_default="proposed")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    decided_by: Mapped[str | None]
    decided_at: Mapped[datetime | None]
    decision_key: Mapped[str | None]
    """The approver's idempotency key (an approval replayed under it answers the same)."""
    decision_reason: Mapped[str] = mapped_column(server_default="")
    entry_id: Mapped[int | None] = mapped_column(unique=True)
    """The adjustment entry, once posted (the integrity check ties the two)."""

    __table_args__ = (
        UniqueConstraint("proposed_by", "idempotency_key"),
        CheckConstraint("status IN ('proposed', 'posted', 'rejected')", name="status"),
        CheckConstraint("(status = 'posted') = (entry_id IS NOT NULL)", name="posted_entry"),
        CheckConstraint(
            "(status = 'proposed') = (decided_by IS NULL AND decided_at IS NULL)", name="decided"
        ),
        CheckConstraint("status <> 'posted' OR decided_by <> proposed_by", name="four_eyes"),
        CheckConstraint("length(reason) BETWEEN 1 AND 500", name="reason"),
        CheckConstraint("length(decision_reason) <= 500", name="decision_reason"),
        Index("ix_adjustment_proposal_status", "status", "id"),
    )
