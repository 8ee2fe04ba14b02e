"""Refunds: at most one per purchase, append-only.

Create Date: 2026-11-27 21:55:00.000000
"""

from migrations import ops

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    ops.create_table(
        "refund",
        ops.serial(),
        ops.bigint("purchase_id", "entry_id"),
        ops.text("actor", "idempotency_key", "reason"),
        ops.bigint("coins", "cash_minor", "value_released_micros", "contra_revenue_micros"),
        ops.timestamp("created_at"),
        ops.checks(
            amounts="coins > 0 AND cash_minor > 0 AND value_released_micros >= 0",
            reason="length(reason) BETWEEN 1 AND 500",
        ),
        ops.references("journal_entry", "entry_id"),
        ops.primary_key("id"),
        ops.unique("actor", "idempotency_key"),
        ops.unique("entry_id"),
        ops.unique("purchase_id"),
    )
    # No foreign key to purchase: a purchase is never deleted (its guard refuses it, TRUNCATE
    # too), and a key would make PostgreSQL refuse that TRUNCATE before the guard could say
    # why. The integrity check ties each refund to its purchase and its entry.
    # A refund, once made, is history: corrected by a new entry, never edited or removed.
    ops.append_only("refund")


def downgrade() -> None:
    ops.drop_tables("refund")
