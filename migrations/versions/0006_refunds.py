"""Refunds: at most one per purchase, append-only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 21:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refund",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("purchase_id", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("coins", sa.BigInteger(), nullable=False),
        sa.Column("cash_minor", sa.BigInteger(), nullable=False),
        sa.Column("value_released_micros", sa.BigInteger(), nullable=False),
        sa.Column("contra_revenue_micros", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "coins > 0 AND cash_minor > 0 AND value_released_micros >= 0",
            name=op.f("ck_refund_amounts"),
        ),
        sa.CheckConstraint("length(reason) BETWEEN 1 AND 500", name=op.f("ck_refund_reason")),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_refund_entry_id_journal_entry")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund")),
        sa.UniqueConstraint(
            "actor", "idempotency_key", name=op.f("uq_refund_actor_idempotency_key")
        ),
        sa.UniqueConstraint("entry_id", name=op.f("uq_refund_entry_id")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_refund_purchase_id")),
    )
    # No foreign key to purchase: a purchase is never deleted (its guard refuses it, TRUNCATE
    # too), and a key would make PostgreSQL refuse that TRUNCATE before the guard could say
    # why. The integrity check ties each refund to its purchase and its entry.
    # A refund, once made, is history: corrected by a new entry, never edited or removed.
    op.execute(
        "CREATE TRIGGER refund_append_only BEFORE UPDATE OR DELETE ON refund"
        " FOR EACH ROW EXECUTE FUNCTION coinbooks_append_only()"
    )
    op.execute(
        "CREATE TRIGGER refund_no_truncate BEFORE TRUNCATE ON refund"
        " FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_append_only()"
    )


def downgrade() -> None:
    op.drop_table("refund")
