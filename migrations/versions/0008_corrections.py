"""Corrections by finance: each reversal of a mistaken entry (at most one per entry), and manual
adjusting entries proposed by one finance person and approved (posted) or rejected by another.

Create Date: 2026-12-05 03:30:00.000000
"""

from alembic import op

from migrations import ops

revision: str = "0008"
down_revision: str | None = "0007"


def upgrade() -> None:
    ops.create_table(
        "entry_reversal",
        ops.serial(),
        ops.bigint("entry_id", "reversal_entry_id"),
        ops.text("actor", "idempotency_key", "reason"),
        ops.timestamp("created_at"),
        ops.checks(reason="length(reason) BETWEEN 1 AND 500"),
        ops.primary_key("id"),
        ops.unique("actor", "idempotency_key"),
        ops.unique("entry_id"),
        ops.unique("reversal_entry_id"),
    )
    # No foreign keys to journal_entry, here or below: entries are never deleted (their guard
    # refuses it, TRUNCATE too, and a key would make PostgreSQL refuse that TRUNCATE before the
    # guard could say why). The integrity check ties each reversal and each posted proposal to
    # its entries (accounting/corrections/checks.py).
    ops.create_table(
        "adjustment_proposal",
        ops.serial(),
        ops.text("proposed_by", "idempotency_key", "reason"),
        ops.text("memo", default=""),
        ops.jsonb("postings"),
        ops.text("status", default="proposed"),
        ops.timestamp("created_at", default=ops.NOW),
        ops.text("decided_by", null=True),
        ops.timestamp("decided_at", null=True),
        ops.text("decision_key", null=True),
        ops.text("decision_reason", default=""),
        ops.bigint("entry_id", null=True),
        ops.checks(
            status="status IN ('proposed', 'posted', 'rejected')",
            posted_entry="(status = 'posted') = (entry_id IS NOT NULL)",
            decided="(status = 'proposed') = (decided_by IS NULL AND decided_at IS NULL)",
            four_eyes="status <> 'posted' OR decided_by <> proposed_by",
            reason="length(reason) BETWEEN 1 AND 500",
            decision_reason="length(decision_reason) <= 500",
        ),
        ops.primary_key("id"),
        ops.unique("entry_id"),
        ops.unique("proposed_by", "idempotency_key"),
    )
    op.create_index("ix_adjustment_proposal_status", "adjustment_proposal", ["status", "id"])
    ops.append_only("entry_reversal")


def downgrade() -> None:
    ops.drop_tables("adjustment_proposal", "entry_reversal")
