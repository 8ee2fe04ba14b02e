"""The ledger: commodities, accounts, journal entries, postings, purchases; invariant triggers.

Create Date: 2026-11-25 15:44:42.609086
"""

from alembic import op

from migrations import ops

revision: str = "0001"
down_revision: str | None = None

UPGRADE_SQL = (
    "invariants/append_only.sql",
    "invariants/accounts.sql",
    "superseded/0001_account_triggers.sql",
    "superseded/0001_postings.sql",
    "invariants/purchases.sql",
)
DOWNGRADE_SQL = ("0001_ledger.down.sql",)


def upgrade() -> None:
    ops.create_table(
        "coin_package",
        ops.serial(),
        ops.text("code"),
        ops.bigint("coins"),
        ops.bigint("bonus_coins", default="0"),
        ops.boolean("active", default="true"),
        ops.checks(coins="coins > 0 AND bonus_coins >= 0"),
        ops.primary_key("id"),
        ops.unique("code"),
    )
    ops.create_table(
        "commodity",
        ops.text("code", "kind"),
        ops.smallint("scale"),
        ops.smallint("minor_unit_digits", null=True),
        ops.checks(
            minor_unit="(kind = 'fiat') = (minor_unit_digits IS NOT NULL) AND coalesce(minor_unit_digits, 0) <= scale",
            kind="kind IN ('virtual', 'fiat')",
            scale="scale BETWEEN 0 AND 6",
        ),
        ops.primary_key("code"),
    )
    ops.create_table(
        "journal_entry",
        ops.serial(),
        ops.text("kind", "event_key", "fingerprint"),
        ops.bigint("created_txid"),
        ops.timestamp("posted_at"),
        ops.text("actor"),
        ops.jsonb("rates", "refs", default="{}"),
        ops.text("memo", default=""),
        ops.bigint("reverses_entry_id", null=True),
        ops.checks(
            reversal="(kind = 'reversal') = (reverses_entry_id IS NOT NULL)",
            event_key="length(event_key) BETWEEN 1 AND 200",
        ),
        ops.references("journal_entry", "reverses_entry_id"),
        ops.primary_key("id"),
        ops.unique("event_key"),
        ops.unique("id", "posted_at"),
        ops.unique("reverses_entry_id"),
    )
    ops.create_table(
        "sandbox_payment",
        ops.text("reference", "provider", "merchant_reference", "payment_token", "currency"),
        ops.bigint("amount_minor"),
        ops.text("status"),
        ops.text("decline_reason", null=True),
        ops.timestamp("created_at", default=ops.NOW),
        ops.checks(status="status IN ('succeeded', 'declined')"),
        ops.primary_key("reference"),
        ops.unique("provider", "merchant_reference"),
    )
    ops.create_table(
        "account",
        ops.serial(),
        ops.text("code", "commodity", "type"),
        ops.boolean("contra", "no_overdraft", default="false"),
        ops.smallint("normal_sign"),
        ops.bigint("balance", "posting_count", default="0"),
        ops.timestamp("opened_at", default=ops.NOW),
        ops.checks(
            normal_sign="normal_sign = CASE WHEN (type IN ('asset', 'expense')) <> contra THEN 1 ELSE -1 END",
            type="type IN ('asset', 'liability', 'equity', 'revenue', 'expense')",
            no_overdraft="NOT no_overdraft OR balance * normal_sign >= 0",
            posting_count="posting_count >= 0",
        ),
        ops.references("commodity", "commodity", to=["code"]),
        ops.primary_key("id"),
        ops.unique("code"),
        ops.unique("id", "commodity"),
    )
    ops.create_table(
        "custom_coin_price",
        ops.text("currency"),
        ops.bigint("coin_price_micros", "min_coins", "max_coins"),
        ops.checks(bounds="coin_price_micros > 0 AND min_coins > 0 AND max_coins >= min_coins"),
        ops.references("commodity", "currency", to=["code"]),
        ops.primary_key("currency"),
    )
    ops.create_table(
        "fx_rate",
        ops.serial(),
        ops.text("base", "quote"),
        ops.numeric("rate", 24, 12),
        ops.timestamp("valid_from"),
        ops.checks(distinct="base <> quote", rate_positive="rate > 0"),
        ops.references("commodity", "base", to=["code"]),
        ops.references("commodity", "quote", to=["code"]),
        ops.primary_key("id"),
        ops.unique("base", "quote", "valid_from"),
    )
    ops.create_table(
        "package_price",
        ops.bigint("package_id"),
        ops.text("channel", "currency"),
        ops.bigint("price_minor"),
        ops.checks(channel="channel IN ('web', 'ios', 'android')", price="price_minor > 0"),
        ops.references("commodity", "currency", to=["code"]),
        ops.references("coin_package", "package_id"),
        ops.primary_key("package_id", "channel", "currency"),
    )
    ops.create_table(
        "purchase",
        ops.serial(),
        ops.text("user_id", "idempotency_key", "request_hash"),
        ops.text("package_code", null=True),
        ops.bigint("coins", "bonus_coins"),
        ops.text("channel", "provider", "currency"),
        ops.bigint("price_minor"),
        ops.text("status", default="pending"),
        ops.text("failure_code", "failure_message", "provider_reference", null=True),
        ops.bigint("entry_id", null=True),
        ops.timestamp("created_at", default=ops.NOW),
        ops.timestamp("settled_at", null=True),
        ops.checks(
            completed_entry="(status = 'completed') = (entry_id IS NOT NULL)",
            channel="channel IN ('web', 'ios', 'android')",
            status="status IN ('pending', 'completed', 'failed')",
            amounts="coins > 0 AND bonus_coins >= 0 AND price_minor > 0",
        ),
        ops.references("commodity", "currency", to=["code"]),
        ops.references("journal_entry", "entry_id"),
        ops.primary_key("id"),
        ops.unique("entry_id"),
        ops.unique("user_id", "idempotency_key"),
    )
    op.create_index(
        "ix_purchase_pending", "purchase", ["id"], postgresql_where="status = 'pending'"
    )
    op.create_index("ix_purchase_user_history", "purchase", ["user_id", "id"])
    ops.create_table(
        "posting",
        ops.serial(),
        ops.bigint("entry_id"),
        ops.timestamp("posted_at"),
        ops.bigint("account_id"),
        ops.text("commodity"),
        ops.bigint("amount", "account_seq", "balance_after"),
        ops.checks(amount_nonzero="amount <> 0"),
        ops.references("account", "account_id", "commodity", to=["id", "commodity"]),
        ops.references("journal_entry", "entry_id", "posted_at", to=["id", "posted_at"]),
        ops.primary_key("id"),
        ops.unique("account_id", "account_seq"),
    )
    op.create_index(
        "ix_posting_account_history", "posting", ["account_id", "posted_at", "account_seq"]
    )
    op.create_index("ix_posting_entry_id", "posting", ["entry_id"])
    ops.run_sql(UPGRADE_SQL)
    ops.append_only("posting", "journal_entry")


def downgrade() -> None:
    ops.drop_tables(
        "posting",
        "purchase",
        "package_price",
        "fx_rate",
        "custom_coin_price",
        "account",
        "sandbox_payment",
        "journal_entry",
        "commodity",
        "coin_package",
    )
    ops.run_sql(DOWNGRADE_SQL)
