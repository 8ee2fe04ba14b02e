"""Chargebacks: what each one clawed back (coins, pending diamonds) and lost, the signed provider
events that drive them (each accepted once), and the webhook deliveries refused.

Create Date: 2026-11-27 23:20:00.000000
"""

from alembic import op

from migrations import ops

revision: str = "0007"
down_revision: str | None = "0006"

UPGRADE_SQL = ("invariants/chargebacks.sql",)
DOWNGRADE_SQL = ("0007_chargebacks.down.sql",)


def upgrade() -> None:
    ops.create_table(
        "webhook_rejection",
        ops.serial(),
        ops.text("provider", "reason"),
        ops.text("detail", default=""),
        ops.text("body_sha256"),
        ops.bigint("body_bytes"),
        ops.text("client", null=True),
        ops.timestamp("received_at", default=ops.NOW),
        ops.primary_key("id"),
    )
    ops.create_table(
        "chargeback",
        ops.serial(),
        ops.bigint("purchase_id"),
        ops.text("user_id", "provider", "kind", "case_id"),
        ops.text("reason", default=""),
        ops.bigint("entry_id"),
        ops.text("currency"),
        ops.bigint("cash_minor", "value_paid_micros"),
        ops.bigint("coins_clawed", "coins_spent", "value_released_micros"),
        ops.bigint("diamonds_clawed", "payable_clawed_micros", "loss_micros"),
        ops.text("loss_booked_to"),
        ops.bigint("contra_revenue_micros"),
        ops.text("status"),
        ops.bigint("won_entry_id", null=True),
        ops.timestamp("created_at"),
        ops.timestamp("resolved_at", null=True),
        ops.checks(
            won_entry="(status = 'won') = (won_entry_id IS NOT NULL)",
            kind="kind IN ('dispute', 'app_store_refund', 'voided', 'provider_refund')",
            loss_booked_to="loss_booked_to IN ('receivable', 'fraud_loss')",
            status="status IN ('open', 'won', 'lost', 'final')",
            amounts="cash_minor > 0 AND value_paid_micros >= 0 AND coins_clawed >= 0 AND coins_spent >= 0 AND value_released_micros >= 0 AND diamonds_clawed >= 0 AND payable_clawed_micros >= 0 AND loss_micros >= 0",
        ),
        ops.references("journal_entry", "entry_id"),
        ops.references("journal_entry", "won_entry_id"),
        ops.primary_key("id"),
        ops.unique("entry_id"),
        ops.unique("purchase_id"),
        ops.unique("won_entry_id"),
    )
    op.create_index("ix_chargeback_user", "chargeback", ["user_id", "id"])
    ops.create_table(
        "chargeback_clawback",
        ops.bigint("chargeback_id", "gift_id"),
        ops.text("creator_id"),
        ops.bigint("coins", "diamonds", "payable_micros"),
        ops.checks(amounts="coins > 0 AND diamonds >= 0 AND payable_micros >= 0"),
        ops.references("chargeback", "chargeback_id"),
        ops.primary_key("chargeback_id", "gift_id"),
    )
    op.create_index("ix_chargeback_clawback_gift", "chargeback_clawback", ["gift_id"])
    ops.create_table(
        "chargeback_trace",
        ops.bigint("chargeback_id"),
        ops.text("spending"),
        ops.bigint("spending_id", "coins"),
        ops.checks(coins="coins > 0", spending="spending IN ('gift', 'unlock')"),
        ops.references("chargeback", "chargeback_id"),
        ops.primary_key("chargeback_id", "spending", "spending_id"),
    )
    op.create_index("ix_chargeback_trace_spending", "chargeback_trace", ["spending", "spending_id"])
    ops.create_table(
        "provider_event",
        ops.serial(),
        ops.text("provider", "event_id", "event_type"),
        ops.jsonb("payload"),
        ops.timestamp("signed_at"),
        ops.timestamp("received_at", default=ops.NOW),
        ops.text("outcome"),
        ops.text("detail", default=""),
        ops.bigint("purchase_id", "chargeback_id", null=True),
        ops.references("chargeback", "chargeback_id"),
        ops.primary_key("id"),
        ops.unique("provider", "event_id"),
    )
    op.create_index("ix_provider_event_purchase", "provider_event", ["purchase_id"])
    # No foreign key from a clawback to its gift: gifts are never deleted (their guard refuses
    # it, TRUNCATE too, and a key would make PostgreSQL refuse that TRUNCATE before the guard
    # could say why); the clawback trigger checks the gift, and so does the integrity check.
    ops.run_sql(UPGRADE_SQL)
    ops.append_only(
        "chargeback_clawback", "chargeback_trace", "provider_event", "webhook_rejection"
    )


def downgrade() -> None:
    ops.drop_tables(
        "provider_event",
        "chargeback_trace",
        "chargeback_clawback",
        "chargeback",
        "webhook_rejection",
    )
    ops.run_sql(DOWNGRADE_SQL)
