"""Payouts: payout methods, TOTP second factors, KYC flags, payouts and their phases, and the
audit log of what support, finance and admin people do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 19:51:10.899812
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql import sql_statements

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "id"], unique=False)
    op.create_index("ix_audit_log_subject", "audit_log", ["subject", "id"], unique=False)
    op.create_table(
        "creator_kyc",
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("creator_id", name=op.f("pk_creator_kyc")),
    )
    op.create_table(
        "creator_totp",
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column(
            "enrolled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("creator_id", name=op.f("pk_creator_totp")),
    )
    op.create_table(
        "payout_method",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("masked", sa.Text(), nullable=False),
        sa.Column("holder_name", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('bank_account', 'paypal')", name=op.f("ck_payout_method_kind")
        ),
        sa.CheckConstraint(
            "length(masked) BETWEEN 1 AND 100", name=op.f("ck_payout_method_masked")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_method")),
        sa.UniqueConstraint(
            "creator_id", "fingerprint", name=op.f("uq_payout_method_creator_id_fingerprint")
        ),
    )
    op.create_index("ix_payout_method_creator", "payout_method", ["creator_id", "id"], unique=False)
    op.create_table(
        "payout",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("method_id", sa.BigInteger(), nullable=False),
        sa.Column("diamonds_requested", sa.BigInteger(), nullable=False),
        sa.Column("diamonds", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="requested", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('requested', 'rejected', 'sent', 'paid', 'failed')",
            name=op.f("ck_payout_status"),
        ),
        sa.CheckConstraint(
            "diamonds > 0 AND diamonds <= diamonds_requested AND amount_micros > 0",
            name=op.f("ck_payout_amounts"),
        ),
        sa.ForeignKeyConstraint(
            ["currency"], ["commodity.code"], name=op.f("fk_payout_currency_commodity")
        ),
        sa.ForeignKeyConstraint(
            ["method_id"], ["payout_method.id"], name=op.f("fk_payout_method_id_payout_method")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout")),
        sa.UniqueConstraint(
            "creator_id", "idempotency_key", name=op.f("uq_payout_creator_id_idempotency_key")
        ),
    )
    op.create_index("ix_payout_creator", "payout", ["creator_id", "id"], unique=False)
    op.create_index(
        "ix_payout_in_flight",
        "payout",
        ["id"],
        unique=False,
        postgresql_where="status IN ('requested', 'sent')",
    )
    op.create_table(
        "payout_event",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("payout_id", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("provider_reference", sa.Text(), nullable=True),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "phase IN ('requested', 'rejected', 'sent', 'paid', 'failed')",
            name=op.f("ck_payout_event_phase"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_payout_event_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(
            ["payout_id"], ["payout.id"], name=op.f("fk_payout_event_payout_id_payout")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_event")),
        sa.UniqueConstraint(
            "actor", "idempotency_key", name=op.f("uq_payout_event_actor_idempotency_key")
        ),
        sa.UniqueConstraint("entry_id", name=op.f("uq_payout_event_entry_id")),
        sa.UniqueConstraint("payout_id", "phase", name=op.f("uq_payout_event_payout_id_phase")),
    )
    for statement in sql_statements("0005_payouts.sql"):
        op.execute(statement)
    op.execute(
        "INSERT INTO account (code, commodity, type, contra, no_overdraft, normal_sign)"
        " VALUES ('platform:payouts_in_transit:USD', 'USD', 'liability', false, false, -1)"
        " ON CONFLICT (code) DO NOTHING"
    )


def downgrade() -> None:
    op.drop_table("payout_event")
    op.drop_index(
        "ix_payout_in_flight",
        table_name="payout",
        postgresql_where="status IN ('requested', 'sent')",
    )
    op.drop_index("ix_payout_creator", table_name="payout")
    op.drop_table("payout")
    op.drop_index("ix_payout_method_creator", table_name="payout_method")
    op.drop_table("payout_method")
    op.drop_table("creator_totp")
    op.drop_table("creator_kyc")
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_table("audit_log")
    for function in ("coinbooks_payout_guard", "coinbooks_payout_event_guard"):
        op.execute(f"DROP FUNCTION {function}()")
    # Accounts are never deleted (0004), except an unused one by the migration that opened it.
    op.execute("ALTER TABLE account DISABLE TRIGGER account_no_delete")
    op.execute(
        "DELETE FROM account WHERE code = 'platform:payouts_in_transit:USD' AND posting_count = 0"
    )
    op.execute("ALTER TABLE account ENABLE TRIGGER account_no_delete")
