"""The purchase flow's tables: coin packages and their prices, custom-amount prices, purchases
and the sandbox provider's charges."""

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
