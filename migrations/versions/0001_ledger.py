"""The ledger: commodities, accounts, journal entries, postings, purchases; invariant triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 15:44:42.609086
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql import sql_statements

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coin_package",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("coins", sa.BigInteger(), nullable=False),
        sa.Column("bonus_coins", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.CheckConstraint("coins > 0 AND bonus_coins >= 0", name=op.f("ck_coin_package_coins")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coin_package")),
        sa.UniqueConstraint("code", name=op.f("uq_coin_package_code")),
    )
    op.create_table(
        "commodity",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("scale", sa.SmallInteger(), nullable=False),
        sa.Column("minor_unit_digits", sa.SmallInteger(), nullable=True),
        sa.CheckConstraint(
            "(kind = 'fiat') = (minor_unit_digits IS NOT NULL) AND coalesce(minor_unit_digits, 0) <= scale",
            name=op.f("ck_commodity_minor_unit"),
        ),
        sa.CheckConstraint("kind IN ('virtual', 'fiat')", name=op.f("ck_commodity_kind")),
        sa.CheckConstraint("scale BETWEEN 0 AND 6", name=op.f("ck_commodity_scale")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_commodity")),
    )
    op.create_table(
        "journal_entry",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("event_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("created_txid", sa.BigInteger(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "rates", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "refs", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("memo", sa.Text(), server_default="", nullable=False),
        sa.Column("reverses_entry_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "(kind = 'reversal') = (reverses_entry_id IS NOT NULL)",
            name=op.f("ck_journal_entry_reversal"),
        ),
        sa.CheckConstraint(
            "length(event_key) BETWEEN 1 AND 200", name=op.f("ck_journal_entry_event_key")
        ),
        sa.ForeignKeyConstraint(
            ["reverses_entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_journal_entry_reverses_entry_id_journal_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entry")),
        sa.UniqueConstraint("event_key", name=op.f("uq_journal_entry_event_key")),
        sa.UniqueConstraint("id", "posted_at", name=op.f("uq_journal_entry_id_posted_at")),
        sa.UniqueConstraint("reverses_entry_id", name=op.f("uq_journal_entry_reverses_entry_id")),
    )
    op.create_table(
        "sandbox_payment",
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("merchant_reference", sa.Text(), nullable=False),
        sa.Column("payment_token", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('succeeded', 'declined')", name=op.f("ck_sandbox_payment_status")
        ),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_sandbox_payment")),
        sa.UniqueConstraint(
            "provider",
            "merchant_reference",
            name=op.f("uq_sandbox_payment_provider_merchant_reference"),
        ),
    )
    op.create_table(
        "account",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("commodity", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("contra", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("no_overdraft", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("normal_sign", sa.SmallInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("posting_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "normal_sign = CASE WHEN (type IN ('asset', 'expense')) <> contra THEN 1 ELSE -1 END",
            name=op.f("ck_account_normal_sign"),
        ),
        sa.CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'revenue', 'expense')",
            name=op.f("ck_account_type"),
        ),
        sa.CheckConstraint(
            "NOT no_overdraft OR balance * normal_sign >= 0", name=op.f("ck_account_no_overdraft")
        ),
        sa.CheckConstraint("posting_count >= 0", name=op.f("ck_account_posting_count")),
        sa.ForeignKeyConstraint(
            ["commodity"], ["commodity.code"], name=op.f("fk_account_commodity_commodity")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account")),
        sa.UniqueConstraint("code", name=op.f("uq_account_code")),
        sa.UniqueConstraint("id", "commodity", name=op.f("uq_account_id_commodity")),
    )
    op.create_table(
        "custom_coin_price",
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("coin_price_micros", sa.BigInteger(), nullable=False),
        sa.Column("min_coins", sa.BigInteger(), nullable=False),
        sa.Column("max_coins", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "coin_price_micros > 0 AND min_coins > 0 AND max_coins >= min_coins",
            name=op.f("ck_custom_coin_price_bounds"),
        ),
        sa.ForeignKeyConstraint(
            ["currency"], ["commodity.code"], name=op.f("fk_custom_coin_price_currency_commodity")
        ),
        sa.PrimaryKeyConstraint("currency", name=op.f("pk_custom_coin_price")),
    )
    op.create_table(
        "fx_rate",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("base", sa.Text(), nullable=False),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.Column("rate", sa.Numeric(precision=24, scale=12), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("base <> quote", name=op.f("ck_fx_rate_distinct")),
        sa.CheckConstraint("rate > 0", name=op.f("ck_fx_rate_rate_positive")),
        sa.ForeignKeyConstraint(
            ["base"], ["commodity.code"], name=op.f("fk_fx_rate_base_commodity")
        ),
        sa.ForeignKeyConstraint(
            ["quote"], ["commodity.code"], name=op.f("fk_fx_rate_quote_commodity")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_rate")),
        sa.UniqueConstraint(
            "base", "quote", "valid_from", name=op.f("uq_fx_rate_base_quote_valid_from")
        ),
    )
    op.create_table(
        "package_price",
        sa.Column("package_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "channel IN ('web', 'ios', 'android')", name=op.f("ck_package_price_channel")
        ),
        sa.CheckConstraint("price_minor > 0", name=op.f("ck_package_price_price")),
        sa.ForeignKeyConstraint(
            ["currency"], ["commodity.code"], name=op.f("fk_package_price_currency_commodity")
        ),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["coin_package.id"],
            name=op.f("fk_package_price_package_id_coin_package"),
        ),
        sa.PrimaryKeyConstraint("package_id", "channel", "currency", name=op.f("pk_package_price")),
    )
    op.create_table(
        "purchase",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("package_code", sa.Text(), nullable=True),
        sa.Column("coins", sa.BigInteger(), nullable=False),
        sa.Column("bonus_coins", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("failure_code", sa.Text(), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("provider_reference", sa.Text(), nullable=True),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'completed') = (entry_id IS NOT NULL)",
            name=op.f("ck_purchase_completed_entry"),
        ),
        sa.CheckConstraint(
            "channel IN ('web', 'ios', 'android')", name=op.f("ck_purchase_channel")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'failed')", name=op.f("ck_purchase_status")
        ),
        sa.CheckConstraint(
            "coins > 0 AND bonus_coins >= 0 AND price_minor > 0", name=op.f("ck_purchase_amounts")
        ),
        sa.ForeignKeyConstraint(
            ["currency"], ["commodity.code"], name=op.f("fk_purchase_currency_commodity")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_purchase_entry_id_journal_entry")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_purchase_entry_id")),
        sa.UniqueConstraint(
            "user_id", "idempotency_key", name=op.f("uq_purchase_user_id_idempotency_key")
        ),
    )
    op.create_index(
        "ix_purchase_pending",
        "purchase",
        ["id"],
        unique=False,
        postgresql_where="status = 'pending'",
    )
    op.create_index("ix_purchase_user_history", "purchase", ["user_id", "id"], unique=False)
    op.create_table(
        "posting",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("commodity", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("account_seq", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_posting_amount_nonzero")),
        sa.ForeignKeyConstraint(
            ["account_id", "commodity"],
            ["account.id", "account.commodity"],
            name=op.f("fk_posting_account_id_commodity_account"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id", "posted_at"],
            ["journal_entry.id", "journal_entry.posted_at"],
            name=op.f("fk_posting_entry_id_posted_at_journal_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posting")),
        sa.UniqueConstraint(
            "account_id", "account_seq", name=op.f("uq_posting_account_id_account_seq")
        ),
    )
    op.create_index(
        "ix_posting_account_history",
        "posting",
        ["account_id", "posted_at", "account_seq"],
        unique=False,
    )
    op.create_index("ix_posting_entry_id", "posting", ["entry_id"], unique=False)
    for statement in sql_statements("0001_invariants.sql"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_posting_entry_id", table_name="posting")
    op.drop_index("ix_posting_account_history", table_name="posting")
    op.drop_table("posting")
    op.drop_index("ix_purchase_user_history", table_name="purchase")
    op.drop_index(
        "ix_purchase_pending", table_name="purchase", postgresql_where="status = 'pending'"
    )
    op.drop_table("purchase")
    op.drop_table("package_price")
    op.drop_table("fx_rate")
    op.drop_table("custom_coin_price")
    op.drop_table("account")
    op.drop_table("sandbox_payment")
    op.drop_table("journal_entry")
    op.drop_table("commodity")
    op.drop_table("coin_package")
    for function in (
        "coinbooks_posting_apply",
        "coinbooks_account_guard",
        "coinbooks_append_only",
        "coinbooks_entry_stamp",
        "coinbooks_entry_check",
        "coinbooks_purchase_guard",
    ):
        op.execute(f"DROP FUNCTION {function}()")
