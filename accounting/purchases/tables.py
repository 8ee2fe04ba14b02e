"""The purchase flow's tables: coin packages and their prices, custom-amount prices, purchases
and the sandbox provider's charges."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class CoinPackageRow(Base):
    __tablename__ = "coin_package"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(unique=True)
    coins: Mapped[int]
    bonus_coins: Mapped[int] = mapped_column(server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")

    __table_args__ = (CheckConstraint("coins > 0 AND bonus_coins >= 0", name="coins"),)


class PackagePriceRow(Base):
    __tablename__ = "package_price"

    package_id: Mapped[int] = mapped_column(ForeignKey("coin_package.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(ForeignKey("commodity.code"), primary_key=True)
    price_minor: Mapped[int]

    __table_args__ = (
        CheckConstraint("channel IN ('web', 'ios', 'android')", name="channel"),
        CheckConstraint("price_minor > 0", name="price"),
    )


class CustomCoinPriceRow(Base):
    """Price per coin for a custom amount bought on the web, and the bounds of that amount."""

    __tablename__ = "custom_coin_price"

    currency: Mapped[str] = mapped_column(ForeignKey("commodity.code"), primary_key=True)
    coin_price_micros: Mapped[int]
    min_coins: Mapped[int]
    max_coins: Mapped[int]

    __table_args__ = (
        CheckConstraint(
            "coin_price_micros > 0 AND min_coins > 0 AND max_coins >= min_coins", name="bounds"
        ),
    )


class PurchaseRow(Base):
    __tablename__ = "purchase"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str]
    idempotency_key: Mapped[str]
    request_hash: Mapped[str]
    package_code: Mapped[str | None]
    coins: Mapped[int]
    bonus_coins: Mapped[int]
    channel: Mapped[str]
    provider: Mapped[str]
    currency: Mapped[str] = mapped_column(ForeignKey("commodity.code"))
    price_minor: Mapped[int]
    status: Mapped[str] = mapped_column(server_default="pending")
    failure_code: Mapped[str | None]
    failure_message: Mapped[str | None]
    provider_reference: Mapped[str | None]
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    settled_at: Mapped[datetime | None]
    receivable_repaid_micros: Mapped[int] = mapped_column(server_default="0")
    """What of the price repaid the buyer's receivable first, in the functional currency."""
    coins_withheld: Mapped[int] = mapped_column(server_default="0")
    """Coins (of ``coins + bonus_coins``) not granted because the price repaid a receivable."""

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        CheckConstraint("status IN ('pending', 'completed', 'failed')", name="status"),
        CheckConstraint("(status = 'completed') = (entry_id IS NOT NULL)", name="completed_entry"),
        CheckConstraint("coins > 0 AND bonus_coins >= 0 AND price_minor > 0", name="amounts"),
        CheckConstraint("channel IN ('web', 'ios', 'android')", name="channel"),
        CheckConstraint(
            "receivable_repaid_micros >= 0 AND coins_withheld >= 0"
            " AND coins_withheld <= coins + bonus_coins"
            " AND (status = 'completed' OR (receivable_repaid_micros = 0 AND coins_withheld = 0))",
            name="repayment",
        ),
        Index("ix_purchase_user_history", "user_id", "id"),
        Index("ix_purchase_pending", "id", postgresql_where="status = 'pending'"),
        Index(
            "ux_purchase_provider_reference",
            "provider",
            "provider_reference",
            unique=True,
            postgresql_where="provider_reference IS NOT NULL",
        ),
    )


class SandboxPaymentRow(Base):
    """The sandbox payment provider's own records: what it charged, under whose reference."""

    __tablename__ = "sandbox_payment"

    reference: Mapped[str] = mapped_column(primary_key=True)
    provider: Mapped[str]
    merchant_reference: Mapped[str]
    payment_token: Mapped[str]
    currency: Mapped[str]
    amount_minor: Mapped[int]
    status: Mapped[str]
    decline_reason: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("provider", "merchant_reference"),
        CheckConstraint("status IN ('succeeded', 'declined')", name="status"),
    )
