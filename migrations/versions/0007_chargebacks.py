"""Chargebacks: what each one clawed back (coins, pending diamonds) and lost, the signed provider
events that drive them (each accepted once), and the webhook deliveries refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 23:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql import sql_statements

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_rejection",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("body_sha256", sa.Text(), nullable=False),
        sa.Column("body_bytes", sa.BigInteger(), nullable=False),
        sa.Column("client", sa.Text(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_rejection")),
    )
    op.create_table(
        "chargeback",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("purchase_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("cash_minor", sa.BigInteger(), nullable=False),
        sa.Column("value_paid_micros", sa.BigInteger(), nullable=False),
        sa.Column("coins_clawed", sa.BigInteger(), nullable=False),
        sa.Column("coins_spent", sa.BigInteger(), nullable=False),
        sa.Column("value_released_micros", sa.BigInteger(), nullable=False),
        sa.Column("diamonds_clawed", sa.BigInteger(), nullable=False),
        sa.Column("payable_clawed_micros", sa.BigInteger(), nullable=False),
        sa.Column("loss_micros", sa.BigInteger(), nullable=False),
        sa.Column("loss_booked_to", sa.Text(), nullable=False),
        sa.Column("contra_revenue_micros", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("won_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'won') = (won_entry_id IS NOT NULL)", name=op.f("ck_chargeback_won_entry")
        ),
        sa.CheckConstraint(
            "kind IN ('dispute', 'app_store_refund', 'voided', 'provider_refund')",
            name=op.f("ck_chargeback_kind"),
        ),
        sa.CheckConstraint(
            "loss_booked_to IN ('receivable', 'fraud_loss')",
            name=op.f("ck_chargeback_loss_booked_to"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'won', 'lost', 'final')", name=op.f("ck_chargeback_status")
        ),
        sa.CheckConstraint(
            "cash_minor > 0 AND value_paid_micros >= 0 AND coins_clawed >= 0 AND coins_spent >= 0 AND value_released_micros >= 0 AND diamonds_clawed >= 0 AND payable_clawed_micros >= 0 AND loss_micros >= 0",
            name=op.f("ck_chargeback_amounts"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_chargeback_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(
            ["won_entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_chargeback_won_entry_id_journal_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chargeback")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_chargeback_entry_id")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_chargeback_purchase_id")),
        sa.UniqueConstraint("won_entry_id", name=op.f("uq_chargeback_won_entry_id")),
    )
    op.create_index("ix_chargeback_user", "chargeback", ["user_id", "id"], unique=False)
    op.create_table(
        "chargeback_clawback",
        sa.Column("chargeback_id", sa.BigInteger(), nullable=False),
        sa.Column("gift_id", sa.BigInteger(), nullable=False),
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("coins", sa.BigInteger(), nullable=False),
        sa.Column("diamonds", sa.BigInteger(), nullable=False),
        sa.Column("payable_micros", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "coins > 0 AND diamonds >= 0 AND payable_micros >= 0",
            name=op.f("ck_chargeback_clawback_amounts"),
        ),
        sa.ForeignKeyConstraint(
            ["chargeback_id"],
            ["chargeback.id"],
            name=op.f("fk_chargeback_clawback_chargeback_id_chargeback"),
        ),
        sa.PrimaryKeyConstraint("chargeback_id", "gift_id", name=op.f("pk_chargeback_clawback")),
    )
    op.create_index("ix_chargeback_clawback_gift", "chargeback_clawback", ["gift_id"], unique=False)
    op.create_table(
        "chargeback_trace",
        sa.Column("chargeback_id", sa.BigInteger(), nullable=False),
        sa.Column("spending", sa.Text(), nullable=False),
        sa.Column("spending_id", sa.BigInteger(), nullable=False),
        sa.Column("coins", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("coins > 0", name=op.f("ck_chargeback_trace_coins")),
        sa.CheckConstraint(
            "spending IN ('gift', 'unlock')", name=op.f("ck_chargeback_trace_spending")
        ),
        sa.ForeignKeyConstraint(
            ["chargeback_id"],
            ["chargeback.id"],
            name=op.f("fk_chargeback_trace_chargeback_id_chargeback"),
        ),
        sa.PrimaryKeyConstraint(
            "chargeback_id", "spending", "spending_id", name=op.f("pk_chargeback_trace")
        ),
    )
    op.create_index(
        "ix_chargeback_trace_spending",
        "chargeback_trace",
        ["spending", "spending_id"],
        unique=False,
    )
    op.create_table(
        "provider_event",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("purchase_id", sa.BigInteger(), nullable=True),
        sa.Column("chargeback_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["chargeback_id"],
            ["chargeback.id"],
            name=op.f("fk_provider_event_chargeback_id_chargeback"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_event")),
        sa.UniqueConstraint(
            "provider", "event_id", name=op.f("uq_provider_event_provider_event_id")
        ),
    )
    op.create_index("ix_provider_event_purchase", "provider_event", ["purchase_id"], unique=False)
    # No foreign key from a clawback to its gift: gifts are never deleted (their guard refuses
    # it, TRUNCATE too, and a key would make PostgreSQL refuse that TRUNCATE before the guard
    # could say why); the clawback trigger checks the gift, and so does the integrity check.
    for statement in sql_statements("0007_chargebacks.sql"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_provider_event_purchase", table_name="provider_event")
    op.drop_table("provider_event")
    op.drop_index("ix_chargeback_trace_spending", table_name="chargeback_trace")
    op.drop_table("chargeback_trace")
    op.drop_index("ix_chargeback_clawback_gift", table_name="chargeback_clawback")
    op.drop_table("chargeback_clawback")
    op.drop_index("ix_chargeback_user", table_name="chargeback")
    op.drop_table("chargeback")
    op.drop_table("webhook_rejection")
    op.execute("DROP FUNCTION coinbooks_chargeback_guard()")
    op.execute("DROP FUNCTION coinbooks_clawback_check()")
