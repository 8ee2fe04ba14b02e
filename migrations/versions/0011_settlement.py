"""Provider settlement: each settlement report imported (once per provider and report id), each of
its lines as reconciled against the ledger, and each reconciliation exception until finance
resolves it; the bank's confirmations of creator payouts are reports of the source ``bank``.
Reports and lines are history; an exception changes only when it is resolved.

Create Date: 2026-12-05 08:00:00.000000
"""

from alembic import op

from migrations import ops

revision: str = "0011"
down_revision: str | None = "0010"


def upgrade() -> None:
    ops.create_table(
        "settlement_report",
        ops.serial(),
        ops.text("provider", "report_id", "digest", "imported_by"),
        ops.timestamp("period_start", "period_end"),
        ops.bigint("line_count"),
        ops.bigint("entry_id", null=True),
        ops.timestamp("imported_at", default=ops.NOW),
        ops.checks(period="period_start < period_end AND line_count > 0"),
        ops.primary_key("id"),
        ops.unique("entry_id"),
        ops.unique("provider", "report_id"),
    )
    # No foreign keys to journal_entry (see 0008): the integrity check ties reports, lines and
    # write-offs to their entries (accounting/settlement/checks.py).
    ops.create_table(
        "settlement_line",
        ops.serial(),
        ops.bigint("report_id", "line_number"),
        ops.text("provider_reference", "type", "currency"),
        ops.bigint("gross_micros", "fee_micros", "net_micros"),
        ops.timestamp("settled_at"),
        ops.text("status"),
        ops.bigint("ledger_entry_id", "expected_gross_micros", "expected_fee_micros", null=True),
        ops.bigint("difference_micros"),
        ops.checks(
            type="type IN ('charge', 'refund', 'dispute', 'dispute_fee', 'adjustment', 'payout',"
            " 'creator_payout')",
            status="status IN ('matched', 'missing_in_ledger', 'amount_mismatch', 'bank_transfer')",
            net="net_micros = gross_micros - fee_micros",
            ledger_entry="(status IN ('matched', 'amount_mismatch')) = (ledger_entry_id IS NOT NULL)",
        ),
        ops.references("settlement_report", "report_id"),
        ops.primary_key("id"),
        ops.unique("report_id", "line_number"),
    )
    op.create_index(
        "uq_settlement_line_ledger_entry_id",
        "settlement_line",
        ["ledger_entry_id"],
        unique=True,
        postgresql_where="ledger_entry_id IS NOT NULL",
    )
    ops.create_table(
        "reconciliation_exception",
        ops.serial(),
        ops.bigint("report_id"),
        ops.bigint("line_id", null=True),
        ops.text("kind", "provider", "currency"),
        ops.text("provider_reference", null=True),
        ops.text("line_type"),
        ops.bigint("ledger_entry_id", null=True),
        ops.bigint("difference_micros"),
        ops.text("detail"),
        ops.text("status", default="open"),
        ops.text("action", null=True),
        ops.text("reason", default=""),
        ops.text("resolved_by", null=True),
        ops.timestamp("resolved_at", null=True),
        ops.text("resolution_key", null=True),
        ops.bigint("resolution_entry_id", null=True),
        ops.timestamp("created_at", default=ops.NOW),
        ops.checks(
            kind="kind IN ('missing_in_ledger', 'missing_in_report', 'amount_mismatch')",
            status="status IN ('open', 'resolved')",
            action="action IS NULL OR action IN ('accept', 'write_off', 'settled_later')",
            resolved="(status = 'resolved') = (action IS NOT NULL AND resolved_by IS NOT NULL"
            " AND resolved_at IS NOT NULL)",
            reason="status = 'open' OR length(reason) BETWEEN 1 AND 500",
            resolution_entry="resolution_entry_id IS NULL OR action = 'write_off'",
            line="(kind = 'missing_in_report') = (line_id IS NULL)",
        ),
        ops.references("settlement_report", "report_id"),
        ops.references("settlement_line", "line_id"),
        ops.primary_key("id"),
        ops.unique("resolution_entry_id"),
    )
    op.create_index(
        "uq_reconciliation_exception_missing_item",
        "reconciliation_exception",
        ["ledger_entry_id"],
        unique=True,
        postgresql_where="kind = 'missing_in_report'",
    )
    op.create_index(
        "ix_reconciliation_exception_open",
        "reconciliation_exception",
        ["id"],
        postgresql_where="status = 'open'",
    )
    ops.append_only("settlement_report", "settlement_line")


def downgrade() -> None:
    ops.drop_tables("reconciliation_exception", "settlement_line", "settlement_report")
