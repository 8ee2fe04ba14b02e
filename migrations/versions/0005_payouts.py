"""Payouts: payout methods, TOTP second factors, KYC flags, payouts and their phases, and the
audit log of what support, finance and admin people do.

Create Date: 2026-11-27 19:51:10.899812
"""

from alembic import op

from migrations import ops

revision: str = "0005"
down_revision: str | None = "0004"

UPGRADE_SQL = ("superseded/0005_payouts.sql", "0005_payouts.sql")
DOWNGRADE_SQL = ("0005_payouts.down.sql",)


def upgrade() -> None:
    ops.create_table(
        "audit_log",
        ops.serial(),
        ops.text("actor", "action", "subject"),
        ops.text("reason", default=""),
        ops.jsonb("details", default="{}"),
        ops.timestamp("created_at", default=ops.NOW),
        ops.primary_key("id"),
    )
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "id"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject", "id"])
    ops.create_table(
        "creator_kyc",
        ops.text("creator_id"),
        ops.boolean("verified"),
        ops.text("reason", default=""),
        ops.text("changed_by"),
        ops.timestamp("changed_at", default=ops.NOW),
        ops.primary_key("creator_id"),
    )
    ops.create_table(
        "creator_totp",
        ops.text("creator_id", "secret"),
        ops.timestamp("enrolled_at", default=ops.NOW),
        ops.timestamp("confirmed_at", null=True),
        ops.primary_key("creator_id"),
    )
    ops.create_table(
        "payout_method",
        ops.serial(),
        ops.text("creator_id", "kind", "masked", "holder_name", "fingerprint"),
        ops.timestamp("created_at", default=ops.NOW),
        ops.checks(
            kind="kind IN ('bank_account', 'paypal')", masked="length(masked) BETWEEN 1 AND 100"
        ),
        ops.primary_key("id"),
        ops.unique("creator_id", "fingerprint"),
    )
    op.create_index("ix_payout_method_creator", "payout_method", ["creator_id", "id"])
    ops.create_table(
        "payout",
        ops.serial(),
        ops.text("creator_id", "idempotency_key", "request_hash"),
        ops.bigint("method_id", "diamonds_requested", "diamonds"),
        ops.text("currency"),
        ops.bigint("amount_micros"),
        ops.text("status", default="requested"),
        ops.timestamp("created_at", "updated_at"),
        ops.checks(
            status="status IN ('requested', 'rejected', 'sent', 'paid', 'failed')",
            amounts="diamonds > 0 AND diamonds <= diamonds_requested AND amount_micros > 0",
        ),
        ops.references("commodity", "currency", to=["code"]),
        ops.references("payout_method", "method_id"),
        ops.primary_key("id"),
        ops.unique("creator_id", "idempotency_key"),
    )
    op.create_index("ix_payout_creator", "payout", ["creator_id", "id"])
    op.create_index(
        "ix_payout_in_flight", "payout", ["id"], postgresql_where="status IN ('requested', 'sent')"
    )
    ops.create_table(
        "payout_event",
        ops.serial(),
        ops.bigint("payout_id"),
        ops.text("phase", "actor", "idempotency_key", "request_hash"),
        ops.text("reason", default=""),
        ops.text("provider_reference", null=True),
        ops.bigint("entry_id"),
        ops.timestamp("created_at"),
        ops.checks(phase="phase IN ('requested', 'rejected', 'sent', 'paid', 'failed')"),
        ops.references("journal_entry", "entry_id"),
        ops.references("payout", "payout_id"),
        ops.primary_key("id"),
        ops.unique("actor", "idempotency_key"),
        ops.unique("entry_id"),
        ops.unique("payout_id", "phase"),
    )
    ops.run_sql(UPGRADE_SQL)
    ops.append_only("payout_event", "audit_log")


def downgrade() -> None:
    ops.drop_tables(
        "payout_event", "payout", "payout_method", "creator_totp", "creator_kyc", "audit_log"
    )
    ops.run_sql(DOWNGRADE_SQL)
