"""The gift flow's tables: streams, the gift and feature catalog, gifts (with their hold) and
feature unlocks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class StreamRow(Base):
    __tablename__ = "stream"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    creator_id: Mapped[str]
    title: Mapped[str]
    status: Mapped[str] = mapped_column(server_default="live")
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    ended_at: Mapped[datetime | None]

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

    code: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    coin_price: Mapped[int]
    tier: Mapped[str]
    animation: Mapped[str | None]
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("coin_price > 0", name="price"),
        CheckConstraint("tier IN ('basic', 'popular', 'premium', 'legendary')", name="tier"),
    )


class FeatureRow(Base):
    """Premium features unlocked with coins: effects, stickers and the like."""

    __tablename__ = "feature"

    code: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    kind: Mapped[str]
    coin_price: Mapped[int]
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("coin_price > 0", name="price"),
        CheckConstraint("kind IN ('effect', 'sticker', 'badge', 'highlight')", name="kind"),
    )


class GiftRow(Base):
    """A gift sent in a live stream, with the prices and rates it used and its hold."""

    __tablename__ = "gift"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    sender_id: Mapped[str]
    idempotency_key: Mapped[str]
    request_hash: Mapped[str]
    stream_id: Mapped[int] = mapped_column(ForeignKey("stream.id"))
    creator_id: Mapped[str]
    gift_code: Mapped[str] = mapped_column(ForeignKey("gift_type.code"))
    quantity: Mapped[int]
    coin_price: Mapped[int]
    coins: Mapped[int]
    value_micros: Mapped[int]
    diamonds: Mapped[int]
    payable_micros: Mapped[int]
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"), unique=True)
    created_at: Mapped[datetime]
    release_at: Mapped[datetime]
    release_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"))
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

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str]
    idempotency_key: Mapped[str]
    request_hash: Mapped[str]
    feature_code: Mapped[str] = mapped_column(ForeignKey("feature.code"))
    coins: Mapped[int]
    value_micros: Mapped[int]
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"), unique=True)
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        CheckConstraint("coins > 0 AND value_micros >= 0", name="amounts"),
        Index("ix_feature_unlock_user", "user_id", "id"),
    )
