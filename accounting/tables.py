"""The ledger's tables, as SQLAlchemy models. Migrations create them; triggers in
``migrations/sql`` enforce the invariants on top of the constraints declared here."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CommodityRow(Base):
    __tablename__ = "commodity"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    scale: Mapped[int] = mapped_column(SmallInteger)
    minor_unit_digits: Mapped[int | None] = mapped_column(SmallInteger)

    __table_args__ = (
        CheckConstraint("kind IN ('virtual', 'fiat')", name="kind"),
        CheckConstraint("scale BETWEEN 0 AND 6", name="scale"),
        CheckConstraint(
            "(kind = 'fiat') = (minor_unit_digits IS NOT NULL)"
            " AND coalesce(minor_unit_digits, 0) <= scale",
            name="minor_unit",
        ),
    )


class AccountRow(Base):
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    commodity: Mapped[str] = mapped_column(Text, ForeignKey("commodity.code"))
    type: Mapped[str] = mapped_column(Text)
    contra: Mapped[bool] = mapped_column(Boolean, server_default="false")
    no_overdraft: Mapped[bool] = mapped_column(Boolean, server_default="false")
    normal_sign: Mapped[int] = mapped_column(SmallInteger)
    balance: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Debit-positive sum of the account's postings, maintained by the posting trigger only."""
    posting_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'revenue', 'expense')", name="type"
        ),
        CheckConstraint(
            "normal_sign = CASE WHEN (type IN ('asset', 'expense')) <> contra THEN 1 ELSE -1 END",
            name="normal_sign",
        ),
        CheckConstraint("NOT no_overdraft OR balance * normal_sign >= 0", name="no_overdraft"),
        CheckConstraint("posting_count >= 0", name="posting_count"),
    )


class JournalEntryRow(Base):
    __tablename__ = "journal_entry"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(Text)
    event_key: Mapped[str] = mapped_column(Text, unique=True)
    fingerprint: Mapped[str] = mapped_column(Text)
    created_txid: Mapped[int] = mapped_column(
        BigInteger, server_default=text("(pg_current_xact_id())::text::bigint")
    )
    """The transaction that wrote the entry: postings join an entry only inside it."""
    """SHA-256 of the entry's postings, to tell a replay of the same event from a different one."""
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    rates: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    refs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    memo: Mapped[str] = mapped_column(Text, server_default="")
    reverses_entry_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("journal_entry.id"), unique=True
    )

    __table_args__ = (
        CheckConstraint("(kind = 'reversal') = (reverses_entry_id IS NOT NULL)", name="reversal"),
        CheckConstraint("length(event_key) BETWEEN 1 AND 200", name="event_key"),
    )


class PostingRow(Base):
    __tablename__ = "posting"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(BigInteger)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    account_id: Mapped[int] = mapped_column(BigInteger)
    commodity: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    account_seq: Mapped[int] = mapped_column(BigInteger)
    """1, 2, 3... per account, in the order the postings were applied to it."""
    balance_after: Mapped[int] = mapped_column(BigInteger)

    # The entry (with its date) and the account (with its commodity) a posting refers to are
    # checked once per statement by the posting trigger (migrations/sql/0004), not row by row
    # as foreign keys would; accounts and entries are never deleted.
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        UniqueConstraint("account_id", "account_seq"),
        Index("ix_posting_entry_id", "entry_id"),
        Index("ix_posting_account_history", "account_id", "posted_at", "account_seq"),
    )


class CoinPackageRow(Base):
    __tablename__ = "coin_package"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    coins: Mapped[int] = mapped_column(BigInteger)
    bonus_coins: Mapped[int] = mapped_column(BigInteger, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")

    __table_args__ = (CheckConstraint("coins > 0 AND bonus_coins >= 0", name="coins"),)


class PackagePriceRow(Base):
    __tablename__ = "package_price"

    package_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("coin_package.id"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(Text, primary_key=True)
    currency: Mapped[str] = mapped_column(Text, ForeignKey("commodity.code"), primary_key=True)
    price_minor: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("channel IN ('web', 'ios', 'android')", name="channel"),
        CheckConstraint("price_minor > 0", name="price"),
    )


class CustomCoinPriceRow(Base):
    """Price per coin for a custom amount bought on the web, and the bounds of that amount."""

    __tablename__ = "custom_coin_price"

    currency: Mapped[str] = mapped_column(Text, ForeignKey("commodity.code"), primary_key=True)
    coin_price_micros: Mapped[int] = mapped_column(BigInteger)
    min_coins: Mapped[int] = mapped_column(BigInteger)
    max_coins: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint(
            "coin_price_micros > 0 AND min_coins > 0 AND max_coins >= min_coins", name="bounds"
        ),
    )


class FxRateRow(Base):
    """Units of ``quote`` for one unit of ``base``, in force from ``valid_from``."""

    __tablename__ = "fx_rate"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    base: Mapped[str] = mapped_column(Text, ForeignKey("commodity.code"))
    quote: Mapped[str] = mapped_column(Text, ForeignKey("commodity.code"))
    rate: Mapped[Decimal] = mapped_column(Numeric(24, 12))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("base", "quote", "valid_from"),
        CheckConstraint("rate > 0", name="rate_positive"),
        CheckConstraint("base <> quote", name="distinct"),
    )


class PurchaseRow(Base):
    __tablename__ = "purchase"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(Text)
    package_code: Mapped[str | None] = mapped_column(Text)
    coins: Mapped[int] = mapped_column(BigInteger)
    bonus_coins: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text, ForeignKey("commodity.code"))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    failure_code: Mapped[str | None] = mapped_column(Text)
    failure_message: Mapped[str | None] = mapped_column(Text)
    provider_reference: Mapped[str | None] = mapped_column(Text)
    entry_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("journal_entry.id"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        CheckConstraint("status IN ('pending', 'completed', 'failed')", name="status"),
        CheckConstraint("(status = 'completed') = (entry_id IS NOT NULL)", name="completed_entry"),
        CheckConstraint("coins > 0 AND bonus_coins >= 0 AND price_minor > 0", name="amounts"),
        CheckConstraint("channel IN ('web', 'ios', 'android')", name="channel"),
        Index("ix_purchase_user_history", "user_id", "id"),
        Index("ix_purchase_pending", "id", postgresql_where="status = 'pending'"),
    )


class SandboxPaymentRow(Base):
    """The sandbox payment provider's own records: what it charged, under whose reference."""

    __tablename__ = "sandbox_payment"

    reference: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str] = mapped_column(Text)
    merchant_reference: Mapped[str] = mapped_column(Text)
    payment_token: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text)
    decline_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("provider", "merchant_reference"),
        CheckConstraint("status IN ('succeeded', 'declined')", name="status"),
    )


class UserStatusRow(Base):
    """A user's standing: a frozen account may not buy, gift or be paid out."""

    __tablename__ = "user_status"

    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    frozen: Mapped[bool] = mapped_column(Boolean, server_default="false")
    reason: Mapped[str] = mapped_column(Text, server_default="")
    changed_by: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StreamRow(Base):
    __tablename__ = "stream"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    creator_id: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="live")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('live', 'ended')", name="status"),
        CheckConstraint("(status = 'ended') = (ended_at IS NOT NULL)", name="ended"),
        CheckConstraint("length(title) BETWEEN 1 AND 200", name="title"),
        Index(
            "uq_stream_one_live_per_creator",
            "creator_id",
            unique=True,
            postgresql_where="status = 'live'",
        ),
        Index("ix_stream_creator", "creator_id", "id"),
    )


class GiftTypeRow(Base):
    """The gift catalog. A price change applies to new gifts only: each gift records its price."""

    __tablename__ = "gift_type"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    coin_price: Mapped[int] = mapped_column(BigInteger)
    tier: Mapped[str] = mapped_column(Text)
    animation: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("coin_price > 0", name="price"),
        CheckConstraint("tier IN ('basic', 'popular', 'premium', 'legendary')", name="tier"),
    )


class FeatureRow(Base):
    """Premium features unlocked with coins: effects, stickers and the like."""

    __tablename__ = "feature"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    coin_price: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("coin_price > 0", name="price"),
        CheckConstraint("kind IN ('effect', 'sticker', 'badge', 'highlight')", name="kind"),
    )


class GiftRow(Base):
    """A gift sent in a live stream, with the prices and rates it used and its hold."""

    __tablename__ = "gift"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    sender_id: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(Text)
    stream_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("stream.id"))
    creator_id: Mapped[str] = mapped_column(Text)
    gift_code: Mapped[str] = mapped_column(Text, ForeignKey("gift_type.code"))
    quantity: Mapped[int] = mapped_column(BigInteger)
    coin_price: Mapped[int] = mapped_column(BigInteger)
    coins: Mapped[int] = mapped_column(BigInteger)
    value_micros: Mapped[int] = mapped_column(BigInteger)
    diamonds: Mapped[int] = mapped_column(BigInteger)
    payable_micros: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("journal_entry.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    release_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    release_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("journal_entry.id"))
    """The hold-release entry that made the gift's diamonds available (one per batch)."""

    __table_args__ = (
        UniqueConstraint("sender_id", "idempotency_key"),
        CheckConstraint(
            "quantity > 0 AND coin_price > 0 AND coins = quantity * coin_price"
            " AND value_micros >= 0 AND diamonds >= 0 AND payable_micros >= 0",
            name="amounts",
        ),
        CheckConstraint("sender_id <> creator_id", name="not_to_self"),
        Index("ix_gift_stream", "stream_id", "id"),
        Index("ix_gift_creator_time", "creator_id", "created_at"),
        Index("ix_gift_sender", "sender_id", "id"),
        Index("ix_gift_holding", "release_at", postgresql_where="release_entry_id IS NULL"),
    )


class FeatureUnlockRow(Base):
    __tablename__ = "feature_unlock"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(Text)
    feature_code: Mapped[str] = mapped_column(Text, ForeignKey("feature.code"))
    coins: Mapped[int] = mapped_column(BigInteger)
    value_micros: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("journal_entry.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        CheckConstraint("coins > 0 AND value_micros >= 0", name="amounts"),
        Index("ix_feature_unlock_user", "user_id", "id"),
    )


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


class CreatorKycRow(Base):
    """Whether a creator's identity is verified (set by an admin), by whom and why."""

    __tablename__ = "creator_kyc"

    creator_id: Mapped[str] = mapped_column(Text, primary_key=True)
    verified: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, server_default="")
    changed_by: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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


class AuditRow(Base):
    """What a support, finance or admin person did: who, when, what (to which subject), why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, server_default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_audit_log_subject", "subject", "id"),
        Index("ix_audit_log_actor", "actor", "id"),
    )


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


class ChargebackRow(Base):
    """A purchase taken back by its provider (a card dispute, an app-store refund or void, a
    refund made at the provider): what was clawed back, what was lost and where it was booked.
    At most one per purchase; a dispute resolves once, won or lost."""

    __tablename__ = "chargeback"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    purchase_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    user_id: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    case_id: Mapped[str] = mapped_column(Text)
    """The provider's name for the case: the dispute id, or the event id for the others."""
    reason: Mapped[str] = mapped_column(Text, server_default="")
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("journal_entry.id"), unique=True)
    currency: Mapped[str] = mapped_column(Text)
    cash_minor: Mapped[int] = mapped_column(BigInteger)
    value_paid_micros: Mapped[int] = mapped_column(BigInteger)
    coins_clawed: Mapped[int] = mapped_column(BigInteger)
    coins_spent: Mapped[int] = mapped_column(BigInteger)
    value_released_micros: Mapped[int] = mapped_column(BigInteger)
    diamonds_clawed: Mapped[int] = mapped_column(BigInteger)
    payable_clawed_micros: Mapped[int] = mapped_column(BigInteger)
    loss_micros: Mapped[int] = mapped_column(BigInteger)
    loss_booked_to: Mapped[str] = mapped_column(Text)
    contra_revenue_micros: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text)
    won_entry_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("journal_entry.id"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

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
    )


class ChargebackClawbackRow(Base):
    """Diamonds a charged-back purchase funded that were still pending at a creator, taken back
    from one gift (with their payable)."""

    __tablename__ = "chargeback_clawback"

    chargeback_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chargeback.id"), primary_key=True
    )
    gift_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    """The gift (never deleted; the clawback trigger checks it exists and is still held)."""
    creator_id: Mapped[str] = mapped_column(Text)
    coins: Mapped[int] = mapped_column(BigInteger)
    """The gift's coins this purchase paid for."""
    diamonds: Mapped[int] = mapped_column(BigInteger)
    payable_micros: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("coins > 0 AND diamonds >= 0 AND payable_micros >= 0", name="amounts"),
        Index("ix_chargeback_clawback_gift", "gift_id"),
    )


class ChargebackTraceRow(Base):
    """Spent coins of a charged-back purchase, traced to what they bought: a gift or an unlock.
    Each spent coin is traced once while its chargeback stands."""

    __tablename__ = "chargeback_trace"

    chargeback_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chargeback.id"), primary_key=True
    )
    spending: Mapped[str] = mapped_column(Text, primary_key=True)
    spending_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    """The gift's or the unlock's id (never deleted; the integrity check ties the two)."""
    coins: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("spending IN ('gift', 'unlock')", name="spending"),
        CheckConstraint("coins > 0", name="coins"),
        Index("ix_chargeback_trace_spending", "spending", "spending_id"),
    )


class ProviderEventRow(Base):
    """A signed provider event, accepted once under the provider's event id, with what it did."""

    __tablename__ = "provider_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    outcome: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, server_default="")
    purchase_id: Mapped[int | None] = mapped_column(BigInteger)
    chargeback_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("chargeback.id"))

    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_provider_event_purchase", "purchase_id"),
    )


class WebhookRejectionRow(Base):
    """A webhook delivery refused before it was read as an event: unknown provider, bad or
    missing signature, stale timestamp, unreadable body. Kept for whoever investigates."""

    __tablename__ = "webhook_rejection"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, server_default="")
    body_sha256: Mapped[str] = mapped_column(Text)
    body_bytes: Mapped[int] = mapped_column(BigInteger)
    client: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
