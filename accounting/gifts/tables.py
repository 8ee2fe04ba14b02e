"""The gift flow's tables: streams, the gift and feature catalog, gifts (with their hold) and
feature unlocks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
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
