"""The payout flow's tables: payout methods, creators' second factors, payouts and the phases
each went through."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class PayoutMethodRow(Base):
    """Where a creator's payouts go. Only a masked form is kept (the last four digits, or the
    e-mail with most of its name hidden) and a SHA-256 fingerprint of the full details, to
    recognise the same account registered twice; the full details are never stored."""

    __tablename__ = "payout_method"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    creator_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    masked: Mapped[str] = mapped_column(Text)
    holder_name: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("creator_id", "fingerprint"),
        CheckConstraint("kind IN ('bank_account', 'paypal')", name="kind"),
        CheckConstraint("length(masked) BETWEEN 1 AND 100", name="masked"),
        Index("ix_payout_method_creator", "creator_id", "id"),
    )


class CreatorTotpRow(Base):
    """A creator's TOTP second factor: enrolled with a secret, confirmed with a first code."""

    __tablename__ = "creator_totp"

    creator_id: Mapped[str] = mapped_column(Text, primary_key=True)
    secret: Mapped[str] = mapped_column(Text)
    enrolled_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PayoutRow(Base):
    """Diamonds redeemed for cash, in phases: requested, then sent and paid or failed, or
    rejected before sending. Each phase has its event and its journal entry."""

    __tablename__ = "payout"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    creator_id: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(Text)
    method_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payout_method.id"))
    diamonds_requested: Mapped[int] = mapped_column(BigInteger)
    diamonds: Mapped[int] = mapped_column(BigInteger)
    """The diamonds the cash pays for: at most the diamonds requested."""
    currency: Mapped[str] = mapped_column(Text, ForeignKey("commodity.code"))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    """The cash paid, a whole number of the currency's minor unit, in micro-units."""
    status: Mapped[str] = mapped_column(Text, server_default="requested")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("creator_id", "idempotency_key"),
        CheckConstraint(
            "status IN ('requested', 'rejected', 'sent', 'paid', 'failed')", name="status"
        ),
        CheckConstraint(
            "diamonds > 0 AND diamonds <= diamonds_requested AND amount_micros > 0",
            name="amounts",
        ),
        Index("ix_payout_creator", "creator_id", "id"),
        Index("ix_payout_in_flight", "id", postgresql_where="status IN ('requested', 'sent')"),
    )


class PayoutEventRow(Base):
    """One phase of a payout: who did it, when, why, and the journal entry it posted. A payout
    goes through each phase at most once; the idempotency key is the caller's, per actor."""

    __tablename__ = "payout_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payout_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payout.id"))
    phase: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, server_default="")
    provider_reference: Mapped[str | None] = mapped_column(Text)
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("journal_entry.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("payout_id", "phase"),
        UniqueConstraint("actor", "idempotency_key"),
        CheckConstraint(
            "phase IN ('requested', 'rejected', 'sent', 'paid', 'failed')", name="phase"
        ),
    )
