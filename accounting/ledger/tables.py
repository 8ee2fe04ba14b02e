"""The core tables, as SQLAlchemy models: commodities, accounts, journal entries, postings and
FX rates, on the declarative base every flow's tables share. Migrations create them; the
SQL in ``migrations/sql`` enforces the invariants on top of the constraints declared here."""

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
    type_annotation_map = {int: BigInteger, str: Text, datetime: DateTime(timezone=True)}
    """Whole numbers are ``bigint`` (amounts in micro-units, coins, ids), text is ``text``,
    instants carry their time zone: a column says its type only where it is another."""


class CommodityRow(Base):
    __tablename__ = "commodity"

    code: Mapped[str] = mapped_column(primary_key=True)
    kind: Mapped[str]
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

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(unique=True)
    commodity: Mapped[str] = mapped_column(ForeignKey("commodity.code"))
    type: Mapped[str]
    contra: Mapped[bool] = mapped_column(Boolean, server_default="false")
    no_overdraft: Mapped[bool] = mapped_column(Boolean, server_default="false")
    normal_sign: Mapped[int] = mapped_column(SmallInteger)
    balance: Mapped[int] = mapped_column(server_default="0")
    """Debit-positive sum of the account's postings, maintained by the posting trigger only."""
    posting_count: Mapped[int] = mapped_column(server_default="0")
    opened_at: Mapped[datetime] = mapped_column(server_default=func.now())

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

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str]
    event_key: Mapped[str] = mapped_column(unique=True)
    fingerprint: Mapped[str]
    created_txid: Mapped[int] = mapped_column(
        BigInteger, server_default=text("(pg_current_xact_id())::text::bigint")
    )
    """The transaction that wrote the entry: postings join an entry only inside it."""
    """SHA-256 of the entry's postings, to tell a replay of the same event from a different one."""
    posted_at: Mapped[datetime]
    actor: Mapped[str]
    rates: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    refs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    memo: Mapped[str] = mapped_column(server_default="")
    reverses_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"))

    __table_args__ = (
        CheckConstraint("(kind = 'reversal') = (reverses_entry_id IS NOT NULL)", name="reversal"),
        CheckConstraint("length(event_key) BETWEEN 1 AND 200", name="event_key"),
        # The journal's pages and export by period, newest or oldest first (0009); a batch's
        # entries share their instant, so the index deduplicates them (0019).
        Index("ix_journal_entry_posted_at", "posted_at"),
        # An entry is reversed at most once: an index over the reversals alone (0019).
        Index(
            "uq_journal_entry_reverses_entry_id",
            "reverses_entry_id",
            unique=True,
            postgresql_where=text("reverses_entry_id IS NOT NULL"),
        ),
    )


class PostingRow(Base):
    __tablename__ = "posting"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    entry_id: Mapped[int]
    posted_at: Mapped[datetime]
    account_id: Mapped[int]
    commodity: Mapped[str]
    amount: Mapped[int]
    account_seq: Mapped[int]
    """1, 2, 3... per account, in the order the postings were applied to it: the posting
    trigger refuses any other number (no index repeats that rule, 0019)."""
    balance_after: Mapped[int]

    # The entry (with its date) and the account (with its commodity) a posting refers to are
    # checked once per statement by the posting trigger (migrations/sql/0004), not row by row
    # as foreign keys would; accounts and entries are never deleted.
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        Index("ix_posting_entry_id", "entry_id"),
        # An account's history in time order, which is its sequence order (postings are
        # dated after their accounts are locked); the postings a batch lays on one account
        # share their instant and deduplicate into one key (0019).
        Index("ix_posting_account_history", "account_id", "posted_at"),
    )


class FxRateRow(Base):
    """Units of ``quote`` for one unit of ``base``, in force from ``valid_from``."""

    __tablename__ = "fx_rate"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    base: Mapped[str] = mapped_column(ForeignKey("commodity.code"))
    quote: Mapped[str] = mapped_column(ForeignKey("commodity.code"))
    rate: Mapped[Decimal] = mapped_column(Numeric(24, 12))
    valid_from: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("base", "quote", "valid_from"),
        CheckConstraint("rate > 0", name="rate_positive"),
        CheckConstraint("base <> quote", name="distinct"),
    )
