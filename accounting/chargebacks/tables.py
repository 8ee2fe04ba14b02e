"""The chargeback flow's tables: chargebacks, the spending each traced and the diamonds it
clawed back, the provider events applied and the deliveries refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class ChargebackRow(Base):
    """A purchase taken back by its provider (a card dispute, an app-store refund or void, a
    refund made at the provider), in whole or in part: what was clawed back, what was lost and
    where it was booked. A purchase's chargebacks take back at most its price between them, and
    at most one of them is a dispute; a dispute resolves once, won or lost."""

    __tablename__ = "chargeback"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    purchase_id: Mapped[int]
    user_id: Mapped[str]
    provider: Mapped[str]
    kind: Mapped[str]
    case_id: Mapped[str]
    """The provider's name for the case: the dispute id, or the event id for the others."""
    reason: Mapped[str] = mapped_column(server_default="")
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"), unique=True)
    currency: Mapped[str]
    cash_minor: Mapped[int]
    """What the provider took back, in the purchase's minor units: its price, or part of it."""
    value_paid_micros: Mapped[int]
    """The share taken back of what the purchase put on the wallet (all of it for the price)."""
    coins_clawed: Mapped[int]
    coins_spent: Mapped[int]
    value_released_micros: Mapped[int]
    diamonds_clawed: Mapped[int]
    payable_clawed_micros: Mapped[int]
    loss_micros: Mapped[int]
    loss_booked_to: Mapped[str]
    contra_revenue_micros: Mapped[int]
    status: Mapped[str]
    won_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"), unique=True)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(
            "kind IN ('dispute', 'app_store_refund', 'voided', 'provider_refund')", name="kind"
        ),
        CheckConstraint("status IN ('open', 'won', 'lost', 'final')", name="status"),
        CheckConstraint("(status = 'won') = (won_entry_id IS NOT NULL)", name="won_entry"),
        CheckConstraint("loss_booked_to IN ('receivable', 'fraud_loss')", name="loss_booked_to"),
        CheckConstraint(
            "cash_minor > 0 AND value_paid_micros >= 0 AND coins_clawed >= 0"
            " AND coins_spent >= 0 AND value_released_micros >= 0 AND diamonds_clawed >= 0"
            " AND payable_clawed_micros >= 0 AND loss_micros >= 0",
            name="amounts",
        ),
        Index("ix_chargeback_user", "user_id", "id"),
        Index("ix_chargeback_purchase", "purchase_id", "id"),
        Index(
            "uq_chargeback_dispute",
            "purchase_id",
            unique=True,
            postgresql_where=text("kind = 'dispute'"),
        ),
    )


class ChargebackClawbackRow(Base):
    """Diamonds a charged-back purchase funded that were still pending at a creator, taken back
    from one gift (with their payable)."""

    __tablename__ = "chargeback_clawback"

    chargeback_id: Mapped[int] = mapped_column(ForeignKey("chargeback.id"), primary_key=True)
    gift_id: Mapped[int] = mapped_column(primary_key=True)
    """The gift (never deleted; the clawback trigger checks it exists and is still held)."""
    creator_id: Mapped[str]
    coins: Mapped[int]
    """The gift's coins this purchase paid for."""
    diamonds: Mapped[int]
    payable_micros: Mapped[int]

    __table_args__ = (
        CheckConstraint("coins > 0 AND diamonds >= 0 AND payable_micros >= 0", name="amounts"),
        Index("ix_chargeback_clawback_gift", "gift_id"),
    )


class ChargebackTraceRow(Base):
    """Spent coins of a charged-back purchase, traced to what they bought: a gift or an unlock.
    Each spent coin is traced once while its chargeback stands."""

    __tablename__ = "chargeback_trace"

    chargeback_id: Mapped[int] = mapped_column(ForeignKey("chargeback.id"), primary_key=True)
    spending: Mapped[str] = mapped_column(primary_key=True)
    spending_id: Mapped[int] = mapped_column(primary_key=True)
    """The gift's or the unlock's id (never deleted; the integrity check ties the two)."""
    coins: Mapped[int]

    __table_args__ = (
        CheckConstraint("spending IN ('gift', 'unlock')", name="spending"),
        CheckConstraint("coins > 0", name="coins"),
        Index("ix_chargeback_trace_spending", "spending", "spending_id"),
    )


class ProviderEventRow(Base):
    """A signed provider event, accepted once under the provider's event id, with what it did."""

    __tablename__ = "provider_event"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    provider: Mapped[str]
    event_id: Mapped[str]
    event_type: Mapped[str]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    signed_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    outcome: Mapped[str]
    detail: Mapped[str] = mapped_column(server_default="")
    purchase_id: Mapped[int | None]
    chargeback_id: Mapped[int | None] = mapped_column(ForeignKey("chargeback.id"))

    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_provider_event_purchase", "purchase_id"),
    )


class WebhookRefusalRow(Base):
    """Webhook deliveries refused before they were read as events (unknown provider, bad or
    missing signature, stale timestamp, unreadable body), counted: one row per source, reason
    and minute, with the first delivery's details as a sample. Kept for whoever investigates; a
    flood of junk deliveries writes one row a minute, not one a delivery."""

    __tablename__ = "webhook_refusal"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source: Mapped[str]
    """The provider the address named, or ``unknown`` when it named none we know."""
    reason: Mapped[str]
    window_start: Mapped[datetime]
    """The minute the deliveries came in."""
    deliveries: Mapped[int]
    body_bytes: Mapped[int]
    """The bodies' sizes, summed."""
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    sample_provider: Mapped[str]
    """The first delivery's: the provider as its address named it."""
    sample_detail: Mapped[str]
    sample_body_sha256: Mapped[str]
    sample_body_bytes: Mapped[int]
    sample_client: Mapped[str | None]

    __table_args__ = (UniqueConstraint("source", "reason", "window_start"),)
