"""The settlement flow's tables: each provider report imported (once per report id), each of its
lines as reconciled, and each reconciliation exception until finance resolves it.

No foreign keys to ``journal_entry`` (entries are never deleted; see migration 0008): the
integrity check ties reports, lines and write-offs to their entries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class SettlementReportRow(Base):
    """A provider's settlement report, imported once: ``digest`` is its content's, so the same
    report id again with other content is refused."""

    __tablename__ = "settlement_report"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    provider: Mapped[str]
    report_id: Mapped[str]
    """The provider's id of the report."""
    digest: Mapped[str]
    imported_by: Mapped[str]
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    line_count: Mapped[int]
    entry_id: Mapped[int | None] = mapped_column(unique=True)
    """The settlement entry, when the report moved anything (cash or a fee difference)."""
    imported_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("provider", "report_id"),
        CheckConstraint("period_start < period_end AND line_count > 0", name="period"),
    )


class SettlementLineRow(Base):
    """One line of a report, with what the ledger expected of it and how it reconciled."""

    __tablename__ = "settlement_line"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("settlement_report.id"))
    line_number: Mapped[int]
    provider_reference: Mapped[str]
    type: Mapped[str]
    currency: Mapped[str]
    gross_micros: Mapped[int]
    fee_micros: Mapped[int]
    net_micros: Mapped[int]
    settled_at: Mapped[datetime]
    status: Mapped[str]
    ledger_entry_id: Mapped[int | None]
    """The ledger entry the line settles (each is settled at most once)."""
    expected_gross_micros: Mapped[int | None]
    expected_fee_micros: Mapped[int | None]
    difference_micros: Mapped[int]
    """Ledger clearing less the line's net: posted to the fee expense when matched."""

    __table_args__ = (
        UniqueConstraint("report_id", "line_number"),
        CheckConstraint(
            "type IN ('charge', 'refund', 'dispute', 'dispute_fee', 'adjustment', 'payout',"
            " 'creator_payout')",
            name="type",
        ),
        CheckConstraint(
            "status IN ('matched', 'missing_in_ledger', 'amount_mismatch', 'bank_transfer')",
            name="status",
        ),
        CheckConstraint("net_micros = gross_micros - fee_micros", name="net"),
        CheckConstraint(
            "(status IN ('matched', 'amount_mismatch')) = (ledger_entry_id IS NOT NULL)",
            name="ledger_entry",
        ),
        Index(
            "uq_settlement_line_ledger_entry_id",
            "ledger_entry_id",
            unique=True,
            postgresql_where=text("ledger_entry_id IS NOT NULL"),
        ),
    )


class ReconciliationExceptionRow(Base):
    """What a report and the ledger disagree on, open until finance resolves it with an action
    and a reason (or a later report settles the ledger item)."""

    __tablename__ = "reconciliation_exception"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("settlement_report.id"))
    line_id: Mapped[int | None] = mapped_column(ForeignKey("settlement_line.id"))
    kind: Mapped[str]
    provider: Mapped[str]
    currency: Mapped[str]
    provider_reference: Mapped[str | None]
    line_type: Mapped[str]
    ledger_entry_id: Mapped[int | None]
    difference_micros: Mapped[int]
    """What clearing holds for it that the provider will not pay (negative: paid without the
    ledger knowing); a write-off moves it to the fee expense."""
    detail: Mapped[str]
    status: Mapped[str] = mapped_column(server_default="open")
    action: Mapped[str | None]
    reason: Mapped[str] = mapped_column(server_default="")
    resolved_by: Mapped[str | None]
    resolved_at: Mapped[datetime | None]
    resolution_key: Mapped[str | None]
    resolution_entry_id: Mapped[int | None] = mapped_column(unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "kind IN ('missing_in_ledger', 'missing_in_report', 'amount_mismatch')", name="kind"
        ),
        CheckConstraint("status IN ('open', 'resolved')", name="status"),
        CheckConstraint(
            "action IS NULL OR action IN ('accept', 'write_off', 'settled_later')", name="action"
        ),
        CheckConstraint(
            "(status = 'resolved') = (action IS NOT NULL AND resolved_by IS NOT NULL"
            " AND resolved_at IS NOT NULL)",
            name="resolved",
        ),
        CheckConstraint("status = 'open' OR length(reason) BETWEEN 1 AND 500", name="reason"),
        CheckConstraint(
            "resolution_entry_id IS NULL OR action = 'write_off'", name="resolution_entry"
        ),
        CheckConstraint("(kind = 'missing_in_report') = (line_id IS NULL)", name="line"),
        Index(
            "uq_reconciliation_exception_missing_item",
            "ledger_entry_id",
            unique=True,
            postgresql_where=text("kind = 'missing_in_report'"),
        ),
        Index("ix_reconciliation_exception_open", "id", postgresql_where=text("status = 'open'")),
    )
