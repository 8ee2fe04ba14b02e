"""The payout flow's tables: payout methods, creators' second factors (with the time steps
they used and their throttle), payouts and the phases each went through."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class PayoutMethodRow(Base):
    """Where a creator's payouts go. Only a masked form is kept (the last four digits, or the
    e-mail with most of its name hidden) and a keyed fingerprint (HMAC) of the full details, to
    recognise the same account registered twice; the full details are never stored."""

    __tablename__ = "payout_method"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    creator_id: Mapped[str]
    kind: Mapped[str]
    masked: Mapped[str]
    holder_name: Mapped[str]
    fingerprint: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("creator_id", "fingerprint"),
        CheckConstraint("kind IN ('bank_account', 'paypal')", name="kind"),
        CheckConstraint("length(masked) BETWEEN 1 AND 100", name="masked"),
        CheckConstraint("fingerprint LIKE 'hmac1:%'", name="keyed"),
        Index("ix_payout_method_creator", "creator_id", "id"),
    )


class CreatorTotpRow(Base):
    """A creator's TOTP second factor: enrolled with a secret, confirmed with a first code. The
    secret is kept sealed (AES-256-GCM, ``aesgcm1:...``), never as it is."""

    __tablename__ = "creator_totp"

    creator_id: Mapped[str] = mapped_column(primary_key=True)
    secret: Mapped[str]
    enrolled_at: Mapped[datetime] = mapped_column(server_default=func.now())
    confirmed_at: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("secret LIKE 'aesgcm1:%'", name="sealed"),)


class SecondFactorStepRow(Base):
    """A TOTP time step a creator's code was used in, and what it served
    (``payout:<idempotency key>``, ``payout_method:<fingerprint>``, ``confirm``): a step serves
    once."""

    __tablename__ = "second_factor_step"

    creator_id: Mapped[str] = mapped_column(primary_key=True)
    time_step: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str]
    used_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SecondFactorThrottleRow(Base):
    """A creator's recent wrong or reused codes, and until when the second factor is locked.
    Every attempt takes this row for update, so attempts of one creator are counted in turn."""

    __tablename__ = "second_factor_throttle"

    creator_id: Mapped[str] = mapped_column(primary_key=True)
    failures: Mapped[int] = mapped_column(server_default="0")
    window_started_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("failures >= 0", name="failures"),)


class PayoutRow(Base):
    """Diamonds redeemed for cash, in phases: requested, then sent and paid or failed, or
    rejected before sending. Each phase has its event and its journal entry."""

    __tablename__ = "payout"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    creator_id: Mapped[str]
    idempotency_key: Mapped[str]
    request_hash: Mapped[str]
    method_id: Mapped[int] = mapped_column(ForeignKey("payout_method.id"))
    diamonds_requested: Mapped[int]
    diamonds: Mapped[int]
    """The diamonds the cash pays for: at most the diamonds requested."""
    currency: Mapped[str] = mapped_column(ForeignKey("commodity.code"))
    amount_micros: Mapped[int]
    """The cash paid, a whole number of the currency's minor unit, in micro-units."""
    status: Mapped[str] = mapped_column(server_default="requested")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("creator_id", "idempotency_key"),
        CheckConstraint(
            "status IN ('requested', 'rejected', 'sent', 'paid', 'failed', 'returned')",
            name="status",
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

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    payout_id: Mapped[int] = mapped_column(ForeignKey("payout.id"))
    phase: Mapped[str]
    actor: Mapped[str]
    idempotency_key: Mapped[str]
    request_hash: Mapped[str]
    reason: Mapped[str] = mapped_column(server_default="")
    provider_reference: Mapped[str | None]
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"), unique=True)
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("payout_id", "phase"),
        UniqueConstraint("actor", "idempotency_key"),
        CheckConstraint(
            "phase IN ('requested', 'rejected', 'sent', 'paid', 'failed', 'returned')", name="phase"
        ),
    )
